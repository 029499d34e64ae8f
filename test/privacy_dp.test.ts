/**
 * The privacy contract on the training path: sensitivity <= C, virtual
 * batching invariance, noise scale z*C/(qN), division by the EXPECTED batch
 * size, per-layer clipping, NaN/Inf samples, empty batches, refusal of steps
 * without per-sample information.
 */
import { Linear, Module, Parameter, Sequential, Tensor } from '../lib/nn';
import { SGD } from '../lib/optim';
import { PrivacyEngine } from '../lib/privacy';
import {
  Data,
  IN,
  OUT,
  gather,
  makeData,
  makeModel,
  privateSgd,
  quiet,
  snapshot,
  trainStep,
} from './helpers/dp_setup';
import { rawGrad, relErr } from './helpers/nn_ref';
import { mseLoss } from '../lib/nn';
import { expectError } from './helpers/errors';

function setup(o: {
  data: Data;
  batchSize: number;
  z: number;
  C: number;
  seed?: number;
  physical?: number;
  modelSeed?: number;
  method?: 'vanilla' | 'ffa';
  clipping?: 'flat' | 'perLayer';
  perLayer?: Record<string, number>;
  delta?: number;
}) {
  const model = makeModel(o.modelSeed ?? 1, o.method ?? 'vanilla');
  const engine = new PrivacyEngine();
  privateSgd(engine, model, 1, {
    dataset: { length: o.data.n },
    batchSize: o.batchSize,
    noiseMultiplier: o.z,
    maxGradNorm: o.C,
    maxPhysicalBatchSize: o.physical,
    seed: o.seed ?? 1234,
    clipping: o.clipping,
    perLayerMaxGradNorm: o.perLayer,
    delta: o.delta,
    ...quiet(),
  });
  return { model, engine };
}

/** The clipped-and-noised SUM of the last step, recovered from an SGD(lr = 1) update: -(w1 - w0) * qN. */
function summed(before: Float64Array, after: Float64Array, expectedBatch: number): Float64Array {
  return before.map((v, i) => (v - after[i]) * expectedBatch);
}

test('sensitivity: adding one sample changes the summed update by at most C (replacing: 2C)', () => {
  // Poisson DP uses add/remove neighbours: with q = 1 and zero noise the
  // summed clipped gradients of D and D + {outlier} differ by exactly the
  // outlier's clipped gradient.
  const C = 0.5;
  const dist = (a: Float64Array, b: Float64Array) =>
    Math.sqrt(a.reduce((s, v, i) => s + (v - b[i]) ** 2, 0));
  for (const method of ['vanilla', 'ffa'] as const) {
    const d1 = makeData(20, 3, 5);
    const dAdd = makeData(21, 3, 5);
    dAdd.x.set(d1.x);
    dAdd.y.set(d1.y);
    for (let j = 0; j < 3 * IN; j++) dAdd.x[20 * 3 * IN + j] = 50 * Math.sin(j + 1);
    for (let j = 0; j < 3 * OUT; j++) dAdd.y[20 * 3 * OUT + j] = -40;
    const dRep: Data = { ...d1, x: d1.x.slice(), y: d1.y.slice() };
    dRep.x.set(dAdd.x.subarray(20 * 3 * IN), 7 * 3 * IN);
    dRep.y.set(dAdd.y.subarray(20 * 3 * OUT), 7 * 3 * OUT);
    const [s1, sAdd, sRep] = [d1, dAdd, dRep].map((d) => {
      const { model, engine } = setup({ data: d, batchSize: d.n, z: 0, C, method });
      const w0 = snapshot(model);
      trainStep(engine, model, d);
      return summed(w0, snapshot(model), d.n);
    });
    expect(dist(s1, sAdd)).toBeLessThanOrEqual(C * (1 + 1e-5));
    expect(dist(s1, sAdd)).toBeGreaterThan(0.99 * C); // the outlier is clipped, not dropped
    expect(dist(s1, sRep)).toBeLessThanOrEqual(2 * C * (1 + 1e-5));
    // Without clipping the outlier alone would move the sum far more than C.
    const m = makeModel(1, method);
    const o = gather(dAdd, [20]);
    const g = rawGrad(m, m.trainableParameters(), o.x, (y) => mseLoss(y, o.y), 0, 1);
    expect(Math.sqrt(g.reduce((s, v) => s + v * v, 0))).toBeGreaterThan(10 * C);
  }
});

