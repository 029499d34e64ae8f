/**
 * Training-step benchmark: twelve frozen 768x768 linear layers, each with a
 * LoRA adapter (vanilla and FFA, r = 8 and 16), per-sample MSE loss, for
 * (batch, seq) in {(32,1), (64,1), (32,128), (64,128)}.
 *
 * For each configuration it times (a) a non-private step of the same
 * adapters (forward, summed loss, backward with raw gradients, AdamW) and
 * (b) a DP step (forward, backward in per-sample mode, per-sample norms,
 * clip factors, clipped sums, noise, AdamW), and reports the median time,
 * the DP/non-private ratio (target <= 1.10), achieved GFLOP/s (nominal
 * flops of the non-private step / time) and peak memory.
 *
 * Memory is measured apart from the timing, each mode of each configuration
 * in a FRESH child process (see {@link memoryChild}), so that no figure
 * includes another mode's or row's allocations: the peak RSS (the kernel's
 * high-water mark), the largest ArrayBuffer total seen at the step's phase
 * ends (uncollected garbage included), and the peak live ArrayBuffer memory
 * (after a full GC at every layer boundary of one instrumented step).
 *
 * `DPLORA_BENCH_BF16_FUSED=0` runs a bf16 base's LoRA C init in a pass of its own (before
 * the fused bf16 pass), for before/after runs.  `DPLORA_BENCH_HUGE_PAGES=0` leaves out the
 * huge-page advice for new large arrays (`BUFFER_REUSE.hugePages`), for before/after runs.
 * `DPLORA_BENCH_REUSE=0` turns the buffer reuse and the LoRA fusion of lib/nn off (the step
 * before them), for before/after runs.
 * `DPLORA_BENCH_QUICK=1` (or `--quick`) trims to r = 8 and fewer repetitions;
 * `DPLORA_BENCH_MEMORY_ONLY=1` (or `--memory-only`) skips the timing and writes
 * bench/results/training-memory.json instead.
 *
 * bf16 rows (seq 128, vanilla, r = 8): the same steps with the frozen base in bf16
 * (`baseDtype: 'bf16'`) timed in alternation with fp32 (fp32, bf16, fp32, ...), non-private
 * and DP; `speedup` = fp32 median / bf16 median (target >= 1.6 where the CPU has
 * AVX512_BF16). `DPLORA_BENCH_BF16_ONLY=1` (or `--bf16-only`) runs only these rows,
 * `DPLORA_BENCH_BF16_REPS` sets their timed steps (default 5).
 * Steps take seconds at seq 128, so timing is a plain loop (1 warm-up, then
 * `reps` timed steps, non-private and DP alternating so both see the same
 * machine load) rather than tinybench's time-budgeted sampling.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import { performance } from 'perf_hooks';
import { capabilities } from '../lib/native';
import { Rng } from '../lib/kernels/rng';
import { Linear, LoraLinear, Sequential, Tensor, mseLoss, setBaseDtype } from '../lib/nn';
import { AdamW } from '../lib/optim';
import { DPOptimizer } from '../lib/privacy';
import { FUSION } from '../lib/nn/ops';
import { BUFFER_REUSE } from '../lib/nn/workspace';
import { REUSE_OUTPUTS, gradInto, median, printTable, randomData, writeResults } from './util';

const D = 768;
const LAYERS = 12;

interface Shape {
  batch: number;
  seq: number;
}

function buildModel(method: 'vanilla' | 'ffa', r: number): Sequential {
  const layers = [];
  for (let l = 0; l < LAYERS; l++) {
    const lora = new LoraLinear(new Linear(D, D, { trainable: false, seed: 100 + l }), {
      r,
      alpha: 2 * r,
      method,
      seed: 200 + l,
    });
    // Nonzero B so every gradient path does real work.
    for (let i = 0; i < lora.loraB.length; i++) lora.loraB[i] = 0.01 * Math.sin(i + l);
    layers.push(lora);
  }
  const s = new Sequential(...layers);
  s.reuseOutputs = REUSE_OUTPUTS;
  return s;
}

/** Nominal flops of one non-private step (forward + backward incl. input gradients). */
function stepFlops(shape: Shape, r: number, method: 'vanilla' | 'ffa'): number {
  const rows = shape.batch * shape.seq;
  const base = 2 * rows * D * D; // one dense product
  const lora = 2 * rows * r * D; // one rank-r product with a D side
  const perLayer =
    base +
    2 * lora + // forward: x W0^T, h = x A^T, h B^T
    base + // gradIn = g W0
    2 * lora + // g_h = s g B, g_h A
    lora + // grad B = g^T h
    (method === 'vanilla' ? lora : 0); // grad A = g_h^T x
  return LAYERS * perLayer;
}

