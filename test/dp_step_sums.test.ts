/**
 * The DP step's last stage and its reused double sums (lib/privacy/dp_optimizer.ts):
 * - `noisyMean` equals the plain reference `Math.fround((sum + noise) * scale)`
 *   element by element and counts the non-finite results;
 * - the clipped sums are kept across steps (zeroed), so a step's gradient is
 *   bit-identical to the same batch's gradient in a fresh optimizer, after a
 *   normal step and after a refused (non-finite) one: nothing of an earlier
 *   logical batch leaks into a later one.
 */
import { noisyMean } from '../lib/kernels/linalg';
import { Rng } from '../lib/kernels/rng';
import { Linear, LoraLinear, Module, Parameter, Sequential, Tensor, mseLoss } from '../lib/nn';
import { DPOptimizer } from '../lib/privacy';
import { lcg, randArray } from './helpers/nn_ref';
import { Recorder } from './helpers/sensitivity';

const IN = 7;
const OUT = 5;

function makeModel(): Module {
  const lora = new LoraLinear(new Linear(IN, 9, { trainable: false, seed: 3 }), { r: 3, seed: 4 });
  lora.loraB = randArray(9 * 3, lcg(5), 0.5);
  return new Sequential(lora, new Linear(9, OUT, { seed: 7 }));
}

function batch(seed: number, b: number, seq: number): { x: Tensor; y: Float32Array } {
  return {
    x: new Tensor(randArray(b * seq * IN, lcg(seed), 3), [b, seq, IN]),
    y: randArray(b * seq * OUT, lcg(seed + 1)),
  };
}

function setup(): { m: Module; rec: Recorder; dp: DPOptimizer } {
  const m = makeModel();
  const rec = new Recorder(m.trainableParameters(), 1);
  const dp = new DPOptimizer(m, rec, {
    noiseMultiplier: 0,
    maxGradNorm: 0.7,
    expectedBatchSize: 4,
    rng: new Rng({ seed: new Uint8Array(32) }),
  });
  return { m, rec, dp };
}

function runStep(s: { m: Module; dp: DPOptimizer }, seed: number, b: number, seq: number): void {
  const { x, y } = batch(seed, b, seq);
  s.m.backward(mseLoss(s.m.forward(x), y).grad);
  s.dp.accumulate();
  s.dp.step();
}

describe('DP step: noisy mean and reused sums', () => {
  test('noisyMean matches the plain reference and counts non-finite results', () => {
    const rnd = lcg(11);
    const n = 1001;
    const sum = new Float64Array(n);
    const noise = new Float32Array(n);
    for (let j = 0; j < n; j++) {
      const e = Math.floor(rnd() * 80) - 40;
      sum[j] = (rnd() - 0.5) * 2 ** e;
      noise[j] = Math.fround((rnd() - 0.5) * 2 ** (e - 3));
    }
    sum[5] = 1e300; // overflows float after scaling
    sum[6] = -1e300;
    sum[7] = NaN;
    const scale = 1 / 37;
    const want = noise.map((v, j) => Math.fround((sum[j] + v) * scale));
    const g = Float32Array.from(noise);
    expect(noisyMean(sum, g, scale)).toBe(3);
    expect(Array.from(g)).toEqual(Array.from(want));
    expect(noisyMean(new Float64Array(0), new Float32Array(0), 1)).toBe(0);
    expect(() => noisyMean(sum, new Float32Array(n - 1), 1)).toThrow(/\bg has length/);
  });

  test.each([1, 3])('a step sees only its own batch (seq %d)', (seq) => {
    const fresh = setup();
    runStep(fresh, 40, 4, seq);
    const used = setup();
    runStep(used, 20, 3, seq);
    runStep(used, 40, 4, seq);
    expect(used.rec.last.map((g) => Array.from(g))).toEqual(
      fresh.rec.last.map((g) => Array.from(g)),
    );
    // And the first step's gradient really was different.
    const other = setup();
    runStep(other, 20, 3, seq);
    expect(other.rec.last.map((g) => Array.from(g))).not.toEqual(
      fresh.rec.last.map((g) => Array.from(g)),
    );
  });

  test('after a refused step the sums start from zero again', () => {
    const fresh = setup();
    runStep(fresh, 40, 4, 1);
    const used = setup();
    const { x, y } = batch(20, 3, 1);
    used.m.backward(mseLoss(used.m.forward(x), y).grad);
    used.dp.accumulate();
    // Poison one accumulated sum so the step is refused as non-finite.
    const p = used.m.trainableParameters()[0];
    (used.dp as unknown as { acc: Map<Parameter, Float64Array> }).acc.get(p)![0] = Infinity;
    expect(() => used.dp.step()).toThrow(/non-finite/);
    runStep(used, 40, 4, 1);
    expect(used.rec.last.map((g) => Array.from(g))).toEqual(
      fresh.rec.last.map((g) => Array.from(g)),
    );
  });
});