test('virtual batching: physical sizes 1, 7 and all give the same update (with noise)', () => {
  const d = makeData(30, 2, 9);
  const finals = [1, 7, undefined].map((physical) => {
    const { model, engine } = setup({ data: d, batchSize: 12, z: 1.1, C: 0.8, physical });
    const sizes = [trainStep(engine, model, d), trainStep(engine, model, d)];
    expect(engine.optimizer.lastStepStats!.microBatches).toBe(
      physical === undefined ? (sizes[1] > 0 ? 1 : 0) : Math.ceil(sizes[1] / physical),
    );
    return snapshot(model);
  });
  expect(relErr(finals[0], finals[2])).toBeLessThan(1e-5);
  expect(relErr(finals[1], finals[2])).toBeLessThan(1e-5);
});

test('the noisy sum is divided by the EXPECTED batch size q*N, not the realized size', () => {
  const d = makeData(20, 1, 11);
  const { model, engine } = setup({ data: d, batchSize: 10, z: 0, C: 1e6 });
  const ref = makeModel(1);
  const w0 = snapshot(model);
  const n = trainStep(engine, model, d);
  expect(n).not.toBe(10); // this seed realizes a batch size different from the expected 10
  const got = summed(w0, snapshot(model), 10);
  // Reference: replay the same Poisson draw with the same seed.
  const e2 = new PrivacyEngine();
  const m2 = makeModel(1);
  e2.makePrivate({
    model: m2,
    optimizer: new SGD(m2.trainableParameters(), { lr: 1 }),
    dataset: 20,
    batchSize: 10,
    noiseMultiplier: 0,
    maxGradNorm: 1,
    seed: 1234,
    ...quiet(),
  });
  const { indices } = e2.nextBatch();
  expect(indices.length).toBe(n);
  const { x, y } = gather(d, indices);
  const expected = rawGrad(ref, ref.trainableParameters(), x, (out) => mseLoss(out, y), 0, n);
  expect(relErr(got, expected)).toBeLessThan(1e-4);
});

test('noise: zero gradients, update std = z C / (q N)', () => {
  // Every coordinate of -update*qN is N(0, (zC)^2).  With n ~ 6000 draws the
  // sample std has relative sd 1/sqrt(2n) ~ 0.009; the 5-sigma bounds below
  // false-alarm with probability ~ 6e-7 (and the seed is fixed).
  const d = makeData(50, 1, 13);
  const z = 1.3;
  const C = 0.7;
  const model = makeModel(2, 'vanilla', 48, 8);
  const engine = new PrivacyEngine();
  privateSgd(engine, model, 1, {
    dataset: 50,
    batchSize: 10,
    noiseMultiplier: z,
    maxGradNorm: C,
    seed: 77,
    ...quiet(),
  });
  const values: number[] = [];
  for (let s = 0; s < 8; s++) {
    const w0 = snapshot(model);
    trainStep(engine, model, d, { zeroGrad: true });
    const w1 = snapshot(model);
    for (let i = 0; i < w0.length; i++) values.push(w1[i] - w0[i]);
  }
  const n = values.length;
  expect(n).toBeGreaterThan(4000);
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const sd = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1));
  const sigma = (z * C) / 10;
  expect(Math.abs(sd / sigma - 1)).toBeLessThan(5 / Math.sqrt(2 * n));
  expect(Math.abs(mean) / (sigma / Math.sqrt(n))).toBeLessThan(5);
  expect(engine.optimizer.noiseStd).toBeCloseTo(z * C, 12);
});

test('per-layer clipping: each layer clipped to C_k, noise std z*sqrt(sum C_k^2)', () => {
  const d = makeData(1, 2, 17);
  for (let j = 0; j < d.y.length; j++) d.y[j] = 30;
  const thresholds = { '0': 0.3, '2': 0.4 };
  const { model, engine } = setup({
    data: d,
    batchSize: 1,
    z: 0,
    C: 1,
    clipping: 'perLayer',
    perLayer: thresholds,
    delta: 1e-5,
  });
  const w0 = snapshot(model);
  trainStep(engine, model, d);
  const sum = summed(w0, snapshot(model), 1);
  // Trainable layout: 0.lora_A, 0.lora_B | 2.weight, 2.bias
  const sizes = model.trainableParameters().map((p) => p.size);
  const l0 = sizes[0] + sizes[1];
  const n0 = Math.sqrt(sum.slice(0, l0).reduce((s, v) => s + v * v, 0));
  const n1 = Math.sqrt(sum.slice(l0).reduce((s, v) => s + v * v, 0));
  expect(n0).toBeLessThanOrEqual(0.3 * (1 + 1e-5));
  expect(n0).toBeGreaterThan(0.3 * 0.999);
  expect(n1).toBeLessThanOrEqual(0.4 * (1 + 1e-5));
  expect(n1).toBeGreaterThan(0.4 * 0.999);
  const e2 = setup({
    data: d,
    batchSize: 1,
    z: 2,
    C: 1,
    clipping: 'perLayer',
    perLayer: thresholds,
    delta: 1e-5,
  }).engine;
  expect(e2.optimizer.noiseStd).toBeCloseTo(2 * 0.5, 12);
  const e3 = setup({ data: d, batchSize: 1, z: 2, C: 1, clipping: 'perLayer', delta: 1e-5 }).engine; // default C/sqrt(K)
  expect(e3.optimizer.tracked.map((t) => t.maxGradNorm)).toEqual([
    1 / Math.sqrt(2),
    1 / Math.sqrt(2),
  ]);
  expect(e3.optimizer.noiseStd).toBeCloseTo(2, 12);
});