interface Measured {
  ms: number;
  /** Median process CPU time (user + system, all threads) per step. */
  cpuMs: number;
}

/**
 * Times two step functions in alternation (a, b, a, b, ...) so both see the
 * same machine load; `warmup` untimed steps each first.
 */
function measurePair(
  reps: number,
  warmup: number,
  a: () => void,
  b: () => void,
): [Measured, Measured] {
  const gc = (global as { gc?: () => void }).gc;
  const fns = [a, b];
  const times: number[][] = [[], []];
  const cpu: number[][] = [[], []];
  if (gc) gc();
  for (let w = 0; w < warmup; w++) {
    a();
    b();
  }
  for (let i = 0; i < reps; i++) {
    for (let k = 0; k < 2; k++) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      fns[k]();
      times[k].push(performance.now() - t0);
      const c = process.cpuUsage(c0);
      cpu[k].push((c.user + c.system) / 1000);
    }
  }
  return [0, 1].map((k) => ({
    ms: median(times[k]),
    cpuMs: median(cpu[k]),
  })) as [Measured, Measured];
}

/** One memory measurement: a mode of a configuration, in a fresh process. */
interface MemoryConfig {
  mode: 'nonPrivate' | 'dp';
  method: 'vanilla' | 'ffa';
  r: number;
  batch: number;
  seq: number;
  /** Steps run before the live measurement (the first one included in the peak RSS). */
  steps: number;
}

/** What {@link memoryChild} reports (MiB). */
interface MemoryFigures {
  /** RSS after building the model and data, before the first step. */
  setupRssMiB: number;
  /** High-water mark of the RSS over the whole child (Linux `VmHWM`: {@link peakRssBytes}). */
  peakRssMiB: number;
  /**
   * Largest `memoryUsage().arrayBuffers` at the phase ends and layer boundaries of every step
   * (uncollected garbage included).
   */
  arrayBuffersMiB: number;
  /**
   * Largest live ArrayBuffer total after a full GC at each phase end and layer boundary of one
   * more step.
   */
  liveArrayBuffersMiB: number;
}

/**
 * This process's RSS high-water mark.  Linux: `VmHWM` of /proc/self/status, which belongs to the
 * address space exec created; `getrusage`'s `ru_maxrss` (`resourceUsage().maxRSS`) is NOT used
 * there because Linux carries it across fork + exec, so a child would report its parent's peak
 * when that was higher.  Elsewhere: `resourceUsage().maxRSS`.
 */
function peakRssBytes(): number {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS * 1024;
}

/**
 * The child side of the memory measurement (`training.js --memory-child '<json>'`, run with
 * `--expose-gc`): builds the configuration's model and data exactly as the timing does, runs
 * `steps` steps of one mode sampling `memoryUsage().arrayBuffers` after the forward pass, each
 * layer's backward, the DP accumulate() and the update, reads the RSS high-water mark, then runs
 * one more step forcing a full GC (twice, so that the concurrent sweep of freed buffers is done)
 * after each phase and each layer's backward, for the live ArrayBuffer memory.  Prints one JSON
 * line.
 */
function memoryChild(cfg: MemoryConfig): void {
  const { batch, seq, method, r } = cfg;
  const x = new Tensor(randomData(batch * seq * D, 1), [batch, seq, D]);
  const y = randomData(batch * seq * D, 2);
  const m = buildModel(method, r);
  const lossInto = gradInto(batch * seq * D);
  const gcFn = (global as { gc?: () => void }).gc;
  if (!gcFn) throw new Error('memory child: run node with --expose-gc');
  let update: () => void;
  let accumulate: () => void = () => {};
  if (cfg.mode === 'nonPrivate') {
    const o = new AdamW(m.trainableParameters(), { lr: 1e-4 });
    update = () => {
      o.step();
      o.zeroGrad();
    };
  } else {
    const dp = new DPOptimizer(m, new AdamW(m.trainableParameters(), { lr: 1e-4 }), {
      noiseMultiplier: 1.0,
      maxGradNorm: 1.0,
      expectedBatchSize: batch,
      rng: new Rng(),
    });
    accumulate = () => dp.accumulate();
    update = () => dp.step();
  }
  let ab = 0;
  let live = 0;
  let forceGc = false;
  const sample = (): void => {
    if (forceGc) {
      gcFn();
      gcFn();
      live = Math.max(live, process.memoryUsage().arrayBuffers);
    } else {
      ab = Math.max(ab, process.memoryUsage().arrayBuffers);
    }
  };
  // A sample after every layer's backward, inside Sequential.backward (so its buffer reuse is
  // what is measured): each layer's backward wrapped on the instance.
  for (const l of m.layers) {
    const own = l.backward.bind(l);
    l.backward = (g: Tensor, inputGrad?: boolean): Tensor => {
      const gi = own(g, inputGrad);
      sample();
      return gi;
    };
  }
  const step = (): void => {
    const g = mseLoss(m.forward(x), y, lossInto()).grad;
    sample();
    m.backward(g);
    sample();
    accumulate();
    sample();
    update();
    sample();
  };
  const setupRss = process.memoryUsage().rss;
  for (let s = 0; s < cfg.steps; s++) step();
  const peakRss = peakRssBytes();
  forceGc = true;
  sample();
  step();
  const mib = (v: number): number => Math.round((v / 2 ** 20) * 10) / 10;
  const out: MemoryFigures = {
    setupRssMiB: mib(setupRss),
    peakRssMiB: mib(peakRss),
    arrayBuffersMiB: mib(ab),
    liveArrayBuffersMiB: mib(live),
  };
  process.stdout.write(`MEMORY ${JSON.stringify(out)}\n`);
}

