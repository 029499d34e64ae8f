/**
 * Linalg kernel benchmark: per-sample gradient norms, the clipped sum and
 * SGEMM for LoRA and full-layer shapes, under every ISA this machine runs,
 * each compared with a roofline measured in the same run (read bandwidth of
 * a sum-of-squares loop, FMA throughput of independent FMA chains, both on
 * all pool threads).
 *
 * Roofline ratio = max(bytes / bandwidth, flops / peak) / time: the fraction
 * of the attainable speed reached.  The norm kernels accumulate in double,
 * so their compute roof is half the fp32 FMA peak.  On a shared machine the
 * probes are re-run right before every kernel and the best of the probes of
 * the ISA is used (with the fastest kernel time), so both sides of each ratio
 * are measured under the same conditions as far as possible.  With
 * DPLORA_BENCH_CPU=1 every kernel is instead timed in process CPU time
 * (median of its repetitions), alternated with both probes (also in CPU
 * time), and the ratios use the medians of all probes of the ISA and thread
 * count (bench/results/kernels-linalg-cpu.json).
 */
import { Bench } from 'tinybench';
import { capabilities, setIsa, setThreads } from '../lib/api/kernels';
import {
  benchFmaPeak,
  benchReadBandwidth,
  clippedSum,
  perSampleGradNormSq,
  sgemm,
} from '../lib/kernels/linalg';
import type { GradShape, NormMethod } from '../lib/kernels/linalg';
import { median, printTable, writeResults } from './util';

interface Case {
  name: string;
  /** Bytes the kernel must read at least once. */
  bytes: number;
  /** Floating-point operations (a multiply-add counts 2). */
  flops: number;
  /** true: the kernel computes in double (compute roof = fp32 peak / 2). */
  double: boolean;
  fn: () => void;
  /** Too slow to be worth timing on the scalar path. */
  skipScalar?: boolean;
}

function filled(n: number, seed: number): Float32Array {
  const x = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    x[i] = s / 2 ** 31 - 1;
  }
  return x;
}

/**
 * Fastest wall time (seconds) of fn over a short tinybench run: the machine
 * may be shared, and the minimum is the least disturbed estimate.
 */
async function timeIt(name: string, fn: () => void, slow: boolean): Promise<number> {
  const bench = new Bench({
    time: slow ? 0 : 300,
    iterations: slow ? 2 : 5,
    warmup: true,
    warmupIterations: 1,
    warmupTime: 0,
  });
  bench.add(name, fn);
  await bench.run();
  const r = bench.tasks[0].result as { state: string; latency?: { min: number } };
  if (!r.latency) throw new Error(`benchmark ${name} failed: ${r.state}`);
  return r.latency.min / 1000;
}

/** Flops of one FMA-probe iteration per thread (native/kernels/roofline/roofline.h). */
const FMA_PROBE_FLOPS: Record<string, number> = { scalar: 64, avx2: 192, avx512: 768, neon: 128 };

/** CPU seconds (user + system, all threads) that fn takes, and the wall seconds. */
function cpuTimed(fn: () => void): { cpu: number; wall: number } {
  const c0 = process.cpuUsage();
  const w0 = performance.now();
  fn();
  const c = process.cpuUsage(c0);
  return { cpu: (c.user + c.system) / 1e6, wall: (performance.now() - w0) / 1e3 };
}

function normCase(name: string, s: GradShape, method: NormMethod, skipScalar = false): Case {
  const a = filled(s.batch * s.seq * s.inDim, 1);
  const g = filled(s.batch * s.seq * s.outDim, 2);
  const out = new Float64Array(s.batch);
  const { batch: B, seq: T, inDim: d, outDim: p } = s;
  const direct = T * d * p;
  const ghost = 0.5 * T * (T + 1) * (d + p);
  const macs =
    method === 'direct'
      ? direct
      : method === 'ghost'
        ? ghost
        : method === 'bound'
          ? T * (d + p)
          : Math.min(direct, ghost);
  return {
    name: `norms ${method} ${name}`,
    bytes: 4 * B * T * (d + p),
    flops: 2 * B * macs,
    double: true,
    fn: () => perSampleGradNormSq(a, g, { ...s, method }, out),
    skipScalar,
  };
}

