/**
 * The DP optimizer's subspace mode (GradientSubspace): each record's gradient is replaced by its
 * coordinates in a basis, clipped there, summed and noised on the basis's rank coordinates.
 * Checked against a written-out reference (per-record gradients from the full-dimensional path,
 * projected, clipped and lifted in double), for sensitivity under crafted records, for the noise's
 * distribution and support, for unchanged accounting, and for its errors.
 */
import { Rng } from '../lib/kernels/rng';
import {
  Linear,
  LoraLinear,
  Module,
  Parameter,
  Sequential,
  Tanh,
  Tensor,
  mseLoss,
} from '../lib/nn';
import { Adam } from '../lib/optim';
import { lcg } from './helpers/nn_ref';
import { PER_SAMPLE_BUDGET } from '../lib/nn/per_sample';
import { ClippingMode, DPOptimizer, GradientSubspace, PrivacyEngine } from '../lib/privacy';
import { Data, IN, OUT, gather, makeData, makeModel, privateSgd, quiet } from './helpers/dp_setup';
import { expectCode, expectError, expectInvalidArgument } from './helpers/errors';
import {
  LAYER_KINDS,
  LayerKind,
  Recorder,
  SensRecord,
  craftedRecord,
  dpGradient,
  makeSensModel,
} from './helpers/sensitivity';
import { ksCritical, ksStatistic, normalCdf } from './helpers/stats';

const SEED = new Uint8Array(32).fill(3);

/** Total trainable size of a model. */
function sizeOf(m: Module): number {
  return m.trainableParameters().reduce((s, p) => s + p.size, 0);
}

/** `k` random orthonormal rows of length `d` (Gram-Schmidt in double), as floats. */
function orthonormalBasis(k: number, d: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const rnd = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
  const rows: Float64Array[] = [];
  for (let i = 0; i < k; i++) {
    const v = Float64Array.from({ length: d }, rnd);
    for (let pass = 0; pass < 2; pass++)
      for (const q of rows) {
        let dot = 0;
        for (let j = 0; j < d; j++) dot += q[j] * v[j];
        for (let j = 0; j < d; j++) v[j] -= dot * q[j];
      }
    const n = Math.hypot(...v);
    for (let j = 0; j < d; j++) v[j] /= n;
    rows.push(v);
  }
  const out = new Float32Array(k * d);
  rows.forEach((r, i) => out.set(r, i * d));
  return out;
}

/** Rows that are unit coordinate vectors e_c (projection and lift are exact in float). */
function coordinateBasis(cols: number[], d: number): Float32Array {
  const out = new Float32Array(cols.length * d);
  cols.forEach((c, i) => (out[i * d + c] = 1));
  return out;
}

/** A DP optimizer over `model` that hands its gradient to a Recorder (`dp.inner`); seeded noise. */
function recordingDp(
  model: Module,
  o: { sigma?: number; C?: number; expected?: number; rng?: Rng; clipping?: ClippingMode } = {},
): DPOptimizer {
  return new DPOptimizer(model, new Recorder(model.trainableParameters(), 1), {
    noiseMultiplier: o.sigma ?? 1,
    maxGradNorm: o.C ?? 1,
    expectedBatchSize: o.expected ?? 1,
    rng: o.rng ?? new Rng({ seed: SEED }),
    clipping: o.clipping,
  });
}

interface StepOptions {
  C: number;
  space?: GradientSubspace | null;
  micro?: number;
  sigma?: number;
  expected?: number;
  rng?: Rng;
}

/** The gradient the DP optimizer hands over for records `idx` of `d` (one logical batch). */
function stepGrad(model: Module, d: Data, idx: number[], o: StepOptions): Float64Array {
  const params = model.trainableParameters();
  const dp = recordingDp(model, {
    sigma: o.sigma ?? 0,
    C: o.C,
    expected: o.expected ?? 1,
    rng: o.rng,
  });
  const rec = dp.inner as Recorder;
  if (o.space) dp.setSubspace(o.space);
  const micro = o.micro ?? Math.max(1, idx.length);
  for (let s = 0; s < idx.length; s += micro) {
    const { x, y } = gather(d, idx.slice(s, s + micro));
    model.backward(mseLoss(model.forward(x), y).grad);
    dp.accumulate();
  }
  dp.step();
  return flat(params.map((_, i) => rec.last[i]));
}