test('NaN/Inf samples get factor 0 and never reach the weights', () => {
  const d = makeData(12, 2, 19);
  d.x[3 * 2 * IN + 1] = NaN;
  d.x[8 * 2 * IN + 4] = Infinity;
  d.y[5 * 2 * OUT] = NaN;
  for (const physical of [undefined, 4]) {
    const { model, engine } = setup({ data: d, batchSize: 12, z: 0, C: 1e6, physical });
    const w0 = snapshot(model);
    trainStep(engine, model, d);
    const w1 = snapshot(model);
    expect(w1.every((v) => Number.isFinite(v))).toBe(true);
    expect(engine.optimizer.lastStepStats!.nonfinite).toBe(3);
    const good = [0, 1, 2, 4, 6, 7, 9, 10, 11];
    const ref = makeModel(1);
    const { x, y } = gather(d, good);
    const expected = rawGrad(
      ref,
      ref.trainableParameters(),
      x,
      (out) => mseLoss(out, y),
      0,
      good.length,
    );
    expect(relErr(summed(w0, w1, 12), expected)).toBeLessThan(1e-4);
  }
  // With noise on, a NaN sample still leaves the weights finite.
  const { model, engine } = setup({ data: d, batchSize: 6, z: 1, C: 1 });
  for (let s = 0; s < 3; s++) trainStep(engine, model, d);
  expect(snapshot(model).every((v) => Number.isFinite(v))).toBe(true);
});

test('empty Poisson batches: noise-only step, still accounted', () => {
  const d = makeData(200, 1, 23);
  const { model, engine } = setup({ data: d, batchSize: 1, z: 0, C: 1, seed: 5 });
  let empties = 0;
  for (let s = 0; s < 12; s++) {
    const w0 = snapshot(model);
    const n = trainStep(engine, model, d);
    if (n === 0) {
      empties++;
      expect(Array.from(snapshot(model))).toEqual(Array.from(w0)); // z = 0: nothing to add
      expect(engine.optimizer.lastStepStats!.microBatches).toBe(0);
    }
  }
  expect(empties).toBeGreaterThan(0); // P(empty) = (1 - 1/200)^200 ~ 0.37 per step
  expect(engine.steps).toBe(12);
  const noisy = setup({ data: d, batchSize: 1, z: 1, C: 1, seed: 5 });
  let checked = false;
  for (let s = 0; s < 30 && !checked; s++) {
    const w0 = snapshot(noisy.model);
    if (trainStep(noisy.engine, noisy.model, d) === 0) {
      expect(relErr(snapshot(noisy.model), w0)).toBeGreaterThan(1e-3); // noise was added
      checked = true;
    }
  }
  expect(checked).toBe(true);
});

/** The options of the structural checks: 10 records, batches of 2, noise 1, C = 1, warnings kept. */
const smallRun = () => ({
  dataset: 10,
  batchSize: 2,
  noiseMultiplier: 1,
  maxGradNorm: 1,
  ...quiet(),
});

