/**
 * Public warm start of a USE-Lite LoRA classifier: it reads every public row and no private
 * row, its weights are those of plain non-private training on the public part (and not on
 * public + private), and a private run started from it has the same sampling, noise level,
 * ledger and epsilon as the same seeded run from the cold start (only the weights differ).
 */
import * as path from 'path';
import { InvalidArgumentError } from '../lib/errors';
import { Adam } from '../lib/optim';
import { PrivacyEngine } from '../lib/privacy';
import { defaultUseLiteDir, loadUseLiteSync } from '../lib/models/use_lite/model';
import { readTfjsWeights } from '../lib/models/use_lite/weights';
import {
  CachedPart,
  NonPrivateTrainOptions,
  USE_LITE_TARGETS,
  loraClassifier,
  trainNonPrivateRows,
  trainPrivateRows,
} from '../lib/models/use_lite/finetune';
import { loadPublicWarmStart, publicWarmStart } from '../lib/models/use_lite/public_warm_start';
import { lcg, randArray } from './helpers/nn_ref';
import { paramDiff } from './helpers/param_diff';
import { quiet } from './helpers/dp_setup';

jest.setTimeout(120000);

const weights = readTfjsWeights(path.join(defaultUseLiteDir(), 'model.json'));
const use = loadUseLiteSync();
const model = (rank = 2) => {
  const r = lcg(11);
  const head = { weight: randArray(2 * 512, r, 0.5), bias: randArray(2, r, 0.1) };
  return loraClassifier(
    weights,
    2,
    {
      rank,
      alpha: 2 * rank,
      method: 'vanilla',
      targets: [...USE_LITE_TARGETS],
      layers: [1],
      seed: 3,
    },
    head,
  );
};
const enc = model();
const part = (texts: string[], y: number[]): CachedPart => ({
  rows: enc.encodePrefix(texts.map((t) => use.tokenize(t))),
  y: Int32Array.from(y),
  n: texts.length,
});
const pub = part(
  ['a wonderful film', 'dull and far too long', 'I laughed, I cried', 'wooden acting', 'fine'],
  [1, 0, 1, 0, 1],
);
const priv = part(
  [
    'the best of the year',
    'not worth the ticket',
    'a joy from start to end',
    'the plot makes no sense at all',
    'great cast, great score',
    'I walked out',
  ],
  [1, 0, 1, 0, 1, 0],
);

/** `p` with every read of a row (by index) recorded in `seen`. */
const watched = (p: CachedPart, seen: number[]): CachedPart => ({
  ...p,
  rows: new Proxy(p.rows, {
    get(t, k, r) {
      if (typeof k === 'string' && /^\d+$/.test(k)) seen.push(Number(k));
      return Reflect.get(t, k, r) as unknown;
    },
  }),
});

const opts: NonPrivateTrainOptions = {
  epochs: 3,
  batchSize: 2,
  lr: 1e-2,
  seed: 6,
  schedule: 'linear',
  warmup: 0.1,
  headLr: 3e-2,
};