function flat(parts: Float32Array[]): Float64Array {
  const out = new Float64Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function norm(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  return Math.sqrt(s);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Written-out reference: U^T sum_i clip(U g_i) / B in double, g_i from the full-dimensional path. */
function referenceSubspaceGrad(
  perRecord: Float64Array[],
  basis: Float32Array,
  k: number,
  C: number,
  expected: number,
): Float64Array {
  const d = basis.length / k;
  const sum = new Float64Array(k);
  for (const g of perRecord) {
    const c = new Float64Array(k);
    for (let r = 0; r < k; r++) for (let j = 0; j < d; j++) c[r] += basis[r * d + j] * g[j];
    const f = Math.min(1, C / (norm(c) + 1e-6));
    for (let r = 0; r < k; r++) sum[r] += f * c[r];
  }
  const out = new Float64Array(d);
  for (let r = 0; r < k; r++)
    for (let j = 0; j < d; j++) out[j] += (basis[r * d + j] * sum[r]) / expected;
  return out;
}

describe('DP optimizer: subspace mode', () => {
  const data = makeData(12, 5, 21);
  const d = sizeOf(makeModel(1));

  test('matches a written-out reference: per-record gradients projected, clipped at C and lifted', () => {
    const k = 7;
    const basis = orthonormalBasis(k, d, 5);
    const idx = Array.from({ length: 12 }, (_, i) => i);
    // Per-record gradients from the full-dimensional path (C huge: no clipping).
    const perRecord = idx.map((i) => stepGrad(makeModel(1), data, [i], { C: 1e30 }));
    for (const C of [1e30, 0.05]) {
      const want = referenceSubspaceGrad(perRecord, basis, k, C, 8);
      const space = new GradientSubspace(basis, k);
      for (const micro of [12, 5, 1]) {
        const got = stepGrad(makeModel(1), data, idx, { C, space, micro, expected: 8 });
        expect(maxAbsDiff(got, want)).toBeLessThan(1e-5 * Math.max(1e-3, norm(want)));
      }
    }
    // At C = 0.05 every record is clipped: the sum of k-vectors of norm <= C, over B.
    const clipped = stepGrad(makeModel(1), data, idx, {
      C: 0.05,
      space: new GradientSubspace(basis, k),
      expected: 8,
    });
    expect(norm(clipped)).toBeLessThanOrEqual((12 * 0.05 * (1 + 1e-5)) / 8);
    expect(norm(clipped)).toBeGreaterThan(0);
  });

  test('a full basis of coordinate vectors reproduces the full-dimensional step', () => {
    const idx = Array.from({ length: 12 }, (_, i) => i);
    const space = new GradientSubspace(
      coordinateBasis(
        Array.from({ length: d }, (_, i) => i),
        d,
      ),
      d,
    );
    for (const C of [1e30, 0.3]) {
      const full = stepGrad(makeModel(1), data, idx, { C, micro: 4, expected: 10 });
      const sub = stepGrad(makeModel(1), data, idx, { C, space, micro: 4, expected: 10 });
      expect(maxAbsDiff(sub, full)).toBeLessThan(1e-6 * Math.max(1e-3, norm(full)));
    }
  });

  test('what lies outside the subspace is not applied; the update lies in its span', () => {
    const cols = [0, 3, 17, d - 1];
    const space = new GradientSubspace(coordinateBasis(cols, d), cols.length);
    const idx = [0, 1, 2, 3];
    const full = stepGrad(makeModel(1), data, idx, { C: 1e30 });
    const sub = stepGrad(makeModel(1), data, idx, { C: 1e30, space });
    for (let j = 0; j < d; j++) expect(sub[j]).toBe(cols.includes(j) ? Math.fround(full[j]) : 0);
  });

  test('sensitivity: one crafted record moves the update by at most C, on every layer type', () => {
    const C = 0.7;
    for (const kind of LAYER_KINDS) {
      const n = sizeOf(makeSensModel(kind, 'auto'));
      const k = Math.min(3, n);
      const bases = [
        new GradientSubspace(coordinateBasis([0, n - 1, Math.floor(n / 2)].slice(0, k), n), k),
        new GradientSubspace(orthonormalBasis(k, n, 11), k),
      ];
      for (const [b, space] of bases.entries()) {
        expect(space.rank).toBe(k);
        // The update is measured after its rounding to float (as in the privacy_sensitivity
        // tests); the double sums are within C (1 + 1e-9). A float basis adds its rounding.
        const bound = C * (b === 0 ? 1 + 1e-7 : 1 + 1e-5);
        let worst = 0;
        for (let seed = 1; seed <= 24; seed++) {
          const rec = craftedRecord(kind, seed, 16);
          const other = craftedRecord(kind, seed + 1000, 16);
          const w = dpGradient(kind, 'auto', [other, rec], C, 1, space);
          const wo = dpGradient(kind, 'auto', [other], C, 1, space);
          let dist = 0;
          for (let j = 0; j < w.length; j++) dist += (w[j] - wo[j]) ** 2;
          worst = Math.max(worst, Math.sqrt(dist));
        }
        expect(worst).toBeLessThanOrEqual(bound);
        // Some crafted records are clipped: the bound is reached, not avoided by dropping them.
        expect(worst).toBeGreaterThan(0.9 * C);
      }
    }
  });

  test('a basis off orthonormal: the coordinates are clipped tighter, so the lifted share stays <= C', () => {
    const kind: LayerKind = 'lora';
    const n = sizeOf(makeSensModel(kind, 'auto'));
    const basis = orthonormalBasis(3, n, 21);
    for (let j = 0; j < n; j++) basis[j] *= 1.2; // first row of norm 1.2: defect 0.44
    const space = new GradientSubspace(basis, 3);
    let worst = 0;
    for (let seed = 1; seed <= 12; seed++) {
      const rec = craftedRecord(kind, seed, 16);
      const other = craftedRecord(kind, seed + 500, 16);
      const w = dpGradient(kind, 'auto', [other, rec], 1, 1, space);
      const wo = dpGradient(kind, 'auto', [other], 1, 1, space);
      let dist = 0;
      for (let j = 0; j < w.length; j++) dist += (w[j] - wo[j]) ** 2;
      worst = Math.max(worst, Math.sqrt(dist));
    }
    expect(worst).toBeLessThanOrEqual(1 + 1e-5);
    expect(worst).toBeGreaterThan(0.7);
    // Far from orthonormal: refused by name.
    const far = orthonormalBasis(3, n, 21);
    for (let j = 0; j < n; j++) far[j] *= 1000;
    const model = makeSensModel(kind, 'auto');
    const dp = recordingDp(model);
    expectInvalidArgument(
      () => dp.setSubspace(new GradientSubspace(far, 3)),
      'space',
      /orthonormal/,
    );
  });

  test('the optimizer keeps its own copy of the basis: later changes to it have no effect', () => {
    const idx = [0, 1, 2, 3, 4];
    const space = new GradientSubspace(orthonormalBasis(4, d, 31), 4);
    const want = stepGrad(makeModel(1), data, idx, { C: 0.3, space });
    const model = makeModel(1);
    const params = model.trainableParameters();
    const dp = recordingDp(model, { sigma: 0, C: 0.3 });
    const rec = dp.inner as Recorder;
    dp.setSubspace(space);
    space.basis.fill(NaN);
    (space as { rank: number }).rank = 1;
    const { x, y } = gather(data, idx);
    model.backward(mseLoss(model.forward(x), y).grad);
    dp.accumulate();
    dp.step();
    expect(flat(params.map((_, i) => rec.last[i]))).toEqual(want);
  });

  test('an engine batch is private from nextBatch to step: no public rows, no new subspace', () => {
    const engine = new PrivacyEngine();
    const model = makeModel(1);
    privateSgd(engine, model, 0.1, {
      dataset: data.n,
      batchSize: 6,
      noiseMultiplier: 1,
      maxGradNorm: 1,
      seed: 'subspace-batch',
      ...quiet(),
    });
    const space = new GradientSubspace(orthonormalBasis(3, d, 4), 3);
    let { microBatches } = engine.nextBatch();
    while (microBatches.length === 0) {
      engine.optimizer.step();
      ({ microBatches } = engine.nextBatch());
    }
    const { x, y } = gather(data, microBatches[0]);
    model.backward(mseLoss(model.forward(x), y).grad);
    expectCode(() => engine.optimizer.publicPerSampleGradients(), 'ERR_DPLORA_INVALID_STATE');
    expectCode(() => engine.optimizer.setSubspace(space), 'ERR_DPLORA_INVALID_STATE');
    expect(engine.optimizer.hasPendingCapture()).toBe(true); // left to the private batch
    engine.optimizer.accumulate();
    engine.optimizer.step();
    engine.optimizer.setSubspace(space); // between steps: fine
    expect(engine.optimizer.subspace).toBe(space);
  });

  test('DP-AdamBC (full-dimensional noise variance) is refused, before the ledger is charged', () => {
    const engine = new PrivacyEngine();
    const model = makeModel(1);
    const adam = new Adam(model.trainableParameters(), { lr: 1e-3, noiseVariance: 1e-4 });
    engine.makePrivate({
      model,
      optimizer: adam,
      dataset: data.n,
      batchSize: 6,
      noiseMultiplier: 1,
      maxGradNorm: 1,
      seed: 'subspace-bc',
      ...quiet(),
    });
    const space = new GradientSubspace(orthonormalBasis(3, d, 4), 3);
    expectCode(() => engine.optimizer.setSubspace(space), 'ERR_DPLORA_INVALID_STATE', {
      message: /AdamBC/,
    });
    adam.setNoiseVariance(0);
    engine.optimizer.setSubspace(space);
    adam.setNoiseVariance(1e-4); // turned back on afterwards: the step refuses
    const { microBatches } = engine.nextBatch();
    for (const idx of microBatches) {
      const { x, y } = gather(data, idx);
      model.backward(mseLoss(model.forward(x), y).grad);
      engine.optimizer.accumulate();
    }
    const before = snapshotOf(model);
    expectCode(() => engine.optimizer.step(), 'ERR_DPLORA_INVALID_STATE', { message: /AdamBC/ });
    expect(engine.steps).toBe(0);
    expect(snapshotOf(model)).toEqual(before);
  });

  test('a non-finite noisy update is never applied in subspace mode', () => {
    const model = makeModel(1);
    // Noise std 1e37, divided by an expected batch of 1e-3: Inf in float.
    const dp = recordingDp(model, { sigma: 1e17, C: 1e20, expected: 1e-3 });
    dp.setSubspace(new GradientSubspace(orthonormalBasis(3, d, 5), 3));
    const { x, y } = gather(data, [0, 1]);
    model.backward(mseLoss(model.forward(x), y).grad);
    dp.accumulate();
    const before = snapshotOf(model);
    expectError(() => dp.step(), 'PerSampleGradError', /non-finite/);
    expect(snapshotOf(model)).toEqual(before);
    expect(dp.accumulatedSamples).toBe(0);
  });

  test('a record with a NaN input contributes nothing', () => {
    const kind: LayerKind = 'lora';
    const n = sizeOf(makeSensModel(kind, 'auto'));
    const space = new GradientSubspace(orthonormalBasis(3, n, 4), 3);
    const ok = craftedRecord(kind, 7, 8);
    const bad: SensRecord = { x: ok.x.slice(), y: ok.y.slice(), seq: ok.seq };
    bad.x[2] = NaN;
    expect(dpGradient(kind, 'auto', [ok, bad], 1, 1, space)).toEqual(
      dpGradient(kind, 'auto', [ok], 1, 1, space),
    );
  });

  test('noise: N(0, (sigma C / B)^2) on each basis coordinate, nothing outside the span', () => {
    const k = 6;
    const basis = orthonormalBasis(k, d, 9);
    const space = new GradientSubspace(basis, k);
    const sigma = 1.3;
    const C = 0.5;
    const B = 4;
    const rng = new Rng({ seed: SEED });
    const coords: number[] = [];
    for (let s = 0; s < 60; s++) {
      // Records with a zero gradient: the update is the noise alone.
      const model = makeModel(1);
      const zero: Data = { ...data, y: modelOutputs(model, data) };
      const g = stepGrad(model, zero, [0, 1, 2], { C, space, sigma, expected: B, rng });
      let inside = 0;
      for (let r = 0; r < k; r++) {
        let c = 0;
        for (let j = 0; j < d; j++) c += basis[r * d + j] * g[j];
        coords.push((c * B) / (sigma * C));
        inside += c * c;
      }
      // Everything in the span: the norm of g equals that of its coordinates.
      expect(Math.abs(norm(g) - Math.sqrt(inside))).toBeLessThan(1e-5 * norm(g));
    }
    // KS against N(0, 1) at false-alarm rate 1e-4 (fixed seed: deterministic).
    expect(ksStatistic(coords, normalCdf)).toBeLessThan(ksCritical(coords.length, 1e-4));
  });

  test('the accounting is that of the full-dimensional mechanism: same epsilon, same steps', () => {
    const run = (sub: boolean): { eps: number; steps: number } => {
      const engine = new PrivacyEngine();
      const model = makeModel(1);
      privateSgd(engine, model, 0.1, {
        dataset: data.n,
        batchSize: 4,
        noiseMultiplier: 1.1,
        maxGradNorm: 1,
        seed: 'subspace-accounting',
        ...quiet(),
      });
      if (sub) engine.optimizer.setSubspace(new GradientSubspace(orthonormalBasis(5, d, 2), 5));
      for (let s = 0; s < 3; s++) {
        const { microBatches } = engine.nextBatch();
        for (const idx of microBatches) {
          const { x, y } = gather(data, idx);
          model.backward(mseLoss(model.forward(x), y).grad);
          engine.optimizer.accumulate();
        }
        engine.optimizer.step();
      }
      return { eps: engine.getEpsilon(1e-5), steps: engine.steps };
    };
    const a = run(false);
    const b = run(true);
    expect(b.steps).toBe(3);
    expect(b.eps).toBe(a.eps);
    expect(b.eps).toBeGreaterThan(0);
  });

  test('gradient-space records (accumulateGradients) are projected and clipped too', () => {
    const model = makeModel(1);
    const params = model.trainableParameters();
    const dp = recordingDp(model, { sigma: 0, C: 0.5 });
    const rec = dp.inner as Recorder;
    const basis = orthonormalBasis(4, d, 8);
    dp.setSubspace(new GradientSubspace(basis, 4));
    const row = new Float32Array(d);
    for (let j = 0; j < d; j++) row[j] = 1e30 * Math.cos(j);
    dp.accumulateGradients(row, 1);
    dp.step();
    const g = flat(params.map((_, i) => rec.last[i]));
    expect(norm(g)).toBeLessThanOrEqual(0.5 * (1 + 1e-5));
    expect(norm(g)).toBeGreaterThan(0.49);
  });

  test('publicPerSampleGradients returns per-record gradients and accumulates nothing', () => {
    const model = makeModel(1);
    const dp = recordingDp(model);
    const idx = [3, 7, 9];
    const { x, y } = gather(data, idx);
    model.backward(mseLoss(model.forward(x), y).grad);
    const { rows, count } = dp.publicPerSampleGradients();
    expect(count).toBe(3);
    expect(dp.hasPendingCapture()).toBe(false);
    expect(dp.accumulatedSamples).toBe(0);
    idx.forEach((i, r) => {
      const want = stepGrad(makeModel(1), data, [i], { C: 1e30 });
      expect(maxAbsDiff(rows.subarray(r * d, (r + 1) * d), want)).toBeLessThan(1e-6 * norm(want));
    });
    expectError(() => dp.publicPerSampleGradients(), 'PerSampleGradError', /forward and backward/);
    // Mid logical batch: refused, and the pending (possibly private) capture is left alone.
    const a = gather(data, [0, 1]);
    model.backward(mseLoss(model.forward(a.x), a.y).grad);
    dp.accumulate();
    const b = gather(data, [2]);
    model.backward(mseLoss(model.forward(b.x), b.y).grad);
    expectCode(() => dp.publicPerSampleGradients(), 'ERR_DPLORA_INVALID_STATE');
    expect(dp.hasPendingCapture()).toBe(true);
    dp.accumulate();
    expect(dp.accumulatedSamples).toBe(3);
  });

  test('large trainable sizes are projected in blocks of records', () => {
    const saved = PER_SAMPLE_BUDGET.floats;
    const idx = Array.from({ length: 12 }, (_, i) => i);
    const space = new GradientSubspace(orthonormalBasis(5, d, 12), 5);
    const whole = stepGrad(makeModel(1), data, idx, { C: 0.2, space, expected: 6 });
    try {
      PER_SAMPLE_BUDGET.floats = 2 * d + 1; // two records per block
      const blocked = stepGrad(makeModel(1), data, idx, { C: 0.2, space, expected: 6 });
      expect(maxAbsDiff(blocked, whole)).toBe(0);
    } finally {
      PER_SAMPLE_BUDGET.floats = saved;
    }
  });

  test('typed errors: basis, size, clipping mode, mid-batch change, modules without rows', () => {
    expectInvalidArgument(() => new GradientSubspace(new Float32Array(5), 2), 'basis');
    expectInvalidArgument(() => new GradientSubspace(Float32Array.of(1, NaN), 1), 'basis');
    expectInvalidArgument(() => new GradientSubspace(Float32Array.of(1, 2), 0), 'rank');
    const model = makeModel(1);
    const mk = (clipping: 'flat' | 'perLayer') => recordingDp(model, { clipping });
    const dp = mk('flat');
    expectInvalidArgument(
      () => dp.setSubspace(new GradientSubspace(orthonormalBasis(2, d + 1, 1), 2)),
      'space',
      /trainable size/,
    );
    expectInvalidArgument(() => dp.setSubspace({} as GradientSubspace), 'space');
    expectCode(
      () => mk('perLayer').setSubspace(new GradientSubspace(orthonormalBasis(2, d, 1), 2)),
      'ERR_DPLORA_INVALID_STATE',
      { message: /flat/ },
    );
    const { x, y } = gather(data, [0, 1]);
    model.backward(mseLoss(model.forward(x), y).grad);
    dp.accumulate();
    expectCode(
      () => dp.setSubspace(new GradientSubspace(orthonormalBasis(2, d, 1), 2)),
      'ERR_DPLORA_INVALID_STATE',
    );
    dp.zeroGrad();
    dp.setSubspace(new GradientSubspace(orthonormalBasis(2, d, 1), 2));
    expect(dp.subspace?.rank).toBe(2);
    dp.setSubspace(null);
    expect(dp.subspace).toBeNull();
  });
});

test('a trainable module that cannot write per-sample rows is refused by name', () => {
  // Per-sample hooks without writePerSampleRows (a custom layer written before subspace mode).
  class Custom extends Module {
    readonly perSample = true as const;
    w = new Parameter(Float32Array.of(1, 2), [2]);
    ownParameters(): Array<[string, Parameter]> {
      return [['w', this.w]];
    }
    forward(x: Tensor): Tensor {
      return x;
    }
    backward(g: Tensor): Tensor {
      return g;
    }
    captureBatch(): number {
      return -1;
    }
    addPerSampleNormsSq(): void {}
    accumulateClippedGrads(): void {}
    releaseCapture(): void {}
  }
  const model = new Sequential(new Custom());
  const dp = recordingDp(model);
  expectError(
    () => dp.setSubspace(new GradientSubspace(Float32Array.of(1, 0), 1)),
    'PerSampleGradError',
    /'0'.*writePerSampleRows/,
  );
  expect(dp.subspace).toBeNull();
});

describe('GradientSubspace.fromGradients', () => {
  test('recovers a planted subspace: orthonormal rows spanning it, share captured near 1', () => {
    const d = 300;
    const k = 5;
    const planted = orthonormalBasis(k, d, 77);
    const count = 80;
    const rows = new Float32Array(count * d);
    let s = 12345;
    const rnd = () => {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      return s / 2 ** 32 - 0.5;
    };
    for (let i = 0; i < count; i++)
      for (let r = 0; r < k; r++) {
        const a = (r + 1) * rnd();
        for (let j = 0; j < d; j++) rows[i * d + j] += a * planted[r * d + j];
      }
    for (let j = 0; j < rows.length; j++) rows[j] += 1e-5 * rnd();
    const fit = GradientSubspace.fromGradients(rows, count, { rank: k });
    expect(fit.rank).toBe(k);
    expect(fit.dim).toBe(d);
    expect(fit.captured!).toBeGreaterThan(0.9999);
    // Orthonormal rows.
    for (let a = 0; a < k; a++)
      for (let b = 0; b < k; b++) {
        let dot = 0;
        for (let j = 0; j < d; j++) dot += fit.basis[a * d + j] * fit.basis[b * d + j];
        expect(Math.abs(dot - (a === b ? 1 : 0))).toBeLessThan(1e-5);
      }
    // Each planted direction lies in the fitted span.
    for (let r = 0; r < k; r++) {
      let inSpan = 0;
      for (let a = 0; a < k; a++) {
        let dot = 0;
        for (let j = 0; j < d; j++) dot += fit.basis[a * d + j] * planted[r * d + j];
        inSpan += dot * dot;
      }
      expect(inSpan).toBeGreaterThan(1 - 1e-6);
    }
  });

  test("the fit does not depend on the gradients' scale (tiny or huge rows)", () => {
    const d = 50;
    const count = 12;
    const rows = new Float32Array(count * d);
    let st = 7;
    for (let j = 0; j < rows.length; j++) {
      st = (Math.imul(st, 1664525) + 1013904223) >>> 0;
      rows[j] = st / 2 ** 32 - 0.5;
    }
    const ref = GradientSubspace.fromGradients(rows, count, { rank: 4 });
    for (const scale of [2 ** 70, 2 ** -90]) {
      const fit = GradientSubspace.fromGradients(
        rows.map((v) => v * scale),
        count,
        { rank: 4 },
      );
      for (let r = 0; r < 4; r++) {
        let dot = 0;
        for (let j = 0; j < d; j++) dot += fit.basis[r * d + j] * ref.basis[r * d + j];
        expect(Math.abs(dot)).toBeGreaterThan(1 - 1e-4);
      }
      expect(fit.captured!).toBeCloseTo(ref.captured!, 4);
    }
  });

  test('the top directions come first (largest singular value first)', () => {
    const d = 40;
    const rows = new Float32Array(3 * d);
    rows[0 * d + 1] = 1;
    rows[1 * d + 5] = 10;
    rows[2 * d + 9] = 3;
    const fit = GradientSubspace.fromGradients(rows, 3, { rank: 2, oversample: 1 });
    expect(Math.abs(fit.basis[5])).toBeCloseTo(1, 5);
    expect(Math.abs(fit.basis[d + 9])).toBeCloseTo(1, 5);
    expect(fit.captured!).toBeCloseTo(109 / 110, 5);
  });

  test('typed errors: rows, count, rank beyond the rows or their span', () => {
    expectInvalidArgument(
      () => GradientSubspace.fromGradients(new Float32Array(7), 2, { rank: 1 }),
      'rows',
    );
    expectInvalidArgument(
      () => GradientSubspace.fromGradients(Float32Array.of(1, Infinity), 1, { rank: 1 }),
      'rows',
    );
    expectInvalidArgument(
      () => GradientSubspace.fromGradients(new Float32Array(4), 0, { rank: 1 }),
      'count',
    );
    expectInvalidArgument(
      () => GradientSubspace.fromGradients(new Float32Array(8), 2, { rank: 3 }),
      'rank',
    );
    const same = new Float32Array(12);
    for (let i = 0; i < 3; i++) same.set([1, 2, 3, 4], i * 4);
    expectInvalidArgument(
      () => GradientSubspace.fromGradients(same, 3, { rank: 2 }),
      'rank',
      /fewer/,
    );
  });
});

/** The model's outputs on every record of `d` (targets that make every gradient zero). */
function modelOutputs(model: Module, d: Data): Float32Array {
  const out = model.forward(new Tensor(d.x.slice(), [d.n, d.seq, IN])).data.slice();
  expect(out.length).toBe(d.n * d.seq * OUT);
  return out;
}

test("the README's snippet: a private run with the subspace refitted from public records", () => {
  const rnd = lcg(99);
  const rand = (n: number) => new Float32Array(n).map(() => rnd() - 0.5);
  const model = new Sequential(
    new LoraLinear(new Linear(32, 32, { trainable: false, seed: 1 }), {
      r: 4,
      alpha: 8,
      method: 'vanilla',
      seed: 2,
    }),
    new Tanh(),
    new Linear(32, 2, { seed: 3 }),
  );
  const N = 1000;
  const xs = rand(N * 32);
  const ys = rand(N * 2);
  const publicX = rand(200 * 32);
  const publicY = rand(200 * 2);
  const batch = (x: Float32Array, y: Float32Array, idx: ArrayLike<number>) => {
    const t = new Tensor(new Float32Array(idx.length * 32), [idx.length, 32]);
    const target = new Float32Array(idx.length * 2);
    Array.from(idx).forEach((i, k) => {
      t.data.set(x.subarray(i * 32, (i + 1) * 32), k * 32);
      target.set(y.subarray(i * 2, (i + 1) * 2), k * 2);
    });
    return { x: t, y: target };
  };
  const engine = new PrivacyEngine();
  const { optimizer } = engine.makePrivateWithEpsilon({
    model,
    optimizer: new Adam(model.trainableParameters(), { lr: 1e-3 }),
    dataset: { length: N },
    batchSize: 100,
    maxGradNorm: 1,
    targetEpsilon: 3,
    targetDelta: 1e-5,
    epochs: 2,
    ...quiet(),
  });
  const before = model.trainableParameters().map((p) => p.data.slice());
  const fitSubspace = () => {
    const pub = batch(publicX, publicY, [...Array(200).keys()]);
    model.backward(mseLoss(model.forward(pub.x), pub.y).grad);
    const { rows, count } = optimizer.publicPerSampleGradients();
    optimizer.setSubspace(GradientSubspace.fromGradients(rows, count, { rank: 16 }));
  };
  for (let step = 0; step < 20; step++) {
    if (step % 5 === 0) fitSubspace();
    const { microBatches } = engine.nextBatch();
    for (const idx of microBatches) {
      const b = batch(xs, ys, idx);
      model.backward(mseLoss(model.forward(b.x), b.y).grad);
      optimizer.accumulate();
    }
    optimizer.step();
  }
  expect(engine.steps).toBe(20);
  const eps = engine.getEpsilon();
  expect(eps).toBeGreaterThan(0.5);
  expect(eps).toBeLessThanOrEqual(3);
  expect(optimizer.subspace!.rank).toBe(16);
  expect(optimizer.subspace!.captured!).toBeGreaterThan(0);
  expect(optimizer.subspace!.captured!).toBeLessThanOrEqual(1);
  const moved = model.trainableParameters().some((p, i) => maxAbsDiff(p.data, before[i]) > 0);
  expect(moved).toBe(true);
});

/** Flattened copy of a model's trainable parameters. */
function snapshotOf(model: Module): Float64Array {
  return flat(model.trainableParameters().map((p) => p.data.slice()));
}
