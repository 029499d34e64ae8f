/**
 * Contract item 4: per-record randomness (LoRA dropout, Dropout) is keyed by
 * (run key, step, record index, layer), never by a record's position.
 *
 * Regression: masks used to come from one stream per layer in row order, so
 * with a fixed seed removing one record changed the masks of every record
 * after it (other records' contributions moved by 1.5-1.9 C) and micro-batch
 * splits changed the update.
 */
import { Rng } from '../lib/kernels/rng';
import {
  Dropout,
  Linear,
  LoraLinear,
  Module,
  Sequential,
  Tensor,
  isPerSampleModule,
  mseLoss,
  recordDropoutMask,
  layerKey,
} from '../lib/nn';
import { Recorder, dist } from './helpers/sensitivity';
import { DPOptimizer, PrivacyEngine } from '../lib/privacy';
import { InvalidArgumentError, InvalidStateError } from '../lib/errors';
import { lcg, randArray } from './helpers/nn_ref';
import { binomialTwoSidedP } from './helpers/record_stats';
import { privateSgd } from './helpers/dp_setup';

const IN = 6;
const OUT = 3;
const SEQ = 4;
const KEY = new Uint32Array([11, 22, 33, 44]);

function makeModel(): Module {
  const lora = new LoraLinear(new Linear(IN, 8, { trainable: false, seed: 3 }), {
    r: 2,
    dropout: 0.5,
    seed: 4,
  });
  lora.loraB = randArray(8 * 2, lcg(5), 0.5);
  return new Sequential(lora, new Dropout(0.3, 6), new Linear(8, OUT, { seed: 7 }));
}

const N = 10;
const X = randArray(N * SEQ * IN, lcg(8));
const Y = randArray(N * SEQ * OUT, lcg(9));

function gather(idx: number[]): { x: Tensor; y: Float32Array } {
  const x = new Float32Array(idx.length * SEQ * IN);
  const y = new Float32Array(idx.length * SEQ * OUT);
  idx.forEach((r, k) => {
    x.set(X.subarray(r * SEQ * IN, (r + 1) * SEQ * IN), k * SEQ * IN);
    y.set(Y.subarray(r * SEQ * OUT, (r + 1) * SEQ * OUT), k * SEQ * OUT);
  });
  return { x: new Tensor(x, [idx.length, SEQ, IN]), y };
}

/** Outputs and per-sample squared norms of one per-sample forward/backward pass. */
function perRecord(idx: number[], step = 0): { out: Float32Array[]; norms: Float64Array } {
  const m = makeModel();
  m.setGradMode('perSample');
  m.setRecordContext({ key: KEY, step, records: idx });
  const { x, y } = gather(idx);
  const out = m.forward(x);
  m.backward(mseLoss(out, y).grad);
  const norms = new Float64Array(idx.length);
  for (const [, mod] of m.namedModules())
    if (isPerSampleModule(mod) && mod.captureBatch() >= 0) mod.addPerSampleNormsSq(norms);
  const per = SEQ * OUT;
  return {
    out: idx.map((_, k) => out.data.slice(k * per, (k + 1) * per)),
    norms,
  };
}

/** The DP gradient (noise 0, C) of the records `idx` split into micro-batches of `micro`. */
function dpGrad(idx: number[], micro: number, C = 0.5): Float64Array {
  const m = makeModel();
  const params = m.trainableParameters();
  const rec = new Recorder(params, 1);
  const dp = new DPOptimizer(m, rec, {
    noiseMultiplier: 0,
    maxGradNorm: C,
    expectedBatchSize: 1,
    rng: new Rng({ seed: new Uint8Array(32) }),
  });
  for (let s = 0; s < idx.length; s += micro) {
    const part = idx.slice(s, s + micro);
    m.setRecordContext({ key: KEY, step: 0, records: part });
    const { x, y } = gather(part);
    m.backward(mseLoss(m.forward(x), y).grad);
    dp.accumulate();
  }
  dp.step();
  const out: number[] = [];
  params.forEach((p, i) => out.push(...(rec.last[i] ?? new Float32Array(p.size))));
  return Float64Array.from(out);
}

