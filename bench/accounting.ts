/**
 * Accounting benchmarks: RDP epsilon for 1e5 steps over the default orders,
 * PLD epsilon for 1000 and 10000 steps, and a full PLD noise calibration for
 * 1000 steps. Reports tinybench latency (wall clock) and, because the bench
 * machine may be shared, the process CPU time of the same calls.
 */
import { Bench } from 'tinybench';
import { PldAccountant, RdpAccountant, calibrateNoiseMultiplier } from '../lib/accounting';
import { median, printTable, writeResults } from './util';

interface Case {
  name: string;
  target?: string;
  iterations: number;
  fn: () => unknown;
}

/** Median CPU milliseconds (user + system) of `fn` over `n` runs. */
function cpuMedian(fn: () => unknown, n: number): number {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = process.cpuUsage();
    fn();
    const d = process.cpuUsage(c);
    xs.push((d.user + d.system) / 1000);
  }
  return median(xs);
}

/** Runs the accounting benchmarks, prints a table and writes bench/results/accounting.json. */
export async function run(): Promise<void> {
  // Vary z slightly per call so no cache in the accountants is reused.
  let k = 0;
  const nextZ = () => 1 + 1e-6 * (k++ % 1000);
  const cases: Case[] = [
    {
      name: 'RDP eps, 1e5 steps, 156 default orders (q=0.01)',
      target: '< 5 ms',
      iterations: 30,
      fn: () =>
        new RdpAccountant()
          .step({ sampleRate: 0.01, noiseMultiplier: nextZ() }, 100000)
          .getEpsilon(1e-5),
    },
    {
      name: 'PLD eps, 1000 steps (q=0.01, grid 1e-4)',
      iterations: 8,
      fn: () =>
        new PldAccountant()
          .step({ sampleRate: 0.01, noiseMultiplier: nextZ() }, 1000)
          .getEpsilon(1e-5),
    },
    {
      name: 'PLD eps, 10000 steps (q=0.01, grid 1e-4)',
      iterations: 5,
      fn: () =>
        new PldAccountant()
          .step({ sampleRate: 0.01, noiseMultiplier: nextZ() }, 10000)
          .getEpsilon(1e-5),
    },
    {
      name: 'PLD calibration, 1000 steps (eps 2, delta 1e-5, q=0.01)',
      target: '< 500 ms',
      iterations: 4,
      fn: () =>
        calibrateNoiseMultiplier({
          targetEpsilon: 2 + 1e-6 * (k++ % 1000),
          targetDelta: 1e-5,
          sampleRate: 0.01,
          steps: 1000,
        }),
    },
  ];
  const rows: Record<string, unknown>[] = [];
  for (const c of cases) {
    const bench = new Bench({ iterations: c.iterations, time: 0, warmupIterations: 1 });
    bench.add(c.name, c.fn);
    await bench.run();
    const r = bench.tasks[0].result as unknown as { latency?: { p50: number; mean: number } };
    const wall = r.latency ? r.latency.p50 : NaN;
    const cpu = cpuMedian(c.fn, Math.min(c.iterations, 5));
    rows.push({ case: c.name, 'wall p50 ms': wall, 'cpu p50 ms': cpu, target: c.target ?? '' });
  }
  const cal = calibrateNoiseMultiplier({
    targetEpsilon: 2,
    targetDelta: 1e-5,
    sampleRate: 0.01,
    steps: 1000,
  });
  printTable('accounting', rows);
  console.log(
    `calibration example: z = ${cal.noiseMultiplier.toFixed(5)} (eps ${cal.epsilon.toFixed(5)}, ${cal.evaluations} evaluations)`,
  );
  writeResults('accounting', { rows, calibration: cal });
}

if (require.main === module) {
  run().catch((e) => {
    console.error(e);
    process.exitCode = 1;
  });
}
