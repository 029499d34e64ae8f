/**
 * Noise kernels: Gaussian float32 samples/s per ISA (1 thread and all
 * threads) next to a JavaScript Box-Muller over crypto.getRandomValues
 * measured in the same run, the exact discrete Gaussian at sigma = 2^16 and
 * sigma = 1, ChaCha20 keystream GB/s, and the fixed-point clipped sum.
 * Writes bench/results/kernels-noise.json.
 */
import { webcrypto } from 'crypto';
import * as os from 'os';
import { Bench } from 'tinybench';
import { Rng } from '../lib/kernels/rng';
import { fixedClipSum } from '../lib/kernels/fixed';
import { capabilities, setIsa, setThreads } from '../lib/native';
import { printTable, writeResults } from './util';

type Row = Record<string, string | number>;

/** Mean seconds per call of fn, measured by tinybench. */
async function secondsPerCall(name: string, fn: () => void, time = 400): Promise<number> {
  const bench = new Bench({ time, iterations: 5, warmupTime: 50, warmupIterations: 2 });
  bench.add(name, fn);
  await bench.run();
  const r = bench.tasks[0].result as unknown as {
    latency?: { mean: number };
    mean?: number;
    error?: unknown;
  };
  if (r.error)
    throw r.error instanceof Error
      ? r.error
      : new Error('benchmark task failed', { cause: r.error });
  const ms = r.latency?.mean ?? r.mean;
  if (ms === undefined) throw new Error(`no timing for ${name}`);
  return ms / 1000;
}

/**
 * Process CPU seconds per call (user + system, all threads): on a shared
 * machine this is the per-core cost that wall-clock time hides.
 */
function cpuSecondsPerCall(fn: () => void, reps: number): number {
  fn();
  const t0 = process.cpuUsage();
  for (let i = 0; i < reps; i++) fn();
  const d = process.cpuUsage(t0);
  return (d.user + d.system) / 1e6 / reps;
}

/** Box-Muller in JavaScript over crypto.getRandomValues (the baseline). */
function jsBoxMuller(out: Float32Array, words: Uint32Array): void {
  for (let off = 0; off < words.length; off += 16384)
    webcrypto.getRandomValues(words.subarray(off, off + 16384));
  for (let i = 0; i + 1 < out.length; i += 2) {
    const u1 = (words[i] + 1) / 4294967296;
    const th = (2 * Math.PI * words[i + 1]) / 4294967296;
    const r = Math.sqrt(-2 * Math.log(u1));
    out[i] = r * Math.cos(th);
    out[i + 1] = r * Math.sin(th);
  }
}