/** Runs {@link memoryChild} for one mode of one configuration in a fresh node process. */
function measureMemory(cfg: MemoryConfig): MemoryFigures {
  const res = spawnSync(
    process.execPath,
    ['--expose-gc', __filename, '--memory-child', JSON.stringify(cfg)],
    { encoding: 'utf8', env: process.env, maxBuffer: 1 << 20 },
  );
  const line = (res.stdout ?? '').split('\n').find((l) => l.startsWith('MEMORY '));
  if (res.status !== 0 || !line)
    throw new Error(
      `memory child failed (status ${res.status}): ${(res.stderr ?? '').slice(-2000)}`,
    );
  return JSON.parse(line.slice('MEMORY '.length)) as MemoryFigures;
}

/**
 * fp32 vs bf16 frozen base at seq 128 (vanilla, r = 8): non-private and DP steps, each pair
 * timed in alternation.
 */
function bf16Rows(quick: boolean): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  const r = 8;
  for (const shape of [
    { batch: 32, seq: 128 },
    { batch: 64, seq: 128 },
  ]) {
    const reps = Number(process.env.DPLORA_BENCH_BF16_REPS ?? (quick ? 3 : 5));
    const x = new Tensor(randomData(shape.batch * shape.seq * D, 1), [shape.batch, shape.seq, D]);
    const y = randomData(shape.batch * shape.seq * D, 2);
    const lossInto = gradInto(shape.batch * shape.seq * D);
    const plainStep = (m: Sequential, o: AdamW) => () => {
      const outp = m.forward(x);
      m.backward(mseLoss(outp, y, lossInto()).grad);
      o.step();
      o.zeroGrad();
    };
    const dpStep = (m: Sequential, dp: DPOptimizer) => () => {
      const outp = m.forward(x);
      m.backward(mseLoss(outp, y, lossInto()).grad);
      dp.accumulate();
      dp.step();
    };
    const models = (['fp32', 'bf16'] as const).map((dt) => {
      const m = buildModel('vanilla', r);
      setBaseDtype(m, dt);
      return m;
    });
    const opts = models.map((m) => new AdamW(m.trainableParameters(), { lr: 1e-4 }));
    const [p32, p16] = measurePair(
      reps,
      1,
      plainStep(models[0], opts[0]),
      plainStep(models[1], opts[1]),
    );
    const dps = (['fp32', 'bf16'] as const).map((dt) => {
      const m = buildModel('vanilla', r);
      setBaseDtype(m, dt);
      const dp = new DPOptimizer(m, new AdamW(m.trainableParameters(), { lr: 1e-4 }), {
        noiseMultiplier: 1.0,
        maxGradNorm: 1.0,
        expectedBatchSize: shape.batch,
        rng: new Rng(),
      });
      return dpStep(m, dp);
    });
    const [d32, d16] = measurePair(reps, 1, dps[0], dps[1]);
    const flops = stepFlops(shape, r, 'vanilla');
    const row = {
      method: 'vanilla',
      r,
      batch: shape.batch,
      seq: shape.seq,
      fp32NonPrivateMs: p32.ms,
      bf16NonPrivateMs: p16.ms,
      nonPrivateSpeedup: p32.ms / p16.ms,
      fp32DpMs: d32.ms,
      bf16DpMs: d16.ms,
      dpSpeedup: d32.ms / d16.ms,
      nonPrivateCpuSpeedup: p32.cpuMs / p16.cpuMs,
      dpCpuSpeedup: d32.cpuMs / d16.cpuMs,
      bf16NonPrivateGflops: flops / p16.ms / 1e6,
      reps,
      loadAvg1m: Number(os.loadavg()[0].toFixed(2)),
    };
    out.push(row);
    printTable(`training step, bf16 vs fp32 base: batch=${shape.batch} seq=${shape.seq}`, [row]);
  }
  return out;
}

