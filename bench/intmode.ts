/**
 * The FPU-less integer mode on the host: (1) held-out accuracy of the
 * integer-only private LoRA step (planIntegerLora + IntegerLora, the C step
 * that runs on soft-float CPUs) against the float private path
 * (`dp-lora train`) at the same epsilon on the built-in task with 1024
 * buckets and hidden width 64, and against the float twin of the integer
 * model (bench/intmode_twin.ts); (2) the integer step's throughput beside the
 * float step's; (3) the exact discrete Gaussian on one thread.
 * Writes bench/results/intmode.json.  `npm run bench -- intmode`.
 *
 * Integer model: the float path's own model in integers: the public base's fc1 and fc2 (int8,
 * per-channel requantization, biases in Q16), LoRA rank 8 on both (scale alpha / rank = 2), ReLU,
 * the base's head with its bias trained too; softmax cross-entropy, exponential-average momentum
 * (beta 0.9), 16 fraction bits. Same epsilon, data split, steps and sampling rate as the float
 * path. The learning rate is chosen on a validation split carved from the private training data
 * (every 5th record; the candidates train on the other 4/5 at the same rate and steps), never on
 * the held-out set; the chosen one then trains on the whole private set.
 */
import * as os from 'os';
import { runTrain } from '../lib/cli/train';
import { TRAIN_DEFAULTS, TrainConfig, defaultDelta } from '../lib/cli/train_options';
import { buildSpamTask } from '../lib/cli/train_task';
import { pretrainedBase } from '../lib/cli/train_model';
import type { DataPart } from '../lib/cli/train_task';
import {
  IntegerLora,
  IntegerLoraPlan,
  planIntegerLora,
  quantizeInput,
} from '../lib/kernels/fixed_lora';
import { Rng } from '../lib/kernels/rng';
import { capabilities, setThreads } from '../lib/native';
import { FloatTwin } from './intmode_twin';
import { printTable, writeResults } from './util';

const DIM = 1024;
const HIDDEN = 64;
const EPS = 8;
const FRAC_BITS = 16;
const MOMENTUM = 0.9;
/** Learning-rate candidates (momentum form: param -= lr m, m the average of the noisy mean). */
const LR_GRID = [0.5, 1, 1.5, 2.5];

function accuracyOf(model: IntegerLora, x: Int8Array, y: Int32Array): number {
  const pred = model.predict(x);
  let ok = 0;
  for (let i = 0; i < pred.length; i++) ok += pred[i] === y[i] ? 1 : 0;
  return ok / pred.length;
}

/** Rows of a part whose index is (or is not) a multiple of 5. */
function split(part: DataPart, validation: boolean): DataPart {
  const keep: number[] = [];
  for (let i = 0; i < part.n; i++) if ((i % 5 === 0) === validation) keep.push(i);
  const X = new Float32Array(keep.length * DIM);
  keep.forEach((r, k) => X.set(part.X.subarray(r * DIM, (r + 1) * DIM), k * DIM));
  return { ...part, X, y: Int32Array.from(keep, (r) => part.y[r]), n: keep.length };
}

