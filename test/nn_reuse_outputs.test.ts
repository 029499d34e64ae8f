/**
 * Opt-in reuse of what a model hands to its caller (`Sequential.reuseOutputs`) and of the loss
 * gradient (`mseLoss(..., { gradInto })`): the same memory every step, the same values as with
 * fresh arrays (bitwise, non-private and DP), and bad arrays refused with a typed error.
 */
import { InvalidArgumentError } from '../lib/errors';
import { Rng } from '../lib/kernels/rng';
import { Linear, LoraLinear, ReLU, Sequential, Tensor, mseLoss } from '../lib/nn';
import { SGD } from '../lib/optim';
import { DPOptimizer } from '../lib/privacy';
import { Recorder } from './helpers/sensitivity';

const D = 8;
const B = 3;
const T = 4;

function model(): Sequential {
  const layers = [0, 1, 2].map((l) => {
    const lora = new LoraLinear(new Linear(D, D, { seed: 40 + l, trainable: false }), {
      r: 2,
      alpha: 4,
      seed: 50 + l,
    });
    for (let i = 0; i < lora.loraB.length; i++) lora.loraB[i] = 0.2 * Math.sin(i + l);
    return lora;
  });
  return new Sequential(layers[0], new ReLU(), layers[1], layers[2]);
}

function batch(step: number): { x: Tensor; y: Float32Array } {
  const n = B * T * D;
  const x = Float32Array.from({ length: n }, (_, i) => Math.sin(0.37 * i + step));
  const y = Float32Array.from({ length: n }, (_, i) => Math.cos(0.11 * i - step));
  return { x: new Tensor(x, [B, T, D]), y };
}

describe('Sequential.reuseOutputs and mseLoss gradInto', () => {
  test('the same memory every step, the same values as fresh arrays (non-private)', () => {
    const fresh = model();
    const reused = model();
    reused.reuseOutputs = true;
    const into = new Float32Array(B * T * D);
    const optF = new SGD(fresh.trainableParameters(), { lr: 0.1 });
    const optR = new SGD(reused.trainableParameters(), { lr: 0.1 });
    let outPrev: Float32Array | null = null;
    let gInPrev: Float32Array | null = null;
    for (let s = 0; s < 3; s++) {
      const { x, y } = batch(s);
      const oF = fresh.forward(x);
      const oR = reused.forward(x);
      expect(Array.from(oR.data)).toEqual(Array.from(oF.data));
      if (outPrev) expect(oR.data.buffer).toBe(outPrev.buffer);
      outPrev = oR.data;
      const lF = mseLoss(oF, y);
      const lR = mseLoss(oR, y, { gradInto: into });
      expect(lR.grad.data).toBe(into);
      expect(lR.total).toBe(lF.total);
      expect(Array.from(lR.grad.data)).toEqual(Array.from(lF.grad.data));
      const gF = fresh.backward(lF.grad);
      const gR = reused.backward(lR.grad);
      expect(Array.from(gR.data)).toEqual(Array.from(gF.data));
      if (gInPrev) expect(gR.data.buffer).toBe(gInPrev.buffer);
      gInPrev = gR.data;
      optF.step();
      optR.step();
      optF.zeroGrad();
      optR.zeroGrad();
    }
    const pF = fresh.trainableParameters();
    const pR = reused.trainableParameters();
    pF.forEach((p, i) => expect(Array.from(pR[i].data)).toEqual(Array.from(p.data)));
  });

  test('DP steps over two micro-batches each: the same update as with fresh arrays', () => {
    const run = (reuse: boolean): Float32Array[][] => {
      const m = model();
      m.reuseOutputs = reuse;
      m.inputGrad = false;
      const rec = new Recorder(m.trainableParameters(), 1);
      const dp = new DPOptimizer(m, rec, {
        noiseMultiplier: 0,
        maxGradNorm: 0.05,
        expectedBatchSize: 2 * B,
        rng: new Rng(),
      });
      const into = new Float32Array(B * T * D);
      const got: Float32Array[][] = [];
      for (let s = 0; s < 2; s++) {
        for (let mb = 0; mb < 2; mb++) {
          const { x, y } = batch(10 * s + mb);
          const out = m.forward(x);
          const l = reuse ? mseLoss(out, y, { gradInto: into }) : mseLoss(out, y);
          m.backward(l.grad);
          // The caller's arrays are overwritten before the step (the next micro-batch reuses
          // them): the clipped sums must not notice.
          if (reuse) into.fill(1e30);
          dp.accumulate();
        }
        dp.step();
        got.push(rec.last.map((g) => Float32Array.from(g)));
      }
      return got;
    };
    const fresh = run(false);
    const reused = run(true);
    fresh.forEach((gs, s) =>
      gs.forEach((g, i) => expect(Array.from(reused[s][i])).toEqual(Array.from(g))),
    );
  });

  test('gradInto: a bad array is refused naming the argument', () => {
    const pred = new Tensor(new Float32Array(6).fill(1), [2, 3]);
    const target = new Float32Array(6);
    const bad: unknown[] = [new Float32Array(5), new Float64Array(6), [0, 0, 0, 0, 0, 0]];
    for (const b of bad) {
      expect(() => mseLoss(pred, target, { gradInto: b as Float32Array })).toThrow(
        InvalidArgumentError,
      );
      expect(() => mseLoss(pred, target, { gradInto: b as Float32Array })).toThrow(
        expect.objectContaining({ argument: 'options.gradInto' }),
      );
    }
    for (const alias of [pred.data, target]) {
      expect(() => mseLoss(pred, target, { gradInto: alias })).toThrow(
        expect.objectContaining({ argument: 'options.gradInto' }),
      );
    }
  });
});