describe('publicWarmStart', () => {
  it('reads every public row and no private one; equals non-private training on the public part', () => {
    const seenPub: number[] = [];
    const seenPriv: number[] = [];
    const privW = watched(priv, seenPriv);
    const a = model();
    const ws = publicWarmStart(a, watched(pub, seenPub), { ...opts, onEpoch: () => undefined });
    expect([...new Set(seenPub)].sort()).toEqual([0, 1, 2, 3, 4]);
    expect(ws.publicRecords).toBe(5);
    expect(ws.options).toEqual(opts); // recorded without the callback
    // A private engine over the private part, the warm start loaded: still no private read.
    const b = model();
    const engine = new PrivacyEngine();
    engine.makePrivate({
      model: b,
      optimizer: new Adam(b.trainableParameters(), { lr: 1e-3 }),
      dataset: privW.n,
      batchSize: 3,
      noiseMultiplier: 1,
      maxGradNorm: 1,
      seed: 1,
      ...quiet(),
    });
    loadPublicWarmStart(b, ws);
    expect(seenPriv).toEqual([]);
    expect(engine.steps).toBe(0); // the warm start charged nothing

    // The reference: the same non-private loop on the public part.
    const ref = model();
    trainNonPrivateRows(ref, pub, opts);
    const start = model().trainableParameters();
    const { maxDiff, maxMove } = paramDiff(
      b.trainableParameters(),
      ref.trainableParameters(),
      start,
    );
    expect(maxDiff).toBe(0);
    expect(maxMove).toBeGreaterThan(1e-3);
    // ... and not the same loop on public + private records (the comparison sees the data).
    const both = model();
    trainNonPrivateRows(
      both,
      {
        rows: [...pub.rows, ...priv.rows],
        y: Int32Array.from([...pub.y, ...priv.y]),
        n: pub.n + priv.n,
      },
      opts,
    );
    expect(
      paramDiff(b.trainableParameters(), both.trainableParameters(), start).maxDiff,
    ).toBeGreaterThan(1e-4);
  });

  it("leaves the private run's sampling, noise level, ledger and epsilon unchanged", () => {
    const ws = publicWarmStart(model(), pub, opts);
    const run = (warm: boolean) => {
      const clf = model();
      if (warm) loadPublicWarmStart(clf, ws);
      const seen: number[] = [];
      const engine = new PrivacyEngine();
      const { optimizer } = engine.makePrivateWithEpsilon({
        model: clf,
        optimizer: new Adam(clf.trainableParameters(), { lr: 5e-3 }),
        dataset: priv.n,
        batchSize: 3,
        targetEpsilon: 8,
        targetDelta: 1e-5,
        epochs: 2,
        maxGradNorm: 1,
        maxPhysicalBatchSize: 2,
        seed: 77,
        accountant: 'rdp', // fast here; the accountant is not what is compared
        ...quiet(),
      });
      trainPrivateRows(clf, watched(priv, seen), engine, optimizer, {
        steps: 4,
        physicalBatch: 2,
      });
      const records = engine.privacyLedger.records.map((r) =>
        r.kind === 'step'
          ? [r.kind, r.step, r.noiseMultiplier, r.sampleRate, r.maxGradNorm]
          : [r.kind],
      );
      return { clf, seen, records, sigma: engine.config.noiseMultiplier, eps: engine.getEpsilon() };
    };
    const cold = run(false);
    const warm = run(true);
    expect(warm.sigma).toBe(cold.sigma);
    expect(warm.records).toEqual(cold.records);
    expect(warm.records.filter((r) => r[0] === 'step')).toHaveLength(4);
    expect(warm.eps).toBe(cold.eps);
    expect(warm.eps).toBeLessThanOrEqual(8);
    expect(warm.seen).toEqual(cold.seen); // the same Poisson batches, read in the same order
    expect(cold.seen.length).toBeGreaterThan(0);
    // the starting point did matter for the weights
    const start = model().trainableParameters();
    expect(
      paramDiff(warm.clf.trainableParameters(), cold.clf.trainableParameters(), start).maxDiff,
    ).toBeGreaterThan(1e-4);
  });

  it('refuses bad options and a warm start of other LoRA settings', () => {
    expect(() => publicWarmStart(model(), pub, { ...opts, epochs: 0 })).toThrow(/epochs/);
    expect(() => publicWarmStart(model(), pub, { ...opts, batchSize: 1.5 })).toThrow(/batchSize/);
    expect(() => publicWarmStart(model(), pub, { ...opts, lr: NaN })).toThrow(/lr/);
    const ws = publicWarmStart(model(), pub, { ...opts, epochs: 1 });
    const other = model(4);
    const before = other.trainableParameters().map((p) => p.data.slice());
    expect(() => loadPublicWarmStart(other, ws)).toThrow(InvalidArgumentError);
    expect(() => loadPublicWarmStart(other, ws)).toThrow(/warmStart/);
    other.trainableParameters().forEach((p, i) => expect(p.data).toEqual(before[i]));
  });
});
