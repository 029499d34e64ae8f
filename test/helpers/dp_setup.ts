/**
 * Small private-training setups for the privacy tests.
 */
import { Linear, LoraLinear, Module, Sequential, Tanh, Tensor, mseLoss } from '../../lib/nn';
import { SGD } from '../../lib/optim';
import {
  MakePrivateOptions,
  MakePrivateWithEpsilonOptions,
  PrivacyEngine,
  PrivateTraining,
} from '../../lib/privacy';
import { lcg, randArray } from './nn_ref';

export const IN = 8;
export const OUT = 3;

/** A regression data set: x [N, seq, IN], y [N, seq, OUT]. */
export interface Data {
  n: number;
  seq: number;
  x: Float32Array;
  y: Float32Array;
}

export function makeData(n: number, seq: number, seed: number): Data {
  const rnd = lcg(seed);
  return { n, seq, x: randArray(n * seq * IN, rnd), y: randArray(n * seq * OUT, rnd) };
}

/** Rows `idx` of the data as tensors. */
export function gather(d: Data, idx: ArrayLike<number>): { x: Tensor; y: Float32Array } {
  const x = new Float32Array(idx.length * d.seq * IN);
  const y = new Float32Array(idx.length * d.seq * OUT);
  for (let k = 0; k < idx.length; k++) {
    x.set(d.x.subarray(idx[k] * d.seq * IN, (idx[k] + 1) * d.seq * IN), k * d.seq * IN);
    y.set(d.y.subarray(idx[k] * d.seq * OUT, (idx[k] + 1) * d.seq * OUT), k * d.seq * OUT);
  }
  return { x: new Tensor(x, [idx.length, d.seq, IN]), y };
}

/** LoRA (vanilla or FFA) on a frozen layer, then a trainable head. Same seed -> same weights. */
export function makeModel(
  seed = 1,
  method: 'vanilla' | 'ffa' = 'vanilla',
  hidden = 16,
  r = 4,
): Sequential {
  const rnd = lcg(seed + 100);
  const lora = new LoraLinear(new Linear(IN, hidden, { seed }), {
    r,
    alpha: 2 * r,
    method,
    seed: seed + 1,
  });
  lora.loraB = randArray(hidden * r, rnd, 0.3);
  return new Sequential(lora, new Tanh(), new Linear(hidden, OUT, { seed: seed + 2 }));
}

/** Flattened copy of the trainable parameters. */
export function snapshot(model: Module): Float64Array {
  const ps = model.trainableParameters();
  const out = new Float64Array(ps.reduce((s, p) => s + p.size, 0));
  let o = 0;
  for (const p of ps) {
    out.set(p.data, o);
    o += p.size;
  }
  return out;
}

/** One logical step through the engine: every micro-batch forward, backward, accumulate; then step. */
export function trainStep(
  engine: PrivacyEngine,
  model: Module,
  d: Data,
  opts: { zeroGrad?: boolean } = {},
): number {
  const { indices, microBatches } = engine.nextBatch();
  for (const idx of microBatches) {
    const { x, y } = gather(d, idx);
    const out = model.forward(x);
    const loss = mseLoss(out, opts.zeroGrad ? out.data.slice() : y);
    model.backward(loss.grad);
    engine.optimizer.accumulate();
  }
  engine.optimizer.step();
  return indices.length;
}

/** Records the indices of every batch the engine hands out from now on, in order. */
export function recordBatches(engine: PrivacyEngine): number[][] {
  const batches: number[][] = [];
  const next = engine.nextBatch.bind(engine);
  engine.nextBatch = () => {
    const b = next();
    batches.push(Array.from(b.indices));
    return b;
  };
  return batches;
}

/** Collects warnings instead of printing them. */
export function quiet(): { warnings: string[]; onWarning: (m: string) => void } {
  const warnings: string[] = [];
  return { warnings, onWarning: (m: string) => warnings.push(m) };
}

/** Plain SGD at `lr` over the trainable parameters of `model`. */
function sgd(model: Module, lr: number): SGD {
  return new SGD(model.trainableParameters(), { lr });
}

/** `engine.makePrivate` over `model` with plain SGD at `lr` and the other options as given. */
export function privateSgd(
  engine: PrivacyEngine,
  model: Module,
  lr: number,
  o: Omit<MakePrivateOptions, 'model' | 'optimizer'>,
): PrivateTraining {
  return engine.makePrivate({ model, optimizer: sgd(model, lr), ...o });
}

/** `engine.makePrivateWithEpsilon` over `model` with plain SGD at `lr`. */
export function privateSgdWithEpsilon(
  engine: PrivacyEngine,
  model: Module,
  lr: number,
  o: Omit<MakePrivateWithEpsilonOptions, 'model' | 'optimizer'>,
): PrivateTraining {
  return engine.makePrivateWithEpsilon({ model, optimizer: sgd(model, lr), ...o });
}

/** An engine whose budget (epsilon 0.01 at noise 0.3 and q = 0.5) cannot afford a single step. */
export function impossibleBudgetEngine(pldParameters: { gridStep: number }): PrivacyEngine {
  const engine = new PrivacyEngine();
  privateSgd(engine, makeModel(1), 0.1, {
    dataset: 100,
    batchSize: 50,
    noiseMultiplier: 0.3,
    maxGradNorm: 1,
    targetEpsilon: 0.01,
    pldParameters,
    ...quiet(),
  });
  return engine;
}