/** Runs the integer-mode benchmarks and writes bench/results/intmode.json. */
export async function run(): Promise<void> {
  const quiet = { log: () => {}, print: () => {}, progress: false };
  const cfg: TrainConfig = {
    ...TRAIN_DEFAULTS,
    targetEpsilon: EPS,
    alpha: 2 * TRAIN_DEFAULTS.rank,
    dim: DIM,
    hidden: HIDDEN,
    baseline: false,
    seed: '11'.repeat(32),
  };
  const float = await runTrain(cfg, quiet);

  const task = buildSpamTask({ dim: DIM });
  const N = task.private.n;
  const { base } = pretrainedBase(
    { dim: DIM, hidden: HIDDEN, classes: 2 },
    task.public!,
    'spam:all',
  );
  const t = base.tensors;
  // The int8 input range from the PUBLIC data's largest feature.
  let maxFeature = 0;
  for (const v of task.public!.X) maxFeature = Math.max(maxFeature, Math.abs(v));
  const inputScale = maxFeature / 127;
  const delta = defaultDelta(N);
  const steps = float.steps;
  const sampleRate = cfg.batchSize / N;
  const planFor = (datasetSize: number, learningRate: number): IntegerLoraPlan =>
    planIntegerLora({
      baseWeight: t['fc1.weight'],
      baseBias: t['fc1.bias'],
      base2: { weight: t['fc2.weight'], bias: t['fc2.bias'] },
      head: { weight: t['head.weight'], bias: t['head.bias'] },
      dIn: DIM,
      hidden: HIDDEN,
      classes: 2,
      rank: TRAIN_DEFAULTS.rank,
      loraScale: cfg.alpha / TRAIN_DEFAULTS.rank,
      inputScale,
      fracBits: FRAC_BITS,
      clipNorm: cfg.clip,
      targetEpsilon: EPS,
      targetDelta: delta,
      datasetSize,
      sampleRate,
      steps,
      learningRate,
      optimizer: 'momentum',
      momentum: MOMENTUM,
      loss: 'crossEntropy',
    });
  const train = (plan: IntegerLoraPlan, part: DataPart, seed: string) => {
    const model = new IntegerLora(plan);
    const x = quantizeInput(part.X, inputScale);
    const rng = new Rng({ seed: seed.repeat(32) });
    const t0 = process.hrtime.bigint();
    let samples = 0;
    for (let s = 0; s < steps; s++) samples += model.step(x, part.y, rng);
    return { model, seconds: Number(process.hrtime.bigint() - t0) / 1e9, samples };
  };
  const xHeld = quantizeInput(task.heldout.X, inputScale);
  const rows: Record<string, string | number>[] = [];
  // Learning rate on the validation split of the private training data.
  const tune = split(task.private, false);
  const valid = split(task.private, true);
  const xValid = quantizeInput(valid.X, inputScale);
  const validation: { learningRate: number; accuracy: number }[] = [];
  for (const lr of LR_GRID) {
    const r = train(planFor(tune.n, lr), tune, '33');
    validation.push({ learningRate: lr, accuracy: accuracyOf(r.model, xValid, valid.y) });
  }
  const chosen = validation.reduce((a, b) => (b.accuracy > a.accuracy ? b : a)).learningRate;
  const plan = planFor(N, chosen);
  const before = accuracyOf(new IntegerLora(planFor(N, chosen)), xHeld, task.heldout.y);
  // The chosen configuration over several noise/sampling seeds (the spread is part of the result).
  const seeds = ['22', '44', '66'];
  const finals = seeds.map((seed) => {
    const r = train(planFor(N, chosen), task.private, seed);
    return { seed, accuracy: accuracyOf(r.model, xHeld, task.heldout.y), ...r };
  });
  const accs = finals.map((f) => f.accuracy);
  const acc = accs.reduce((a, b) => a + b, 0) / accs.length;
  const samples = finals.reduce((a, f) => a + f.samples, 0);
  const seconds = finals.reduce((a, f) => a + f.seconds, 0);
  rows.push({
    path: `integer, 2 layers, CE, momentum (lr ${chosen} chosen on validation; before ${(100 * before).toFixed(2)}%); mean of ${seeds.length} seeds (${accs.map((a) => (100 * a).toFixed(2)).join(', ')})`,
    epsilon: plan.epsilon.toFixed(3),
    z: plan.noiseMultiplier.toFixed(3),
    steps,
    'heldout acc %': (100 * acc).toFixed(2),
    'samples/s': (samples / seconds).toFixed(0),
  });
  // The float twin: the same model and hyperparameters in float64 (continuous Gaussian, same z).
  const init = planFor(N, chosen);
  const deq = (v: Int32Array | undefined, scale: number) =>
    Float64Array.from(v ?? [], (q) => q / scale);
  const one = 2 ** FRAC_BITS;
  const twin = new FloatTwin(
    { fc1: t['fc1.weight'], b1: t['fc1.bias'], fc2: t['fc2.weight'], b2: t['fc2.bias'] },
    {
      dim: DIM,
      hidden: HIDDEN,
      classes: 2,
      rank: TRAIN_DEFAULTS.rank,
      loraScale: cfg.alpha / TRAIN_DEFAULTS.rank,
      a: deq(init.state.a, one * inputScale * 2 ** (init.config.inShift ?? 0)),
      a2: deq(init.state.a2, one),
      head: deq(init.state.head, one),
      headB: deq(init.state.headB, one),
      clip: cfg.clip,
      noiseMultiplier: plan.noiseMultiplier,
      sampleRate: plan.sampleRate,
      expectedBatch: plan.config.expectedBatch,
      steps,
      learningRate: chosen,
      momentum: MOMENTUM,
      seed: 22,
    },
  );
  const t1 = process.hrtime.bigint();
  twin.train(task.private.X, task.private.y);
  const twinSeconds = Number(process.hrtime.bigint() - t1) / 1e9;
  const twinAcc = twin.accuracy(task.heldout.X, task.heldout.y);
  rows.push({
    path: 'float twin of the integer model (float64, same hyperparameters)',
    epsilon: plan.epsilon.toFixed(3),
    z: plan.noiseMultiplier.toFixed(3),
    steps,
    'heldout acc %': (100 * twinAcc).toFixed(2),
    'samples/s': ((steps * plan.config.expectedBatch) / twinSeconds).toFixed(0),
  });
  rows.unshift({
    path: 'float private (dp-lora train)',
    epsilon: float.epsilon.toFixed(3),
    z: float.noiseMultiplier.toFixed(3),
    steps: float.steps,
    'heldout acc %': (100 * float.accuracy.privateLora).toFixed(2),
    'samples/s': float.samplesPerSecond.toFixed(0),
  });
  printTable(
    `Integer-only private LoRA vs float private path, built-in task, dim ${DIM}, hidden ${HIDDEN}, epsilon ${EPS} (load ${os.loadavg()[0].toFixed(2)})`,
    rows,
  );
  printTable(
    'Learning rate of the integer step, chosen on the validation split (1/5 of the private training data)',
    validation.map((v) => ({
      lr: v.learningRate,
      'validation acc %': (100 * v.accuracy).toFixed(2),
    })),
  );

  // Exact discrete Gaussian on one thread.
  const threads = capabilities().threads;
  setThreads(1);
  const rng = new Rng({ seed: '33'.repeat(32) });
  const out = new Int32Array(1 << 18);
  const dg: Record<string, string | number>[] = [];
  for (const sigma of [1, 2 ** 16]) {
    rng.discreteGaussian(out, sigma * sigma);
    const c0 = process.cpuUsage();
    const reps = 4;
    for (let r = 0; r < reps; r++) rng.discreteGaussian(out, sigma * sigma);
    const d = process.cpuUsage(c0);
    dg.push({
      sigma,
      'M samples/s per core': ((reps * out.length) / ((d.user + d.system) / 1e6) / 1e6).toFixed(2),
    });
  }
  setThreads(threads);
  printTable('Exact discrete Gaussian, integer-only, 1 thread (CPU time)', dg);
  writeResults('intmode', {
    task: { dim: DIM, hidden: HIDDEN, epsilon: EPS, delta, privateSize: N, steps },
    float: {
      heldoutAccuracy: float.accuracy.privateLora,
      epsilon: float.epsilon,
      samplesPerSecond: float.samplesPerSecond,
    },
    integer: {
      heldoutAccuracy: acc,
      before,
      learningRate: chosen,
      validation,
      epsilon: plan.epsilon,
      noiseMultiplier: plan.noiseMultiplier,
      seeds: finals.map((f) => ({ seed: f.seed, heldoutAccuracy: f.accuracy })),
      samplesPerSecond: samples / seconds,
    },
    floatTwin: { heldoutAccuracy: twinAcc },
    rows,
    discreteGaussian: dg,
    load: os.loadavg(),
  });
}
