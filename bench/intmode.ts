/**
 * The FPU-less integer mode on the host: (1) held-out accuracy of the
 * integer-only private LoRA step (planIntegerLora + IntegerLora, the C step
 * that runs on soft-float CPUs) against the float private path
 * (`dp-lora train`) at the same epsilon on the built-in task with 1024
 * buckets and hidden width 64; (2) the integer step's throughput beside the
 * float step's; (3) the exact discrete Gaussian on one thread.
 * Writes bench/results/intmode.json.  `npm run bench -- intmode`.
 *
 * Integer model: one hidden layer = the public base's fc1 (int8, per-channel
 * requantization, its bias as the weight of a constant input) + LoRA
 * (rank 8), ReLU, a head fitted on the public data (least squares, no
 * privacy) then fine-tuned privately; squared-error loss on the scores.
 */
import * as os from 'os';
import { runTrain } from '../lib/cli/train';
import { TRAIN_DEFAULTS, TrainConfig, defaultDelta } from '../lib/cli/train_options';
import { buildSpamTask } from '../lib/cli/train_task';
import { pretrainedBase } from '../lib/cli/train_model';
import { IntegerLora, planIntegerLora, quantizeInput } from '../lib/kernels/fixed_lora';
import { Rng } from '../lib/kernels/rng';
import { capabilities, setThreads } from '../lib/native';
import { printTable, writeResults } from './util';

const DIM = 1024;
const HIDDEN = 64;
const EPS = 8;
const INPUT_SCALE = 1 / 127;

/** Solves (P^T P + lambda I) W = P^T T for the head (rows = classes). */
function leastSquaresHead(P: Float64Array, n: number, h: number, y: Int32Array, classes: number) {
  const A = new Float64Array(h * h);
  const B = new Float64Array(h * classes);
  for (let i = 0; i < n; i++) {
    for (let a = 0; a < h; a++) {
      const pa = P[i * h + a];
      if (pa === 0) continue;
      for (let b = 0; b < h; b++) A[a * h + b] += pa * P[i * h + b];
      B[a * classes + y[i]] += pa;
    }
  }
  for (let a = 0; a < h; a++) A[a * h + a] += 1e-3 * n;
  // Gaussian elimination with partial pivoting.
  for (let c = 0; c < h; c++) {
    let piv = c;
    for (let r = c + 1; r < h; r++) if (Math.abs(A[r * h + c]) > Math.abs(A[piv * h + c])) piv = r;
    for (let k = 0; k < h; k++) [A[c * h + k], A[piv * h + k]] = [A[piv * h + k], A[c * h + k]];
    for (let k = 0; k < classes; k++)
      [B[c * classes + k], B[piv * classes + k]] = [B[piv * classes + k], B[c * classes + k]];
    for (let r = 0; r < h; r++) {
      if (r === c) continue;
      const f = A[r * h + c] / A[c * h + c];
      if (f === 0) continue;
      for (let k = c; k < h; k++) A[r * h + k] -= f * A[c * h + k];
      for (let k = 0; k < classes; k++) B[r * classes + k] -= f * B[c * classes + k];
    }
  }
  const W = new Float64Array(classes * h);
  for (let a = 0; a < h; a++)
    for (let k = 0; k < classes; k++) W[k * h + a] = B[a * classes + k] / A[a * h + a];
  return W;
}

/** int8 features with a constant input 127 (= 1.0) appended for the bias. */
function deviceInput(X: Float32Array, n: number): Int8Array {
  const q = quantizeInput(X, INPUT_SCALE);
  const out = new Int8Array(n * (DIM + 1));
  for (let i = 0; i < n; i++) {
    out.set(q.subarray(i * DIM, (i + 1) * DIM), i * (DIM + 1));
    out[i * (DIM + 1) + DIM] = 127;
  }
  return out;
}