describe('refusals', () => {
  test('makePrivate throws for a trainable parameter without per-sample support', () => {
    class Scale extends Module {
      w = new Parameter(Float32Array.from([1]), [1]);
      ownParameters(): Array<[string, Parameter]> {
        return [['w', this.w]];
      }
      forward(x: Tensor): Tensor {
        return new Tensor(
          x.data.map((v) => v * this.w.data[0]),
          x.shape,
        );
      }
      backward(g: Tensor): Tensor {
        return g;
      }
    }
    const model = new Sequential(new Linear(IN, OUT), new Scale());
    const engine = new PrivacyEngine();
    expectError(
      () => privateSgd(engine, model, 1, smallRun()),
      'PerSampleGradError',
      /'1'.*1\.w.*no per-sample/,
    );
    (model.layers[1] as Scale).w.requiresGrad = false; // frozen: fine
    expect(() => privateSgd(new PrivacyEngine(), model, 1, smallRun())).not.toThrow();
  });

  test('a non-finite noisy gradient is never applied', () => {
    // A (faulty) per-sample module that reports finite norms but NaN sums.
    class Faulty extends Module {
      readonly perSample = true as const;
      w = new Parameter(Float32Array.from([1, 2]), [2]);
      private pending = -1;
      ownParameters(): Array<[string, Parameter]> {
        return [['w', this.w]];
      }
      forward(x: Tensor): Tensor {
        return x;
      }
      backward(g: Tensor): Tensor {
        this.pending = g.shape[0];
        return g;
      }
      captureBatch(): number {
        return this.pending;
      }
      addPerSampleNormsSq(out: Float64Array): void {
        out.fill(0.25);
      }
      accumulateClippedGrads(_f: Float32Array, sink: (p: Parameter) => Float64Array): void {
        sink(this.w)[0] = NaN;
      }
      releaseCapture(): void {
        this.pending = -1;
      }
    }
    const model = new Faulty();
    const engine = new PrivacyEngine();
    engine.makePrivate({
      model,
      optimizer: new SGD([model.w], { lr: 1 }),
      dataset: 4,
      batchSize: 4,
      noiseMultiplier: 1,
      maxGradNorm: 1,
      seed: 3,
      delta: 1e-3,
      ...quiet(),
    });
    const { indices } = engine.nextBatch();
    model.backward(
      model.forward(new Tensor(new Float32Array(indices.length), [indices.length, 1])),
    );
    engine.optimizer.accumulate();
    expectError(() => engine.optimizer.step(), 'PerSampleGradError', /non-finite/);
    expect(Array.from(model.w.data)).toEqual([1, 2]);
  });

  test('optimizer must cover exactly the trainable parameters', () => {
    const model = makeModel(1);
    expectError(
      () =>
        new PrivacyEngine().makePrivate({
          model,
          optimizer: new SGD(model.trainableParameters().slice(1), { lr: 1 }),
          ...smallRun(),
        }),
      'PerSampleGradError',
      /0\.lora_A.*not in the optimizer/,
    );
  });

  test('a step without per-sample information throws and changes nothing', () => {
    const d = makeData(10, 1, 29);
    // (a) raw gradients from a non-private backward
    {
      const { model, engine } = setup({ data: d, batchSize: 5, z: 1, C: 1 });
      const w0 = snapshot(model);
      const { microBatches } = engine.nextBatch();
      model.setGradMode('sum');
      const { x, y } = gather(d, microBatches[0]);
      model.backward(mseLoss(model.forward(x), y).grad);
      expectError(
        () => engine.optimizer.step(),
        'PerSampleGradError',
        /raw \(non-private\) gradient/,
      );
      expect(Array.from(snapshot(model))).toEqual(Array.from(w0));
      expect(engine.steps).toBe(0);
    }
    // (b) a parameter unfrozen after makePrivate
    {
      const { model, engine } = setup({ data: d, batchSize: 5, z: 1, C: 1 });
      (model.layers[0] as unknown as { base: Linear }).base.weight.requiresGrad = true;
      expectError(
        () => trainStep(engine, model, d),
        'PerSampleGradError',
        /0\.base\.weight.*became trainable/,
      );
    }
    // (c) no logical batch drawn from the engine
    {
      const { engine } = setup({ data: d, batchSize: 5, z: 1, C: 1 });
      expectError(() => engine.optimizer.step(), 'PerSampleGradError', /nextBatch/);
    }
    // (d) a micro-batch skipped
    {
      const { model, engine } = setup({ data: d, batchSize: 5, z: 1, C: 1, physical: 1 });
      let { microBatches } = engine.nextBatch();
      for (let k = 0; k < 50 && microBatches.length < 2; k++) {
        engine.abandonBatch(); // a second nextBatch() without a step is refused; abandoning is charged
        microBatches = engine.nextBatch().microBatches;
      }
      const charged = engine.steps;
      expect(microBatches.length).toBeGreaterThan(1);
      const { x, y } = gather(d, microBatches[0]);
      model.backward(mseLoss(model.forward(x), y).grad);
      engine.optimizer.accumulate();
      expectError(() => engine.optimizer.step(), 'PerSampleGradError', /were accumulated/);
      // A half-done batch is not silently dropped by drawing the next one ...
      expectError(() => engine.nextBatch(), 'InvalidStateError', /not been stepped/);
      // ... only explicitly, and the abandoned batch is charged.
      engine.abandonBatch();
      expect(engine.steps).toBe(charged + 1);
      expect(() => engine.nextBatch()).not.toThrow();
    }
    // (e) a trainable module left out of the backward pass
    {
      const { model, engine } = setup({ data: d, batchSize: 5, z: 1, C: 1 });
      const { microBatches } = engine.nextBatch();
      const { x } = gather(d, microBatches[0]);
      const head = model.layers[2];
      const h = model.layers[1].forward(model.layers[0].forward(x));
      const out = head.forward(h);
      head.backward(mseLoss(out, new Float32Array(out.size)).grad);
      expectError(
        () => engine.optimizer.accumulate(),
        'PerSampleGradError',
        /no per-sample information for trainable module\(s\) 0/,
      );
    }
  });
});
