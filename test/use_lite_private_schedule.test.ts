/**
 * The private path's learning-rate options: lrSchedule (shared with the non-private loop)
 * equals the closed forms; HeadLrAdam equals a plain two-group Adam written out here; and
 * trainPrivateRows sets the DP optimizer's lr step by step exactly as a hand-written loop of
 * privateStep calls does (same seeded sampling and noise, same weights), charging one ledger
 * step per private step and restoring the lr at the end.
 */
import * as path from 'path';
import { Parameter } from '../lib/nn';
import { Adam } from '../lib/optim';
import { InvalidArgumentError } from '../lib/errors';
import { PrivacyEngine } from '../lib/privacy';
import { defaultUseLiteDir, loadUseLiteSync } from '../lib/models/use_lite/model';
import { readTfjsWeights } from '../lib/models/use_lite/weights';
import {
  CachedPart,
  HeadLrAdam,
  USE_LITE_TARGETS,
  loraClassifier,
  lrSchedule,
  privateStep,
  trainPrivateRows,
} from '../lib/models/use_lite/finetune';
import { lcg, randArray } from './helpers/nn_ref';
import { paramDiff } from './helpers/param_diff';
import { quiet } from './helpers/dp_setup';

jest.setTimeout(120000);

describe('lrSchedule', () => {
  it('equals the closed forms, warmup included', () => {
    const total = 20;
    const w = 3; // round(0.15 * 20)
    for (let s = 0; s < total; s++) {
      const warm = s < w ? (s + 1) / w : null;
      const p = (s - w) / (total - w);
      expect(lrSchedule('constant', 0, total)(s)).toBe(1);
      expect(lrSchedule('constant', 0.15, total)(s)).toBeCloseTo(warm ?? 1, 12);
      expect(lrSchedule('linear', 0.15, total)(s)).toBeCloseTo(warm ?? 1 - p, 12);
      expect(lrSchedule('cosine', 0.15, total)(s)).toBeCloseTo(
        warm ?? 0.5 * (1 + Math.cos(Math.PI * p)),
        12,
      );
    }
    // the last step of a decay is small but not 0; warmup 1 is all warmup
    expect(lrSchedule('linear', 0, 4)(3)).toBeCloseTo(0.25, 12);
    expect(lrSchedule('linear', 1, 4)(3)).toBe(1);
  });

  it('refuses an unknown schedule or a warmup outside [0, 1]', () => {
    expect(() => lrSchedule('step' as 'linear', 0, 10)).toThrow(InvalidArgumentError);
    expect(() => lrSchedule('linear', 1.5, 10)).toThrow(/warmup/);
    expect(() => lrSchedule('linear', -0.1, 10)).toThrow(/warmup/);
    expect(() => lrSchedule('linear', NaN, 10)).toThrow(/warmup/);
  });
});

/** Plain Adam on one parameter (float64 state), the update written out. */
class RefAdam {
  m: Float64Array;
  v: Float64Array;
  t = 0;
  constructor(readonly w: Float64Array) {
    this.m = new Float64Array(w.length);
    this.v = new Float64Array(w.length);
  }
  step(g: ArrayLike<number>, lr: number): void {
    this.t++;
    for (let j = 0; j < this.w.length; j++) {
      this.m[j] = 0.9 * this.m[j] + 0.1 * g[j];
      this.v[j] = 0.999 * this.v[j] + 0.001 * g[j] * g[j];
      const mh = this.m[j] / (1 - 0.9 ** this.t);
      const vh = this.v[j] / (1 - 0.999 ** this.t);
      this.w[j] -= (lr * mh) / (Math.sqrt(vh) + 1e-8);
    }
  }
}

describe('HeadLrAdam', () => {
  const rnd = lcg(5);
  const mk = () => [0, 1, 2].map(() => new Parameter(randArray(7, lcg(9), 1), [7]));

  it('steps the head at headLr / lr times the current lr and the rest at lr', () => {
    const ps = mk();
    const head = [ps[2]];
    const opt = new HeadLrAdam(ps, head, { lr: 2e-2, headLr: 1e-1 });
    expect(opt.headRatio).toBeCloseTo(5, 12);
    const refs = ps.map((p) => new RefAdam(Float64Array.from(p.data)));
    const lrs = [2e-2, 2e-2, 1e-2, 5e-3]; // a schedule sets opt.lr
    for (const lr of lrs) {
      const gs = ps.map(() => randArray(7, rnd, 1));
      ps.forEach((p, i) => (p.grad = gs[i]));
      opt.lr = lr;
      opt.step();
      refs.forEach((r, i) => r.step(gs[i], i === 2 ? lr * 5 : lr));
      expect(opt.lr).toBe(lr); // the head's rate is not left behind in lr
    }
    let maxDiff = 0;
    let headMove = 0;
    let bodyMove = 0;
    const start = mk();
    ps.forEach((p, i) =>
      p.data.forEach((v, j) => {
        maxDiff = Math.max(maxDiff, Math.abs(v - refs[i].w[j]));
        const mv = Math.abs(v - start[i].data[j]);
        if (i === 2) headMove = Math.max(headMove, mv);
        else bodyMove = Math.max(bodyMove, mv);
      }),
    );
    expect(maxDiff).toBeLessThan(1e-5);
    expect(headMove).toBeGreaterThan(3 * bodyMove); // the head did move faster
  });

  it('with headLr = lr it is Adam exactly; refuses a head outside params', () => {
    const a = mk();
    const b = mk();
    const oa = new HeadLrAdam(a, [a[1]], { lr: 3e-3, headLr: 3e-3 });
    const ob = new Adam(b, { lr: 3e-3 });
    for (let k = 0; k < 3; k++) {
      const gs = a.map(() => randArray(7, rnd, 1));
      a.forEach((p, i) => (p.grad = gs[i]));
      b.forEach((p, i) => (p.grad = gs[i].slice()));
      oa.step();
      ob.step();
    }
    a.forEach((p, i) => expect(Array.from(p.data)).toEqual(Array.from(b[i].data)));
    expect(() => new HeadLrAdam(mk(), mk(), { lr: 1e-3, headLr: 1e-2 })).toThrow(/head/);
    expect(() => new HeadLrAdam(a, [a[0]], { lr: 1e-3, headLr: -1 })).toThrow(/headLr/);
  });
});