function sumCase(name: string, s: GradShape, skipScalar = false): Case {
  const a = filled(s.batch * s.seq * s.inDim, 3);
  const g = filled(s.batch * s.seq * s.outDim, 4);
  const f = new Float32Array(s.batch).fill(0.5);
  const out = new Float32Array(s.outDim * s.inDim);
  const { batch: B, seq: T, inDim: d, outDim: p } = s;
  return {
    name: `clippedSum ${name}`,
    bytes: 4 * B * T * (d + p),
    flops: 2 * B * T * d * p,
    double: false,
    fn: () => clippedSum(a, g, s, f, out),
    skipScalar,
  };
}

function gemmCase(m: number, n: number, k: number, transB = false): Case {
  const a = filled(m * k, 5);
  const b = filled(k * n, 6);
  const c = new Float32Array(m * n);
  return {
    name: `sgemm ${m}x${n}x${k}${transB ? ' B^T' : ''}`,
    bytes: 4 * (m * k + k * n + m * n),
    flops: 2 * m * n * k,
    double: false,
    fn: () => sgemm(a, b, c, { m, n, k, transB }),
  };
}

export async function run(): Promise<void> {
  const caps = capabilities();
  const B = 64;
  const T = 128;
  const d = 768;
  const r = 8;
  const loraA: GradShape = { batch: B, seq: T, inDim: d, outDim: r }; // grad A: g_h^T x, d -> r
  const loraB: GradShape = { batch: B, seq: T, inDim: r, outDim: d }; // grad B: g^T h, r -> p
  const full: GradShape = { batch: B, seq: T, inDim: d, outDim: d };
  const full16: GradShape = { batch: 16, seq: T, inDim: d, outDim: d };
  const cases: Case[] = [
    normCase('LoRA-A B64 T128 768->8', loraA, 'direct'),
    normCase('LoRA-A B64 T128 768->8', loraA, 'ghost', true),
    normCase('LoRA-B B64 T128 8->768', loraB, 'direct'),
    normCase('LoRA-B B64 T128 8->768', loraB, 'auto'),
    normCase('LoRA-A B64 T1 768->8', { ...loraA, seq: 1 }, 'auto'),
    normCase('full B64 T128 768->768', full, 'auto', true),
    normCase('full B16 T128 768->768', full16, 'direct', true),
    normCase('LoRA-A B64 T128 768->8', loraA, 'bound'),
    sumCase('LoRA-A B64 T128 768->8', loraA),
    sumCase('LoRA-B B64 T128 8->768', loraB),
    sumCase('full B64 T128 768->768', full, true),
    gemmCase(768, 768, 768),
    gemmCase(768, 768, 768, true),
    gemmCase(256, 256, 256),
    gemmCase(1024, 1024, 1024),
  ];

  // Optional narrowing for kernel work: DPLORA_BENCH_CASES (a regular
  // expression on the case names) and DPLORA_BENCH_ISAS (comma-separated).
  const only = process.env.DPLORA_BENCH_CASES ? new RegExp(process.env.DPLORA_BENCH_CASES) : null;
  const isas = process.env.DPLORA_BENCH_ISAS?.split(',');
  const selected = only ? cases.filter((c) => only.test(c.name)) : cases;
  // DPLORA_BENCH_CPU=1: process CPU time, probes alternated with each kernel
  // (DPLORA_BENCH_REPS times, medians) instead of the fastest wall time.
  const useCpu = process.env.DPLORA_BENCH_CPU === '1';
  const reps = Math.max(1, Number(process.env.DPLORA_BENCH_REPS ?? 7));
  const results: Record<string, unknown>[] = [];
  const rooflines: Record<string, unknown>[] = [];
  // Read-bandwidth probe over as many bytes as the B64 T128 LoRA inputs (a and g).
  const big = filled(B * T * (d + r), 7);
  // Each ISA on one thread (the per-core efficiency, least disturbed by a
  // shared machine) and, for the SIMD paths, on all pool threads.
  const configs: { isa: string; threads: number }[] = [];
  for (const isa of caps.supportedIsas) {
    if (isas && !isas.includes(isa)) continue;
    configs.push({ isa, threads: 1 });
    if (isa !== 'scalar' && caps.threads > 1) configs.push({ isa, threads: caps.threads });
  }
  try {
    for (const { isa, threads } of configs) {
      setIsa(isa);
      setThreads(threads);
      const peakIters = isa === 'scalar' ? 4e6 : isa === 'avx2' ? 4e6 : 2e6;
      const bws: number[] = [];
      const peaks: number[] = [];
      const probe = () => {
        bws.push(benchReadBandwidth(big, 2));
        peaks.push(benchFmaPeak(peakIters));
      };
      const timed: { c: Case; t: number }[] = [];
      for (const c of selected) {
        if (isa === 'scalar' && c.skipScalar) continue;
        const slow = c.flops / (isa === 'scalar' ? 2e9 : 2e10) > 0.25;
        if (useCpu) {
          // Probes and kernel alternated, each in process CPU time (per
          // CPU-second rates: robust when other processes share the cores).
          c.fn();
          const ts: number[] = [];
          const cb: number[] = [];
          const cp: number[] = [];
          for (let rep = 0; rep < (slow ? 3 : reps); rep++) {
            // Work over CPU time (the probes' own wall-clock rates miss
            // the time the process waits around them).
            cb.push((big.length * 4 * 2) / cpuTimed(() => benchReadBandwidth(big, 2)).cpu);
            const fl = peakIters * FMA_PROBE_FLOPS[isa] * threads;
            cp.push(fl / cpuTimed(() => benchFmaPeak(peakIters)).cpu);
            ts.push(cpuTimed(c.fn).cpu);
          }
          bws.push(...cb);
          peaks.push(...cp);
          timed.push({ c, t: median(ts) });
          continue;
        }
        probe();
        timed.push({ c, t: await timeIt(`${isa} x${threads} ${c.name}`, c.fn, slow) });
      }
      if (!useCpu) probe();
      const bw = useCpu ? median(bws) : Math.max(...bws);
      const peak = useCpu ? median(peaks) : Math.max(...peaks);
      rooflines.push({
        isa,
        threads,
        readGBps: bw / 1e9,
        readGBpsMedian: median(bws) / 1e9,
        fmaPeakGflops: peak / 1e9,
        fmaPeakGflopsMedian: median(peaks) / 1e9,
      });
      for (const { c, t } of timed) {
        const roof = c.double ? peak / 2 : peak;
        const memTime = c.bytes / bw;
        const computeTime = c.flops / roof;
        results.push({
          isa,
          threads,
          kernel: c.name,
          ms: t * 1e3,
          GBps: c.bytes / t / 1e9,
          GFLOPs: c.flops / t / 1e9,
          bound: memTime >= computeTime ? 'memory' : 'compute',
          bwRatio: memTime / t,
          peakRatio: computeTime / t,
          rooflineRatio: Math.max(memTime, computeTime) / t,
        });
      }
    }
  } finally {
    setIsa(caps.isa);
    setThreads(caps.threads);
  }
  printTable('Rooflines (probes on the same threads as the kernels)', rooflines);
  printTable('Linalg kernels (peakRatio: vs fp32 FMA peak, or fp64 = fp32/2 for norms)', results);
  if (only || isas) {
    console.log('(narrowed run: bench/results/kernels-linalg*.json left as they were)');
    return;
  }
  writeResults(useCpu ? 'kernels-linalg-cpu' : 'kernels-linalg', {
    threads: caps.threads,
    notes:
      'bwRatio = (bytes/readBW)/time, peakRatio = (flops/peak)/time with peak = fp32 FMA peak (half of it for the ' +
      'double-accumulating norm kernels), rooflineRatio = max of the two. Norm flops count the multiply-adds of the ' +
      'method run (auto: the cheaper exact one).',
    rooflines,
    results,
  });
}
