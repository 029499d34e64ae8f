/**
 * Runs a test body under every ISA this machine supports and with 1 and 2
 * pool threads, restoring the original ISA and thread count afterwards.
 */
import { capabilities, setIsa, setThreads } from '../../lib/api/kernels';

export function forEachConfig(body: (isa: string, threads: number) => void): void {
  const caps = capabilities();
  try {
    for (const isa of caps.supportedIsas) {
      setIsa(isa);
      for (const threads of [1, 2]) {
        setThreads(threads);
        body(isa, threads);
      }
    }
  } finally {
    setIsa(caps.isa);
    setThreads(caps.threads);
  }
}
