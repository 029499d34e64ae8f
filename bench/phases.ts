/**
 * Where the training step's time goes, against the FMA peak measured in the same run:
 * every matrix product of one LoRA layer of the side-by-side workload (frozen 768x768
 * base, rank r adapter; rows = B * T) timed on its own at its real shape, with the
 * frozen base products both packed per call (sgemm) and packed once (PackedMatrix), the
 * per-sample norms and clipped sums of the DP step, and the whole step (12 layers, plain
 * SGD as in ../shared/bench/side_by_side).
 *
 * The whole step runs, alternating step by step: the default path (frozen weights packed
 * once, buffers reused, LoRA terms fused as the C init of the base products), the same without
 * the fusion, without fusion and buffer reuse (new arrays for every activation and gradient:
 * the code before both), and without layer 0's input gradient (`backward(g, false)`),
 * non-private and DP.
 *
 * `DPLORA_PHASES_SHAPES="64x128x8 32x1x8"` picks the (B x T x r) shapes;
 * `DPLORA_PHASES_STEP=0` skips the whole-step timing, `DPLORA_PHASES_AB=0` times only the
 * default path, `DPLORA_PHASES_NOREUSE=0` drops the steps without buffer reuse (their garbage
 * is collected during the next variant's step), `DPLORA_PHASES_OFF=1` adds steps with
 * frozen-weight packing off,
 * `DPLORA_PHASES_PROFILE=1` then runs the default np and DP steps again with every addon call
 * timed (bench/step_profile.ts: CPU ms and page faults per call, the rest outside the addon),
 * `DPLORA_PHASES_REPS` sets the whole-step repetitions (default 9 at T > 1, 20 at T = 1; the
 * median reported, with the fastest and slowest), and `DPLORA_PHASES_CPU=1` measures phases,
 * steps and the peak in process CPU time.
 */
import * as os from 'os';
import { performance } from 'perf_hooks';
import { capabilities } from '../lib/native';
import {
  benchFmaPeak,
  clippedSum,
  PackedMatrix,
  perSampleGradNormSq,
  sgemm,
} from '../lib/kernels/linalg';
import { Rng } from '../lib/kernels/rng';
import { Linear, LoraLinear, Sequential, Tensor, mseLoss } from '../lib/nn';
import { setFrozenWeightPacking } from '../lib/nn/packed_weight';
import { FUSION } from '../lib/nn/ops';
import { BUFFER_REUSE } from '../lib/nn/workspace';
import { SGD } from '../lib/optim';
import { DPOptimizer } from '../lib/privacy';
import { REUSE_OUTPUTS, gradInto, median, printTable, randomData, writeResults } from './util';
import { profileSteps, ProfileRow } from './step_profile';

const D = 768;
const LAYERS = 12;

/** CPU time (user + system, all threads) in ms since `c0`. */
function cpuMs(c0: NodeJS.CpuUsage): number {
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
}

/**
 * Median ms of `fn` over enough repetitions for about `budgetMs` (at least 3): wall time,
 * or with `DPLORA_PHASES_CPU=1` the process CPU time (robust on a loaded machine when
 * DPLORA_THREADS=1; with more threads it also counts the pool's waiting).
 */
function time(fn: () => void, budgetMs = 400): number {
  const useCpu = process.env.DPLORA_PHASES_CPU === '1';
  fn();
  const t0 = performance.now();
  fn();
  const once = Math.max(performance.now() - t0, 1e-3);
  const reps = Math.max(3, Math.min(200, Math.round(budgetMs / once)));
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const a = performance.now();
    const c = process.cpuUsage();
    fn();
    ts.push(useCpu ? cpuMs(c) : performance.now() - a);
  }
  return median(ts);
}

/** FMA peak in flop/s (per CPU-second with DPLORA_PHASES_CPU=1). */
function peak(): number {
  const useCpu = process.env.DPLORA_PHASES_CPU === '1';
  const caps = capabilities();
  // Flops of one probe iteration per thread (native/kernels/roofline/roofline.h).
  const perIter: Record<string, number> = { scalar: 64, avx2: 192, avx512: 768, neon: 128 };
  const iters = 4_000_000;
  let best = 0;
  for (let i = 0; i < 3; i++) {
    const c = process.cpuUsage();
    const rate = benchFmaPeak(iters);
    // Work over CPU time (the probe's own wall-clock rate misses the time the
    // process waits around it).
    const cpu = cpuMs(c) / 1e3;
    best = Math.max(best, useCpu ? (iters * perIter[caps.isa] * caps.threads) / cpu : rate);
  }
  return best;
}