describe('trainPrivateRows', () => {
  const weights = readTfjsWeights(path.join(defaultUseLiteDir(), 'model.json'));
  const use = loadUseLiteSync();
  const texts = [
    'a wonderful film, the best of the year',
    'dull and far too long',
    'I laughed, I cried',
    'the plot makes no sense at all and the acting is wooden',
    'fine',
    'not worth the ticket',
  ];
  const model = () => {
    const r = lcg(11);
    const head = { weight: randArray(2 * 512, r, 0.5), bias: randArray(2, r, 0.1) };
    return loraClassifier(
      weights,
      2,
      {
        rank: 2,
        alpha: 4,
        method: 'vanilla',
        targets: [...USE_LITE_TARGETS],
        layers: [1],
        seed: 3,
      },
      head,
    );
  };
  const clf0 = model();
  const part: CachedPart = {
    rows: clf0.encodePrefix(texts.map((t) => use.tokenize(t))),
    y: Int32Array.from([1, 0, 1, 0, 1, 0]),
    n: texts.length,
  };

  /** Adam that records the lr of each of its steps. */
  class Recording extends Adam {
    lrs: number[] = [];
    step(): void {
      this.lrs.push(this.lr);
      super.step();
    }
  }

  const setup = (clf: ReturnType<typeof model>, lr: number) => {
    const opt = new Recording(clf.trainableParameters(), { lr });
    const engine = new PrivacyEngine();
    const { optimizer } = engine.makePrivate({
      model: clf,
      optimizer: opt,
      dataset: part.n,
      batchSize: 3,
      noiseMultiplier: 0.7,
      maxGradNorm: 1,
      maxPhysicalBatchSize: 2,
      seed: 1234,
      ...quiet(),
    });
    return { opt, engine, optimizer };
  };

  it('sets the lr per step as a hand-written privateStep loop does, and restores it', () => {
    const lr = 4e-3;
    const a = model();
    const ra = setup(a, lr);
    const onStep: number[] = [];
    trainPrivateRows(a, part, ra.engine, ra.optimizer, {
      steps: 4,
      physicalBatch: 2,
      schedule: 'linear',
      warmup: 0.25,
      onStep: (k) => onStep.push(k),
    });
    // warmup 1 step of 4, then linear decay over 3: 1, 1, 2/3, 1/3
    const want = [1, 1, 2 / 3, 1 / 3].map((m) => lr * m);
    ra.opt.lrs.forEach((v, i) => expect(v).toBeCloseTo(want[i], 15));
    expect(ra.opt.lrs).toHaveLength(4);
    expect(onStep).toEqual([1, 2, 3, 4]);
    expect(ra.engine.steps).toBe(4); // one ledger step per private step
    expect(ra.optimizer.lr).toBe(lr);

    const b = model();
    const rb = setup(b, lr);
    b.train();
    b.setGradMode('perSample');
    for (const m of [1, 1, 2 / 3, 1 / 3]) {
      rb.optimizer.lr = lr * m;
      privateStep(b, part, rb.engine, rb.optimizer, 2);
    }
    const pa = a.trainableParameters();
    const { maxDiff, maxMove } = paramDiff(
      pa,
      b.trainableParameters(),
      model().trainableParameters(),
    );
    expect(maxMove).toBeGreaterThan(1e-3);
    expect(maxDiff).toBeLessThan(1e-7);

    // the schedule matters: a constant rate (same seed) ends elsewhere
    const c = model();
    const rc = setup(c, lr);
    trainPrivateRows(c, part, rc.engine, rc.optimizer, { steps: 4, physicalBatch: 2 });
    expect(rc.opt.lrs).toEqual([lr, lr, lr, lr]);
    const constDiff = paramDiff(c.trainableParameters(), pa, pa).maxDiff;
    expect(constDiff).toBeGreaterThan(1e-4);
  });

  it('refuses a step count that is not a positive integer', () => {
    const a = model();
    const ra = setup(a, 1e-3);
    expect(() =>
      trainPrivateRows(a, part, ra.engine, ra.optimizer, { steps: 0, physicalBatch: 2 }),
    ).toThrow(/steps/);
    expect(ra.engine.steps).toBe(0);
  });
});