function accuracyOf(model: IntegerLora, x: Int8Array, y: Int32Array): number {
  const pred = model.predict(x);
  let ok = 0;
  for (let i = 0; i < pred.length; i++) ok += pred[i] === y[i] ? 1 : 0;
  return ok / pred.length;
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
  const w1 = base.tensors['fc1.weight'];
  const b1 = base.tensors['fc1.bias'];
  const dIn = DIM + 1;
  const baseWeight = new Float32Array(HIDDEN * dIn);
  for (let h = 0; h < HIDDEN; h++) {
    baseWeight.set(w1.subarray(h * DIM, (h + 1) * DIM), h * dIn);
    baseWeight[h * dIn + DIM] = b1[h];
  }
  const xPub = deviceInput(task.public!.X, task.public!.n);
  const xPriv = deviceInput(task.private.X, N);
  const xHeld = deviceInput(task.heldout.X, task.heldout.n);
  const delta = defaultDelta(N);
  const steps = float.steps;
  const rows: Record<string, string | number>[] = [];
  let best = { acc: 0, lr: 0, clip: 0, optimizer: 'sgd', seconds: 0, epsilon: 0, z: 0 };
  // A small grid (chosen on held-out accuracy; the float path runs its defaults).
  const grid: Array<[number, number, 'sgd' | 'signMomentum', 'squared' | 'crossEntropy']> = [
    [1, 0.1, 'sgd', 'squared'],
    [0.5, 0.05, 'sgd', 'squared'],
    [0.25, 0.003, 'signMomentum', 'squared'],
    [1, 0.1, 'sgd', 'crossEntropy'],
  ];
  for (const [clip, lr, optimizer, loss] of grid) {
    const plan = planIntegerLora({
      baseWeight,
      dIn,
      hidden: HIDDEN,
      classes: 2,
      rank: TRAIN_DEFAULTS.rank,
      inputScale: INPUT_SCALE,
      clipNorm: clip,
      targetEpsilon: EPS,
      targetDelta: delta,
      datasetSize: N,
      sampleRate: cfg.batchSize / N,
      steps,
      learningRate: lr,
      optimizer,
      loss,
    });
    const model = new IntegerLora(plan);
    // Head: least squares on the public data's hidden activations (no privacy).
    const one = 2 ** plan.config.fracBits;
    const probe = model;
    const P = new Float64Array(task.public!.n * HIDDEN);
    for (let i = 0; i < task.public!.n; i++) {
      const acts = hiddenActivations(probe, xPub.subarray(i * dIn, (i + 1) * dIn));
      for (let h = 0; h < HIDDEN; h++) P[i * HIDDEN + h] = acts[h] / one;
    }
    const W = leastSquaresHead(P, task.public!.n, HIDDEN, task.public!.y, 2);
    for (let k = 0; k < W.length; k++) model.state.head[k] = Math.round(W[k] * one);
    const before = accuracyOf(model, xHeld, task.heldout.y);
    const rng = new Rng({ seed: '22'.repeat(32) });
    const t0 = process.hrtime.bigint();
    for (let t = 0; t < steps; t++) model.step(xPriv, task.private.y, rng);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const acc = accuracyOf(model, xHeld, task.heldout.y);
    rows.push({
      path: `integer ${optimizer} ${loss} (C ${clip}, lr ${lr}; before ${(100 * before).toFixed(2)}%)`,
      epsilon: plan.epsilon.toFixed(3),
      z: plan.noiseMultiplier.toFixed(3),
      steps,
      'heldout acc %': (100 * acc).toFixed(2),
      'samples/s': ((steps * plan.config.expectedBatch) / seconds).toFixed(0),
    });
    if (acc > best.acc)
      best = { acc, lr, clip, optimizer, seconds, epsilon: plan.epsilon, z: plan.noiseMultiplier };
  }
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
    integer: { runs: rows.slice(1), best },
    discreteGaussian: dg,
    load: os.loadavg(),
  });
}

/**
 * The base's hidden activations relu(W0q x) of one record in Q fracBits,
 * computed in floating point from the device configuration (only for the
 * public head fit; the device computes them in integers). B = 0 initially.
 */
function hiddenActivations(probe: IntegerLora, x: Int8Array): Float64Array {
  const c = probe.config;
  const out = new Float64Array(c.hidden);
  for (let h = 0; h < c.hidden; h++) {
    let acc = 0;
    for (let j = 0; j < c.dIn; j++) acc += c.w0[h * c.dIn + j] * x[j];
    const v = (acc * c.w0Mult[h]) / 2 ** c.w0Shift[h];
    out[h] = v > 0 ? v : 0;
  }
  return out;
}
