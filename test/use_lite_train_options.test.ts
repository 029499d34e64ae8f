/**
 * The optional training settings of trainNonPrivateRows (learning-rate schedule, warmup, a
 * head learning rate of its own, a per-epoch callback): the schedule's multipliers equal the
 * closed forms, the defaults are unchanged, and a scheduled run equals a plain Adam loop that
 * sets the learning rate by hand.
 */
import * as path from 'path';
import { Parameter } from '../lib/nn';
import { Adam } from '../lib/optim';
import { crossEntropyLoss } from '../lib/nn/losses';
import { defaultUseLiteDir, loadUseLiteSync } from '../lib/models/use_lite/model';
import { readTfjsWeights } from '../lib/models/use_lite/weights';
import {
  CachedPart,
  USE_LITE_TARGETS,
  forwardRows,
  loraClassifier,
  scheduleMultiplier,
  trainNonPrivateRows,
} from '../lib/models/use_lite/finetune';
import { lcg, randArray } from './helpers/nn_ref';
import { paramDiff } from './helpers/param_diff';

jest.setTimeout(120000);

const weights = readTfjsWeights(path.join(defaultUseLiteDir(), 'model.json'));
const use = loadUseLiteSync();
const texts = [
  'a wonderful film, the best of the year',
  'dull and far too long',
  'I laughed, I cried',
  'the plot makes no sense at all and the acting is wooden',
  'fine',
];
const labels = [1, 0, 1, 0, 1];

function model() {
  const rnd = lcg(11);
  const head = { weight: randArray(2 * 512, rnd, 0.5), bias: randArray(2, rnd, 0.1) };
  return loraClassifier(
    weights,
    2,
    { rank: 2, alpha: 4, method: 'vanilla', targets: [...USE_LITE_TARGETS], layers: [1], seed: 3 },
    head,
  );
}

const clf0 = model();
const part: CachedPart = {
  rows: clf0.encodePrefix(texts.map((t) => use.tokenize(t))),
  y: Int32Array.from(labels),
  n: texts.length,
};

const snapshot = (ps: Parameter[]) => ps.map((p) => p.data.slice());

describe('scheduleMultiplier', () => {
  it('equals the closed forms of warmup, linear and cosine decay', () => {
    const total = 10;
    for (let s = 0; s < total; s++) {
      expect(scheduleMultiplier('constant', 0, s, total)).toBe(1);
      expect(scheduleMultiplier('linear', 0, s, total)).toBeCloseTo(1 - s / 10, 12);
      expect(scheduleMultiplier('cosine', 0, s, total)).toBeCloseTo(
        (1 + Math.cos((Math.PI * s) / 10)) / 2,
        12,
      );
      // warmup 0.2 of 10 steps = 2 steps: 1/2, 2/2, then the decay over the other 8
      const w = s < 2 ? (s + 1) / 2 : null;
      expect(scheduleMultiplier('linear', 0.2, s, total)).toBeCloseTo(w ?? 1 - (s - 2) / 8, 12);
      expect(scheduleMultiplier('constant', 0.2, s, total)).toBeCloseTo(w ?? 1, 12);
    }
  });
});

describe('trainNonPrivateRows options', () => {
  it('headLr equal to lr gives the same weights as the default single optimizer', () => {
    const a = model();
    const b = model();
    trainNonPrivateRows(a, part, { epochs: 2, batchSize: 2, lr: 5e-3, seed: 1 });
    trainNonPrivateRows(b, part, { epochs: 2, batchSize: 2, lr: 5e-3, seed: 1, headLr: 5e-3 });
    const wa = snapshot(a.trainableParameters());
    const wb = snapshot(b.trainableParameters());
    wa.forEach((w, i) => expect(Array.from(wb[i])).toEqual(Array.from(w)));
  });

  it('headLr 0 leaves the head as it was and still trains LoRA; onEpoch runs once per epoch', () => {
    const clf = model();
    const head0 = snapshot(clf.head.trainableParameters());
    const heads = new Set(clf.head.trainableParameters());
    const lora0 = snapshot(clf.trainableParameters().filter((p) => !heads.has(p)));
    const seen: number[] = [];
    trainNonPrivateRows(clf, part, {
      epochs: 3,
      batchSize: 5,
      lr: 5e-3,
      seed: 1,
      headLr: 0,
      onEpoch: (e) => seen.push(e),
    });
    expect(seen).toEqual([1, 2, 3]);
    clf.head
      .trainableParameters()
      .forEach((p, i) => expect(Array.from(p.data)).toEqual(Array.from(head0[i])));
    const lora1 = clf.trainableParameters().filter((p) => !heads.has(p));
    expect(lora1.length).toBeGreaterThan(0);
    expect(lora1.some((p, i) => p.data.some((v, j) => v !== lora0[i][j]))).toBe(true);
  });

  it('a linear schedule with warmup equals an Adam loop with the learning rate set by hand', () => {
    // One batch per epoch (batch = n), 4 epochs: warmup 0.25 -> 1 step; multipliers 1, 1, 2/3, 1/3.
    const lr = 4e-3;
    const a = model();
    trainNonPrivateRows(a, part, {
      epochs: 4,
      batchSize: part.n,
      lr,
      seed: 1,
      schedule: 'linear',
      warmup: 0.25,
    });
    const b = model();
    b.train();
    b.setGradMode('sum');
    const opt = new Adam(b.trainableParameters(), { lr });
    const idx = [...Array(part.n).keys()].sort((x, y) => part.rows[x].length - part.rows[y].length);
    for (const m of [1, 1, 2 / 3, 1 / 3]) {
      b.zeroGrad();
      const loss = crossEntropyLoss(
        forwardRows(b, part, idx),
        idx.map((i) => part.y[i]),
      );
      const g = loss.grad.data;
      for (let i = 0; i < g.length; i++) g[i] /= idx.length;
      b.backward(loss.grad, false);
      opt.lr = lr * m;
      opt.step();
    }
    const pa = a.trainableParameters();
    const { maxDiff, maxMove } = paramDiff(
      pa,
      b.trainableParameters(),
      model().trainableParameters(),
    );
    expect(maxMove).toBeGreaterThan(1e-3); // the weights moved
    expect(maxDiff).toBeLessThan(1e-6);
    // and the schedule matters: a constant rate ends elsewhere
    const c = model();
    trainNonPrivateRows(c, part, { epochs: 4, batchSize: part.n, lr, seed: 1 });
    const constDiff = paramDiff(c.trainableParameters(), pa, pa).maxDiff;
    expect(constDiff).toBeGreaterThan(1e-4);
  });
});
