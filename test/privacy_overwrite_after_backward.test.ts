/**
 * An attacker (or a careless training loop) overwrites arrays the model was given between
 * backward() and the DP step: the input batch, the loss gradient.  The clipped sums must not
 * read the new values: a per-sample capture that reads its operands again at accumulate()
 * (one token per sample; tensors too large to keep, re-materialized in chunks) would
 * otherwise clip by the norm of one tensor and sum another, and a record's contribution
 * would exceed C.  With noise 0 and two records (expected batch size 2), what the DP optimizer
 * hands over is the mean of the records' clipped gradients: its norm must stay <= C (float
 * rounding included), and it must be bitwise what the same step gives when nothing is
 * overwritten.
 */
import { Rng } from '../lib/kernels/rng';
import { Linear, LoraLinear, PER_SAMPLE_BUDGET, Sequential, Tensor, mseLoss } from '../lib/nn';
import { DPOptimizer } from '../lib/privacy';
import { Recorder } from './helpers/sensitivity';

const C = 1;
const IN = 6;
const OUT = 5;
const B = 2;

type Overwrite = 'nothing' | 'input' | 'loss gradient';

/** One DP step on B records; returns the gradients handed to the optimizer. */
function step(kind: 'linear' | 'lora', seq: number, overwrite: Overwrite): Float32Array[] {
  const base = new Linear(IN, OUT, { seed: 11, trainable: kind === 'linear' });
  const layer = kind === 'linear' ? base : new LoraLinear(base, { r: 2, alpha: 4, seed: 12 });
  if (layer instanceof LoraLinear)
    for (let i = 0; i < layer.loraB.length; i++) layer.loraB[i] = 0.3 * Math.cos(i);
  const model = new Sequential(layer, new Linear(OUT, OUT, { seed: 13 }));
  model.inputGrad = false;
  const rec = new Recorder(model.trainableParameters(), 1);
  const dp = new DPOptimizer(model, rec, {
    noiseMultiplier: 0,
    maxGradNorm: C,
    expectedBatchSize: B,
    rng: new Rng(),
  });
  const xs = Float32Array.from({ length: B * seq * IN }, (_, i) => 0.2 * Math.sin(1 + i));
  const x = new Tensor(xs, seq === 1 ? [B, IN] : [B, seq, IN]);
  const out = model.forward(x);
  const loss = mseLoss(out, new Float32Array(out.size).fill(0.5));
  model.backward(loss.grad, false);
  if (overwrite === 'input') x.data.fill(1e30);
  if (overwrite === 'loss gradient') loss.grad.data.fill(-3e30);
  dp.step();
  return rec.last.map((g) => Float32Array.from(g));
}

function norm(gs: Float32Array[]): number {
  let s = 0;
  for (const g of gs) for (const v of g) s += v * v;
  return Math.sqrt(s);
}

describe('overwriting the input or the loss gradient between backward and the DP step', () => {
  const saved = PER_SAMPLE_BUDGET.floats;
  afterEach(() => {
    PER_SAMPLE_BUDGET.floats = saved;
  });

  // seq 1: the one-token path (norms from |g| |a|, sums read a and g again);
  // seq 3 with a budget of 8 floats (less than two samples' gradient): the re-materialized
  // (chunked) path;
  // seq 3 with the default budget: the materialized path (reads nothing again).
  const cases: Array<[string, 'linear' | 'lora', number, number]> = [
    ['one token per sample, Linear', 'linear', 1, saved],
    ['one token per sample, LoRA', 'lora', 1, saved],
    ['re-materialized in chunks, Linear', 'linear', 3, 8],
    ['re-materialized in chunks, LoRA', 'lora', 3, 8],
    ['materialized, LoRA', 'lora', 3, saved],
  ];
  for (const [name, kind, seq, budget] of cases) {
    for (const overwrite of ['input', 'loss gradient'] as Overwrite[]) {
      test(`${name}: the ${overwrite} overwritten after backward changes nothing`, () => {
        PER_SAMPLE_BUDGET.floats = budget;
        const clean = step(kind, seq, 'nothing');
        const attacked = step(kind, seq, overwrite);
        // The records' gradients are clipped (the loss is far from 0 for them).
        expect(norm(clean)).toBeGreaterThan(0.5 * C);
        expect(norm(attacked)).toBeLessThanOrEqual(C * (1 + 1e-6));
        expect(attacked.length).toBe(clean.length);
        attacked.forEach((g, i) => expect(Array.from(g)).toEqual(Array.from(clean[i])));
      });
    }
  }
});