function model(r: number): Sequential {
  const layers = [];
  for (let l = 0; l < LAYERS; l++) {
    const lora = new LoraLinear(new Linear(D, D, { trainable: false, seed: 100 + l }), {
      r,
      alpha: r,
      seed: 200 + l,
    });
    lora.loraB = randomData(lora.loraB.length, 300 + l).map((v) => 0.02 * v);
    layers.push(lora);
  }
  const s = new Sequential(...layers);
  s.reuseOutputs = REUSE_OUTPUTS;
  return s;
}

/** Nominal flops of one non-private step (every product, layer 0's input gradient included). */
function stepFlops(rows: number, r: number): number {
  return LAYERS * (4 * rows * D * D + 12 * rows * D * r);
}

export async function run(): Promise<void> {
  const caps = capabilities();
  const shapes = (process.env.DPLORA_PHASES_SHAPES ?? '64x128x8 32x1x8')
    .split(/\s+/)
    .filter(Boolean)
    .map((s) => s.split('x').map(Number));
  const load0 = os.loadavg();
  const peak0 = peak();
  const rows: Record<string, unknown>[] = [];
  const steps: Record<string, unknown>[] = [];
  const profile: Array<ProfileRow & { shape: string }> = [];
  for (const [B, T, r] of shapes) {
    const n = B * T;
    const x = randomData(n * D, 1);
    const g = randomData(n * D, 2);
    const w = randomData(D * D, 3).map((v) => v * 0.03);
    const a = randomData(r * D, 4);
    const bm = randomData(D * r, 5);
    const h = randomData(n * r, 6);
    const gh = randomData(n * r, 7);
    const y = new Float32Array(n * D);
    const small = new Float32Array(Math.max(n * r, D * r));
    const wsmall = new Float32Array(D * r);
    const wt = PackedMatrix.pack(w, { k: D, n: D, transB: true });
    const wp = PackedMatrix.pack(w, { k: D, n: D });
    const f = new Float32Array(B).fill(0.5);
    // The LoRA terms as the C init of the packed base products (LoraLinear's fused path).
    const hb = randomData(n * (r + 1), 8);
    const upPacked = PackedMatrix.pack(randomData(D * (r + 1), 10), {
      k: r + 1,
      n: D,
      transB: true,
    });
    const downPacked = PackedMatrix.pack(a, { k: r, n: D });
    const shp = { batch: B, seq: T };
    const cases: Array<[string, number, () => void]> = [
      [
        'base fwd x W^T (sgemm)',
        2 * n * D * D,
        () => sgemm(x, w, y, { m: n, n: D, k: D, transB: true }),
      ],
      ['base fwd x W^T (packed)', 2 * n * D * D, () => wt.multiply(x, y, { m: n, n: D, k: D })],
      ['base dgrad g W (sgemm)', 2 * n * D * D, () => sgemm(g, w, y, { m: n, n: D, k: D })],
      ['base dgrad g W (packed)', 2 * n * D * D, () => wp.multiply(g, y, { m: n, n: D, k: D })],
      [
        'fwd x W^T + [h|1][sB|b]^T (packed, fused init)',
        2 * n * D * (D + r + 1),
        () => wt.multiplyWithInit(x, y, { m: n, n: D, k: D }, { a: hb, b: upPacked }),
      ],
      [
        'dgrad g W + gh A (packed, fused init)',
        2 * n * D * (D + r),
        () => wp.multiplyWithInit(g, y, { m: n, n: D, k: D }, { a: gh, b: downPacked }),
      ],
      [
        'lora y = [h|1][sB|b]^T (C init)',
        2 * n * D * (r + 1),
        () => upPacked.multiply(hb, y, { m: n, n: D, k: r + 1 }),
      ],
      [
        'lora h = x A^T',
        2 * n * D * r,
        () => sgemm(x, a, small, { m: n, n: r, k: D, transB: true }),
      ],
      [
        'lora y += h B^T',
        2 * n * D * r,
        () => sgemm(h, bm, y, { m: n, n: D, k: r, transB: true, beta: 1 }),
      ],
      ['lora gh = g B', 2 * n * D * r, () => sgemm(g, bm, small, { m: n, n: r, k: D })],
      ['lora dx += gh A', 2 * n * D * r, () => sgemm(gh, a, y, { m: n, n: D, k: r, beta: 1 })],
      [
        'np wgrad B = g^T h',
        2 * n * D * r,
        () => sgemm(g, h, small, { m: D, n: r, k: n, transA: true }),
      ],
      [
        'np wgrad A = gh^T x',
        2 * n * D * r,
        () => sgemm(gh, x, small, { m: r, n: D, k: n, transA: true }),
      ],
      [
        'dp clipped sum B',
        2 * n * D * r,
        () => clippedSum(h, g, { ...shp, inDim: r, outDim: D }, f, wsmall),
      ],
      [
        'dp clipped sum A',
        2 * n * D * r,
        () => clippedSum(x, gh, { ...shp, inDim: D, outDim: r }, f, wsmall),
      ],
      ['dp norms B', 0, () => perSampleGradNormSq(h, g, { ...shp, inDim: r, outDim: D })],
      ['dp norms A', 0, () => perSampleGradNormSq(x, gh, { ...shp, inDim: D, outDim: r })],
    ];
    for (const [name, flops, fn] of cases) {
      const ms = time(fn);
      rows.push({
        shape: `${B}x${T}x${r}`,
        phase: name,
        ms,
        'GFLOP/s': flops ? flops / ms / 1e6 : '',
      });
    }
    // Whole step, packing off / on alternating; non-private and DP.
    if (process.env.DPLORA_PHASES_STEP === '0') continue;
    const m = model(r);
    m.train();
    const xt = new Tensor(x, [B, T, D]);
    const target = randomData(n * D, 9);
    const opt = new SGD(m.trainableParameters(), { lr: 1e-3 / B });
    const dpModel = model(r);
    dpModel.train();
    const dp = new DPOptimizer(dpModel, new SGD(dpModel.trainableParameters(), { lr: 1e-3 }), {
      noiseMultiplier: 1,
      maxGradNorm: 1,
      expectedBatchSize: B,
      rng: new Rng(),
    });
    const npGrad = gradInto(n * D);
    const dpGrad = gradInto(n * D);
    const npStep = (inputGrad: boolean) => () => {
      opt.zeroGrad();
      const out = m.forward(xt);
      m.backward(mseLoss(out, target, npGrad()).grad, inputGrad);
      opt.step();
    };
    const dpStep = (inputGrad: boolean) => () => {
      const out = dpModel.forward(xt);
      dpModel.backward(mseLoss(out, target, dpGrad()).grad, inputGrad);
      dp.step();
    };
    // Whole steps vary by a few percent from step to step (garbage collection, page faults of
    // fresh arrays, other load): 9 timed repetitions by default at T > 1 (5 before), the median
    // reported with the fastest and slowest step beside it.
    const reps = Number(process.env.DPLORA_PHASES_REPS ?? (T > 1 ? 9 : 20));
    // DPLORA_PHASES_OFF=1 adds the steps with frozen-weight packing off; DPLORA_PHASES_AB=0
    // drops the steps with the old allocation (no buffer reuse) and without layer 0's dgrad.
    const withOff = process.env.DPLORA_PHASES_OFF === '1';
    const withAb = process.env.DPLORA_PHASES_AB !== '0';
    const useCpu = process.env.DPLORA_PHASES_CPU === '1';
    // [name, frozen-weight packing, buffer reuse, LoRA fusion, layer 0's input gradient, step]
    type Variant = [string, boolean, boolean, boolean, boolean, (ig: boolean) => () => void];
    const all: Variant[] = [];
    for (const [mode, fn] of [
      ['np', npStep],
      ['dp', dpStep],
    ] as Array<[string, (ig: boolean) => () => void]>) {
      if (withOff) all.push([`${mode}, packing off`, false, true, true, true, fn]);
      if (withAb) {
        if (process.env.DPLORA_PHASES_NOREUSE !== '0')
          all.push([`${mode}, no reuse, no fusion`, true, false, false, true, fn]);
        all.push([`${mode}, no fusion`, true, true, false, true, fn]);
        all.push([`${mode}, C init not in the base pass`, true, true, true, true, fn]);
      }
      all.push([mode, true, true, true, true, fn]);
      if (withAb) all.push([`${mode}, no layer-0 dgrad`, true, true, true, false, fn]);
    }
    const variants = all;
    const t: Record<string, number[]> = {};
    // Minor page faults per step: first touches of freshly mapped memory (the step's new
    // arrays); they cost ~10 us each on this VM and explain most of the step-to-step spread.
    const faults: Record<string, number[]> = {};
    for (const [key] of variants) {
      t[key] = [];
      faults[key] = [];
    }
    for (let i = 0; i <= reps; i++) {
      for (const [key, pack, reuse, fuse, ig, fn] of variants) {
        setFrozenWeightPacking(pack);
        BUFFER_REUSE.sequential = reuse;
        BUFFER_REUSE.perSampleRows = reuse;
        FUSION.lora = fuse;
        FUSION.packedInit = !key.includes('C init not in the base pass');
        const step = fn(ig);
        const f0 = process.resourceUsage().minorPageFault;
        const t0 = performance.now();
        const c0 = process.cpuUsage();
        step();
        if (i > 0) {
          t[key].push(useCpu ? cpuMs(c0) : performance.now() - t0);
          faults[key].push(process.resourceUsage().minorPageFault - f0);
        }
      }
    }
    FUSION.lora = true;
    FUSION.packedInit = true;
    BUFFER_REUSE.sequential = true;
    BUFFER_REUSE.perSampleRows = true;
    setFrozenWeightPacking(true);
    // DPLORA_PHASES_PROFILE=1: the default np and DP steps again, every addon call timed.
    if (process.env.DPLORA_PHASES_PROFILE === '1') {
      const prof = profileSteps({ np: npStep(true), dp: dpStep(true) }, reps);
      for (const row of prof) profile.push({ shape: `${B}x${T}x${r}`, ...row });
    }
    for (const [key, , , , ig] of variants) {
      // Flops the step performs: without layer 0's input gradient, one base and one LoRA
      // product fewer.
      const fl = stepFlops(n, r) - (ig ? 0 : 2 * n * D * D + 2 * n * D * r);
      const ms = median(t[key]);
      steps.push({
        shape: `${B}x${T}x${r}`,
        step: key,
        ms,
        'min ms': Math.min(...t[key]),
        'max ms': Math.max(...t[key]),
        'page faults': median(faults[key]),
        'GFLOP/s': fl / ms / 1e6,
      });
    }
  }
  const peak1 = peak();
  const load1 = os.loadavg();
  // Fractions of the larger of the two peak probes (the conservative one: a probe slowed by
  // other load underestimates the peak).
  const pk = Math.max(peak0, peak1) / 1e9;
  for (const row of [...rows, ...steps]) {
    const g = row['GFLOP/s'];
    row['of peak'] = typeof g === 'number' ? g / pk : '';
  }
  printTable(
    `Step phases, ISA ${caps.isa}, ${caps.threads} threads; FMA peak ${(peak0 / 1e9).toFixed(0)} GFLOP/s ` +
      `(end of run: ${(peak1 / 1e9).toFixed(0)}; fractions of the larger); load ` +
      `${load0.map((v) => v.toFixed(2)).join(' ')} -> ${load1.map((v) => v.toFixed(2)).join(' ')}`,
    rows,
  );
  printTable(
    'Whole step (12 layers, SGD; median of the repetitions, fastest and slowest beside it; ' +
      'of peak: flops performed, DP counted with the non-private flops)',
    steps,
  );
  if (profile.length > 0)
    printTable(
      'Profile of the default steps (CPU ms and minor page faults per step, by addon call)',
      profile as unknown as Record<string, unknown>[],
    );
  writeResults(`phases-${caps.isa}`, {
    isa: caps.isa,
    threads: caps.threads,
    fmaPeak: [peak0, peak1],
    loadavg: [load0, load1],
    phases: rows,
    steps,
    ...(profile.length > 0 ? { profile } : {}),
  });
}