/** Runs the noise benchmarks, prints the tables and writes bench/results/kernels-noise.json. */
export async function run(): Promise<void> {
  const caps = capabilities();
  const allThreads = Math.max(1, caps.threads);
  const rng = new Rng(); // OS-keyed: what production uses
  const n = 1 << 20;
  const buf = new Float32Array(n);
  const gaussian: Row[] = [];
  const chacha: Row[] = [];
  try {
    for (const isa of caps.supportedIsas) {
      setIsa(isa);
      for (const threads of [...new Set([1, allThreads])]) {
        setThreads(threads);
        const s = await secondsPerCall(`gaussian ${isa} ${threads}`, () => rng.gaussian(buf, 1));
        const a = await secondsPerCall(`add ${isa} ${threads}`, () =>
          rng.addGaussianNoise(buf, 1e-3),
        );
        const cpu = cpuSecondsPerCall(() => rng.gaussian(buf, 1), 20);
        gaussian.push({
          impl: `native ${isa}`,
          threads,
          'Msamples/s gaussian': n / s / 1e6,
          'Msamples/s addNoise': n / a / 1e6,
          'Msamples per CPU-s': n / cpu / 1e6,
        });
        const words = new Uint32Array(n);
        const c = await secondsPerCall(`chacha ${isa} ${threads}`, () => rng.fillUint32(words));
        const cc = cpuSecondsPerCall(() => rng.fillUint32(words), 20);
        chacha.push({
          isa,
          threads,
          'GB/s': (4 * n) / c / 1e9,
          'GB per CPU-s': (4 * n) / cc / 1e9,
        });
      }
    }
  } finally {
    setIsa(caps.isa);
    setThreads(caps.threads);
  }
  const jsN = 1 << 20;
  const jsOut = new Float32Array(jsN);
  const jsWords = new Uint32Array(jsN);
  const js = await secondsPerCall('js box-muller', () => jsBoxMuller(jsOut, jsWords));
  const jsCpu = cpuSecondsPerCall(() => jsBoxMuller(jsOut, jsWords), 5);
  gaussian.push({
    impl: 'JS Box-Muller + crypto.getRandomValues',
    threads: 1,
    'Msamples/s gaussian': jsN / js / 1e6,
    'Msamples/s addNoise': '',
    'Msamples per CPU-s': jsN / jsCpu / 1e6,
  });
  printTable('Gaussian float32 (std 1)', gaussian);
  printTable('ChaCha20 keystream (fillUint32)', chacha);

  const discrete: Row[] = [];
  // sigma = 2^16 and 1 (the rows of bench/RESULTS.md), and sigma^2 = 2^32 + 1, whose acceptance
  // exponent keeps a 65-bit denominator (no common factor to take out of it).
  const sigmas: [string, number][] = [
    ['2^16', 2 ** 32],
    ['1', 1],
    ['sqrt(2^32 + 1)', 2 ** 32 + 1],
  ];
  for (const [sigma, sigmaSq] of sigmas) {
    for (const threads of [...new Set([1, allThreads])]) {
      setThreads(threads);
      const m = 1 << 17;
      const out = new BigInt64Array(m);
      const s = await secondsPerCall(
        `dgauss ${sigma}`,
        () => rng.discreteGaussian(out, sigmaSq),
        800,
      );
      const cpu = cpuSecondsPerCall(() => rng.discreteGaussian(out, sigmaSq), 5);
      discrete.push({
        sigma,
        threads,
        'Msamples/s': m / s / 1e6,
        'Msamples per CPU-s': m / cpu / 1e6,
        load: os.loadavg()[0].toFixed(2),
      });
    }
  }
  setThreads(caps.threads);
  printTable(
    'Exact discrete Gaussian (integer-only sampler on the SIMD ChaCha20 keystream, groups of 64 in parallel)',
    discrete,
  );

  const fixedRows: Row[] = [];
  {
    const batch = 64;
    const dim = 1 << 14;
    const g = new Int32Array(batch * dim);
    rng.fillUint32(new Uint32Array(g.buffer));
    for (let i = 0; i < g.length; i++) g[i] >>= 12;
    const out = new BigInt64Array(dim);
    for (const threads of [...new Set([1, allThreads])]) {
      setThreads(threads);
      const s = await secondsPerCall(`fixedClipSum ${threads}`, () =>
        fixedClipSum(g, batch, dim, 1 << 24, out),
      );
      const cpu = cpuSecondsPerCall(() => fixedClipSum(g, batch, dim, 1 << 24, out), 10);
      fixedRows.push({
        kernel: 'fixedClipSum',
        batch,
        dim,
        threads,
        'Gelem/s': (batch * dim) / s / 1e9,
        'Gelem per CPU-s': (batch * dim) / cpu / 1e9,
      });
    }
    setThreads(caps.threads);
  }
  printTable('Fixed-point clipped sum', fixedRows);

  writeResults('kernels-noise', {
    cpuCount: os.cpus().length,
    note: 'measured on a machine shared with other jobs: wall-clock rates understate; "per CPU-s" columns divide by the process CPU time (all threads) and approximate the per-core rate',
    gaussian,
    chacha,
    discrete,
    fixed: fixedRows,
  });
}

if (require.main === module)
  run().catch((e) => {
    console.error(e);
    process.exitCode = 1;
  });