describe('per-record randomness', () => {
  test('removing or adding a record leaves every other record bit-identical', () => {
    const all = [0, 1, 2, 3, 4, 5, 6, 7];
    const full = perRecord(all);
    for (const drop of [0, 3, 7]) {
      const idx = all.filter((r) => r !== drop);
      const part = perRecord(idx);
      idx.forEach((r, k) => {
        expect(Array.from(part.out[k])).toEqual(Array.from(full.out[r]));
        expect(part.norms[k]).toBe(full.norms[r]);
      });
    }
    // Order does not matter either.
    const rev = perRecord([...all].reverse());
    all.forEach((r, k) => expect(rev.norms[all.length - 1 - k]).toBe(full.norms[r]));
  });

  test('regression: leave-one-out contributions stay within C with dropout', () => {
    const C = 0.5;
    const all = [0, 1, 2, 3, 4, 5];
    const g = dpGrad(all, all.length, C);
    for (const drop of all) {
      const c =
        dist(
          g,
          dpGrad(
            all.filter((r) => r !== drop),
            all.length,
            C,
          ),
        ) / C;
      expect(c).toBeLessThanOrEqual(1 + 1e-5);
    }
  });

  test('any micro-batch split gives the same update up to float rounding', () => {
    const all = [9, 2, 5, 0, 7, 1, 3, 8];
    const ref = dpGrad(all, all.length);
    const scale = Math.max(...ref.map(Math.abs));
    expect(scale).toBeGreaterThan(0);
    for (const micro of [1, 3, 5]) {
      const g = dpGrad(all, micro);
      expect(Math.max(...g.map((v, i) => Math.abs(v - ref[i])))).toBeLessThanOrEqual(1e-6 * scale);
    }
  });

  test('masks change with the step, the record and the layer; keep rate is 1 - p', () => {
    const ctx = { key: KEY, step: 0, records: [0, 1], layer: layerKey('0') };
    const p = 0.3;
    const m = recordDropoutMask(ctx, 2, 5000, p);
    const kept = m.reduce((s, v) => s + (v > 0 ? 1 : 0), 0);
    // Two-sided binomial test at a 1e-6 false-alarm rate.
    expect(binomialTwoSidedP(kept, 10000, 1 - p)).toBeGreaterThan(1e-6);
    const r0 = m.slice(0, 5000);
    const r1 = m.slice(5000);
    expect(Array.from(r0)).not.toEqual(Array.from(r1));
    const s1 = recordDropoutMask({ ...ctx, step: 1 }, 2, 5000, p).slice(0, 5000);
    expect(Array.from(s1)).not.toEqual(Array.from(r0));
    const l1 = recordDropoutMask({ ...ctx, layer: layerKey('1') }, 2, 5000, p).slice(0, 5000);
    expect(Array.from(l1)).not.toEqual(Array.from(r0));
    const again = recordDropoutMask(ctx, 2, 5000, p).slice(0, 5000);
    expect(Array.from(again)).toEqual(Array.from(r0));
    // Agreement between two independent masks is about (1-p)^2 + p^2.
    let agree = 0;
    for (let j = 0; j < 5000; j++) agree += r0[j] > 0 === s1[j] > 0 ? 1 : 0;
    expect(binomialTwoSidedP(agree, 5000, (1 - p) ** 2 + p * p)).toBeGreaterThan(1e-6);
  });

  test('private training refuses dropout without records; a size mismatch is named', () => {
    const m = makeModel();
    m.setGradMode('perSample');
    const { x } = gather([0, 1]);
    expect(() => m.forward(x)).toThrow(InvalidStateError);
    m.setRecordContext({ key: KEY, step: 0, records: [0, 1, 2] });
    expect(() => m.forward(x)).toThrow(InvalidArgumentError);
    expect(() => m.setRecordContext({ key: KEY, step: -1, records: [0] })).toThrow(
      InvalidArgumentError,
    );
    expect(() => m.setRecordContext({ key: KEY, step: 0, records: [0.5] })).toThrow(
      InvalidArgumentError,
    );
  });

  test('the engine keys masks by record: a fixed seed reproduces, micro-batches use useRecords', () => {
    const run = (physical?: number) => {
      const model = makeModel();
      const engine = new PrivacyEngine();
      privateSgd(engine, model, 0.1, {
        dataset: N,
        batchSize: 5,
        noiseMultiplier: 0.5,
        maxGradNorm: 1,
        seed: 77,
        maxPhysicalBatchSize: physical,
        delta: 1e-3,
        onWarning: () => {},
      });
      for (let s = 0; s < 3; s++) {
        const { microBatches } = engine.nextBatch();
        for (const idx of microBatches) {
          if (microBatches.length > 1) engine.useRecords(idx);
          const { x, y } = gather(Array.from(idx));
          model.backward(mseLoss(model.forward(x), y).grad);
          engine.optimizer.accumulate();
        }
        engine.optimizer.step();
      }
      return Float64Array.from(model.trainableParameters().flatMap((p) => Array.from(p.data)));
    };
    const a = run();
    const b = run();
    expect(Array.from(a)).toEqual(Array.from(b));
    const c = run(2);
    expect(Math.max(...a.map((v, i) => Math.abs(v - c[i])))).toBeLessThan(1e-5);
  });
});