/** Runs the benchmark and writes bench/results/training.json. */
export async function run(): Promise<void> {
  const quick = process.env.DPLORA_BENCH_QUICK === '1' || process.argv.includes('--quick');
  const memoryOnly =
    process.env.DPLORA_BENCH_MEMORY_ONLY === '1' || process.argv.includes('--memory-only');
  const bf16Only =
    process.env.DPLORA_BENCH_BF16_ONLY === '1' || process.argv.includes('--bf16-only');
  const caps = capabilities();
  // DPLORA_BENCH_REUSE=0: the lib/nn step before buffer reuse and LoRA fusion (new arrays for
  // every activation, gradient and materialized per-sample gradient; the adapter's terms added
  // in passes of their own), for before/after runs.
  if (process.env.DPLORA_BENCH_BF16_FUSED === '0') FUSION.packedInitBf16 = false;
  if (process.env.DPLORA_BENCH_HUGE_PAGES === '0') BUFFER_REUSE.hugePages = false;
  if (process.env.DPLORA_BENCH_REUSE === '0') {
    BUFFER_REUSE.sequential = false;
    BUFFER_REUSE.perSampleRows = false;
    FUSION.lora = false;
  }
  if (bf16Only) {
    const b = bf16Rows(quick);
    writeResults('training-bf16', {
      description:
        'Median step time with the frozen 768x768 bases in bf16 vs fp32 (12 layers, LoRA r = 8, seq 128), non-private and DP, steps alternating.',
      quick,
      capabilities: caps,
      bufferReuse: process.env.DPLORA_BENCH_REUSE !== '0',
      bf16Rows: b,
    });
    return;
  }
  const shapes: Shape[] = [
    { batch: 32, seq: 1 },
    { batch: 64, seq: 1 },
    { batch: 32, seq: 128 },
    { batch: 64, seq: 128 },
  ];
  const ranks = quick ? [8] : [8, 16];
  const methods: Array<'vanilla' | 'ffa'> = ['vanilla', 'ffa'];
  const rows: Record<string, unknown>[] = [];
  for (const shape of shapes) {
    // A seq-1 step takes ~10-20 ms, so its DP/non-private ratio needs many alternating samples
    // (and a few warm-up steps for the JIT and the packed weights) to rise above the noise.
    const reps = shape.seq === 1 ? (quick ? 60 : 150) : quick ? 3 : 5;
    const warmup = shape.seq === 1 ? 10 : 1;
    const x = new Tensor(randomData(shape.batch * shape.seq * D, 1), [shape.batch, shape.seq, D]);
    const y = randomData(shape.batch * shape.seq * D, 2);
    for (const method of methods) {
      for (const r of ranks) {
        // (a) non-private
        const m1 = buildModel(method, r);
        const o1 = new AdamW(m1.trainableParameters(), { lr: 1e-4 });
        const lossInto1 = gradInto(shape.batch * shape.seq * D);
        const lossInto2 = gradInto(shape.batch * shape.seq * D);
        // (b) DP: same adapters, book-keeping clipping, noise once, expected batch size
        const m2 = buildModel(method, r);
        const dp = new DPOptimizer(m2, new AdamW(m2.trainableParameters(), { lr: 1e-4 }), {
          noiseMultiplier: 1.0,
          maxGradNorm: 1.0,
          expectedBatchSize: shape.batch,
          rng: new Rng(),
        });
        const nan = { ms: NaN, cpuMs: NaN };
        const [plain, priv] = memoryOnly
          ? [nan, nan]
          : measurePair(
              reps,
              warmup,
              () => {
                const out = m1.forward(x);
                m1.backward(mseLoss(out, y, lossInto1()).grad);
                o1.step();
                o1.zeroGrad();
              },
              () => {
                const out = m2.forward(x);
                m2.backward(mseLoss(out, y, lossInto2()).grad);
                dp.accumulate();
                dp.step();
              },
            );
        const flops = stepFlops(shape, r, method);
        // Memory: each mode in its own fresh process (after the timing, so it does not load it).
        const memSteps = shape.seq === 1 ? 50 : 3;
        const memCfg = { method, r, batch: shape.batch, seq: shape.seq, steps: memSteps };
        const memNp = measureMemory({ ...memCfg, mode: 'nonPrivate' });
        const memDp = measureMemory({ ...memCfg, mode: 'dp' });
        rows.push({
          method,
          r,
          batch: shape.batch,
          seq: shape.seq,
          nonPrivateMs: plain.ms,
          dpMs: priv.ms,
          ratio: priv.ms / plain.ms,
          nonPrivateCpuMs: plain.cpuMs,
          dpCpuMs: priv.cpuMs,
          cpuRatio: priv.cpuMs / plain.cpuMs,
          nonPrivateGflops: flops / plain.ms / 1e6,
          dpGflops: flops / priv.ms / 1e6,
          nonPrivatePeakRssMiB: memNp.peakRssMiB,
          dpPeakRssMiB: memDp.peakRssMiB,
          peakRssRatio: memDp.peakRssMiB / memNp.peakRssMiB,
          nonPrivateArrayBuffersMiB: memNp.arrayBuffersMiB,
          dpArrayBuffersMiB: memDp.arrayBuffersMiB,
          arrayBuffersRatio: memDp.arrayBuffersMiB / memNp.arrayBuffersMiB,
          nonPrivateLiveArrayBuffersMiB: memNp.liveArrayBuffersMiB,
          dpLiveArrayBuffersMiB: memDp.liveArrayBuffersMiB,
          liveArrayBuffersRatio: memDp.liveArrayBuffersMiB / memNp.liveArrayBuffersMiB,
          setupRssMiB: memNp.setupRssMiB,
          reps,
          loadAvg1m: Number(os.loadavg()[0].toFixed(2)),
        });
        printTable(`training step: ${method} r=${r} batch=${shape.batch} seq=${shape.seq}`, [
          rows[rows.length - 1],
        ]);
      }
    }
  }
  printTable('training step: DP vs non-private (12 x LoRA on frozen 768x768, MSE)', rows);
  const worst = Math.max(...rows.map((r) => r.ratio as number));
  const worstCpu = Math.max(...rows.map((r) => r.cpuRatio as number));
  const worstOf = (k: string): number => Math.max(...rows.map((r) => r[k] as number));
  const b16 = memoryOnly ? [] : bf16Rows(quick);
  writeResults(memoryOnly ? 'training-memory' : 'training', {
    description:
      'Median time and peak memory per step, 12 frozen 768x768 linear layers with LoRA, per-sample MSE; ' +
      'non-private (raw gradients) vs DP (book-keeping per-sample clipping, Gaussian noise once per batch, AdamW). ' +
      'GFLOP/s = nominal flops of the non-private step / median time. cpuMs = process CPU time (all threads), less sensitive to other load than wall time. ' +
      'Memory: each mode of each row measured in its own fresh node process (--expose-gc) running the same model and data, 50 (seq 1) or 3 (seq 128) steps: ' +
      'peakRss = the kernel high-water mark of the RSS over the child (Linux VmHWM of /proc/self/status, not getrusage maxRSS, which Linux carries over from the parent across fork + exec; model and data included; setupRss = RSS before the first step); ' +
      'arrayBuffers = the largest process.memoryUsage().arrayBuffers after the forward pass, every layer backward, accumulate() and the update of every step (uncollected garbage included); ' +
      'liveArrayBuffers = the largest ArrayBuffer total after a full GC at each of those points and after every layer backward of one more step (what the step really holds).',
    quick,
    capabilities: caps,
    note: 'Shared 2-core machine: loadAvg1m is the 1-minute load average when each row finished; timings at load > 2 are inflated and the DP/non-private ratio is noisy (steps alternate, so both modes see similar load).',
    targetRatio: 1.1,
    worstRatio: worst,
    worstCpuRatio: worstCpu,
    targetMemoryRatio: 1.2,
    worstPeakRssRatio: worstOf('peakRssRatio'),
    worstArrayBuffersRatio: worstOf('arrayBuffersRatio'),
    worstLiveArrayBuffersRatio: worstOf('liveArrayBuffersRatio'),
    rows,
    bf16Rows: b16,
  });
}

if (require.main === module && process.argv.includes('--memory-child')) {
  memoryChild(JSON.parse(process.argv[process.argv.indexOf('--memory-child') + 1]) as MemoryConfig);
} else if (require.main === module) {
  run().catch((e) => {
    console.error(e);
    process.exitCode = 1;
  });
}
