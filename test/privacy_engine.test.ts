/**
 * PrivacyEngine: Poisson sampler, defaults and warnings, calibration and the
 * hard budget, stateDict/loadStateDict (ledger kept, RNG re-keyed unless
 * seeded), shuffle sampling accounted with sampleRate 1.
 */
import { Rng } from '../lib/kernels/rng';
import { Adam, SGD } from '../lib/optim';
import { PoissonSampler, PrivacyEngine, PrivacyEngineState, ShuffleSampler } from '../lib/privacy';
import { splitMicroBatches } from '../lib/privacy/samplers';
import { seedToKey } from '../lib/privacy/seed';
import {
  impossibleBudgetEngine,
  makeData,
  makeModel,
  privateSgd,
  privateSgdWithEpsilon,
  quiet,
  snapshot,
  trainStep,
} from './helpers/dp_setup';

// PLD with the default 1e-4 grid is slow under jest's VM; the tests use a
// coarser grid (still a valid upper bound, just looser).
const pldParameters = { gridStep: 2e-3 };
import { expectError } from './helpers/errors';

describe('samplers', () => {
  test('Poisson: sorted distinct indices, mean size q*N, possibly empty', () => {
    const s = new PoissonSampler({
      datasetSize: 500,
      sampleRate: 0.02,
      rng: new Rng({ seed: seedToKey(3) }),
    });
    const sizes: number[] = [];
    for (let k = 0; k < 400; k++) {
      const b = s.sample();
      for (let i = 1; i < b.length; i++) expect(b[i]).toBeGreaterThan(b[i - 1]);
      if (b.length) expect(b[b.length - 1]).toBeLessThan(500);
      sizes.push(b.length);
    }
    // Batch size ~ Binomial(500, 0.02): mean 10, var 9.8.  The mean of 400
    // draws has sd 0.157; 5 sd bounds false-alarm with probability ~6e-7.
    const mean = sizes.reduce((a, b) => a + b, 0) / sizes.length;
    expect(Math.abs(mean - 10)).toBeLessThan(5 * Math.sqrt(9.8 / 400));
    const tiny = new PoissonSampler({
      datasetSize: 10,
      sampleRate: 0.01,
      rng: new Rng({ seed: seedToKey(4) }),
    });
    let empty = 0;
    for (let k = 0; k < 50; k++) if (tiny.sample().length === 0) empty++;
    expect(empty).toBeGreaterThan(20); // P(empty) = 0.99^10 ~ 0.90
    expect(s.stateDict()).toEqual({
      kind: 'poisson',
      datasetSize: 500,
      sampleRate: 0.02,
      batchesDrawn: 400,
    });
    expect(() => new PoissonSampler({ datasetSize: 10, sampleRate: 0, rng: new Rng() })).toThrow(
      /sampleRate/,
    );
  });

  test('shuffle: every epoch is a permutation; micro-batches split a batch', () => {
    const s = new ShuffleSampler({
      datasetSize: 12,
      batchSize: 4,
      rng: new Rng({ seed: seedToKey(9) }),
    });
    const seen = [...s.sample(), ...s.sample(), ...s.sample()].sort((a, b) => a - b);
    expect(seen).toEqual(Array.from({ length: 12 }, (_, i) => i));
    expect(s.accountingSampleRate).toBe(1);
    const parts = splitMicroBatches(Int32Array.from([5, 6, 7, 8, 9]), 2).map((a) => Array.from(a));
    expect(parts).toEqual([[5, 6], [7, 8], [9]]);
  });
});

describe('engine defaults', () => {
  test('delta defaults to 1/N^1.1; warnings for delta >= 1/N, a fixed seed, zero noise', () => {
    const model = makeModel(1);
    const q = quiet();
    const e = new PrivacyEngine();
    privateSgd(e, model, 0.1, {
      dataset: { length: 1000 },
      batchSize: 10,
      noiseMultiplier: 1,
      maxGradNorm: 1,
      ...q,
    });
    expect(e.config.delta).toBeCloseTo(1 / Math.pow(1000, 1.1), 15);
    expect(e.config.sampleRate).toBeCloseTo(0.01, 15);
    expect(e.config.accountant).toBe('pld');
    expect(q.warnings).toEqual([]);
    expect(e.getEpsilon()).toBe(0);

    const m2 = makeModel(1);
    const q2 = quiet();
    const e2 = new PrivacyEngine();
    e2.makePrivate({
      model: m2,
      optimizer: new SGD(m2.trainableParameters(), { lr: 0.1 }),
      dataset: 100,
      batchSize: 10,
      noiseMultiplier: 0,
      maxGradNorm: 1,
      delta: 0.02,
      seed: 42,
      ...q2,
    });
    expect(q2.warnings.some((w) => /delta = 0.02 >= 1\/N/.test(w))).toBe(true);
    expect(q2.warnings.some((w) => /fixed seed/.test(w) && w.includes(e2.describeRng()))).toBe(
      true,
    );
    expect(q2.warnings.some((w) => /NOT differentially private/.test(w))).toBe(true);
  });

  test('argument errors name the argument', () => {
    const model = makeModel(1);
    const base = {
      model,
      optimizer: new SGD(model.trainableParameters(), { lr: 0.1 }),
      dataset: 100,
      batchSize: 10,
      noiseMultiplier: 1,
      maxGradNorm: 1,
      ...quiet(),
    };
    expectError(
      () => new PrivacyEngine().makePrivate({ ...base, batchSize: 200 }),
      'InvalidArgumentError',
      /batchSize/,
    );
    expectError(
      () => new PrivacyEngine().makePrivate({ ...base, maxGradNorm: 0 }),
      'InvalidArgumentError',
      /maxGradNorm/,
    );
    expectError(
      () => new PrivacyEngine().makePrivate({ ...base, noiseMultiplier: NaN }),
      'InvalidArgumentError',
      /noiseMultiplier/,
    );
    expectError(
      () => new PrivacyEngine().makePrivate({ ...base, dataset: { length: 0 } }),
      'InvalidArgumentError',
      /dataset/,
    );
    expectError(
      () => new PrivacyEngine().makePrivate({ ...base, maxPhysicalBatchSize: 0 }),
      'InvalidArgumentError',
      /maxPhysicalBatchSize/,
    );
    const e = new PrivacyEngine();
    e.makePrivate(base);
    expectError(() => e.makePrivate(base), 'InvalidStateError', /already in use/);
    expectError(() => new PrivacyEngine().getEpsilon(), 'InvalidStateError', /makePrivate first/);
  });
});

describe('budget', () => {
  test('calibrated run: planned steps fit; the step past the target is refused before any update', () => {
    const d = makeData(100, 1, 31);
    const model = makeModel(1);
    const engine = new PrivacyEngine();
    privateSgdWithEpsilon(engine, model, 0.05, {
      dataset: { length: 100 },
      batchSize: 20,
      maxGradNorm: 1,
      targetEpsilon: 2,
      targetDelta: 1e-5,
      epochs: 1,
      seed: 8,
      pldParameters,
      ...quiet(),
    });
    const z = engine.config.noiseMultiplier;
    expect(z).toBeGreaterThan(0.3);
    expect(engine.config.targetEpsilon).toBe(2);
    const planned = 5; // epochs * N / batchSize
    expect(engine.remainingSteps()).toBeGreaterThanOrEqual(planned);
    let steps = 0;
    let refused: Error | null = null;
    for (let k = 0; k < 1000 && !refused; k++) {
      try {
        trainStep(engine, model, d);
        steps++;
      } catch (e) {
        refused = e as Error;
      }
    }
    expect(refused?.name).toBe('PrivacyBudgetExceededError');
    expect(steps).toBeGreaterThanOrEqual(planned);
    expect(engine.steps).toBe(steps);
    expect(engine.getEpsilon()).toBeLessThanOrEqual(2);
    // The refusal happened before anything changed, and keeps happening.
    const w = snapshot(model);
    expectError(() => engine.nextBatch(), 'PrivacyBudgetExceededError', /budget exhausted/);
    expectError(() => engine.optimizer.step(), 'PrivacyBudgetExceededError');
    expect(Array.from(snapshot(model))).toEqual(Array.from(w));
    expect(engine.steps).toBe(steps);
  });

  test('an impossible budget refuses the first step', () => {
    const engine = impossibleBudgetEngine(pldParameters);
    expect(engine.remainingSteps()).toBe(0);
    expectError(() => engine.nextBatch(), 'PrivacyBudgetExceededError');
  });
});

describe('state', () => {
  // Seeded runs use the RDP ledger, OS-keyed ones PLD (the default): both must survive a resume.
  function make(seed: number | undefined, modelSeed: number) {
    const model = makeModel(modelSeed);
    const engine = new PrivacyEngine();
    engine.makePrivate({
      model,
      optimizer: new Adam(model.trainableParameters(), { lr: 0.01 }),
      dataset: 40,
      batchSize: 8,
      noiseMultiplier: 1.1,
      maxGradNorm: 0.9,
      maxPhysicalBatchSize: 3,
      seed,
      accountant: seed === undefined ? 'pld' : 'rdp',
      pldParameters,
      ...quiet(),
    });
    return { model, engine };
  }

  test('seeded: save after 3 steps, restore into a fresh engine, continue = uninterrupted (params and eps)', () => {
    const d = makeData(40, 2, 37);
    const a = make(99, 1);
    for (let s = 0; s < 6; s++) trainStep(a.engine, a.model, d);
    const b = make(99, 1);
    for (let s = 0; s < 3; s++) trainStep(b.engine, b.model, d);
    const state = structuredClone<PrivacyEngineState>(b.engine.stateDict());
    expect(state.step).toBe(3);
    expect(state.rng.state).toBeDefined();
    expect(b.engine.reproducible).toBe(true);
    expect(Object.keys(state.params)).toEqual(['0.lora_A', '0.lora_B', '2.weight', '2.bias']);
    expect(Object.keys(state.optimizer.slots)).toEqual([
      '0.lora_A',
      '0.lora_B',
      '2.weight',
      '2.bias',
    ]);
    const c = make(99, 1); // same frozen base weights (they are not in the state) ...
    for (const p of c.model.trainableParameters()) p.data.fill(0.123); // ... trainable ones must come from the state
    c.engine.loadStateDict(state);
    expect(c.engine.steps).toBe(3);
    expect(c.engine.getEpsilon()).toBeCloseTo(b.engine.getEpsilon(), 12);
    for (let s = 0; s < 3; s++) trainStep(c.engine, c.model, d);
    expect(c.engine.getEpsilon()).toBeCloseTo(a.engine.getEpsilon(), 12);
    expect(c.engine.steps).toBe(6);
    const pa = snapshot(a.model);
    const pc = snapshot(c.model);
    for (let i = 0; i < pa.length; i++) expect(pc[i]).toBeCloseTo(pa[i], 6);
  });

  test('OS-keyed: no RNG state on disk; resume re-keys and keeps the ledger', () => {
    const d = makeData(40, 2, 41);
    const a = make(undefined, 1);
    for (let s = 0; s < 4; s++) trainStep(a.engine, a.model, d);
    const b = make(undefined, 1);
    for (let s = 0; s < 2; s++) trainStep(b.engine, b.model, d);
    const state = structuredClone<PrivacyEngineState>(b.engine.stateDict());
    expect(b.engine.reproducible).toBe(false);
    expect(state.rng.state).toBeUndefined();
    const c = make(undefined, 3);
    c.engine.loadStateDict(state);
    for (let s = 0; s < 2; s++) trainStep(c.engine, c.model, d);
    expect(c.engine.getEpsilon()).toBeCloseTo(a.engine.getEpsilon(), 12);
    expect(c.engine.getEpsilon(1e-7)).toBeCloseTo(a.engine.getEpsilon(1e-7), 12);
  });

  test('a resumed run keeps its spent budget: it stops after the same total number of steps', () => {
    const d = makeData(40, 1, 47);
    const mk = () => {
      const model = makeModel(1);
      const engine = new PrivacyEngine();
      privateSgd(engine, model, 0.1, {
        dataset: 40,
        batchSize: 8,
        noiseMultiplier: 2.0,
        maxGradNorm: 1,
        targetEpsilon: 1.5,
        delta: 1e-5,
        accountant: 'rdp',
        ...quiet(),
      });
      return { model, engine };
    };
    const runToRefusal = (e: PrivacyEngine, m: ReturnType<typeof makeModel>): number => {
      let n = 0;
      for (;;) {
        try {
          trainStep(e, m, d);
          n++;
        } catch (err) {
          expect((err as Error).name).toBe('PrivacyBudgetExceededError');
          return n;
        }
      }
    };
    const a = mk();
    const total = runToRefusal(a.engine, a.model);
    expect(total).toBeGreaterThan(3);
    const b = mk();
    for (let s = 0; s < 3; s++) trainStep(b.engine, b.model, d);
    const c = mk();
    c.engine.loadStateDict(structuredClone(b.engine.stateDict()));
    expect(c.engine.steps + runToRefusal(c.engine, c.model)).toBe(total);
    expect(c.engine.getEpsilon()).toBeCloseTo(a.engine.getEpsilon(), 12);
    expect(c.engine.getEpsilon()).toBeLessThanOrEqual(1.5);
  });

  test('a state without its ledger is refused', () => {
    const b = make(5, 1);
    const state = b.engine.stateDict() as Partial<PrivacyEngineState>;
    delete state.ledger;
    expectError(
      () => make(5, 1).engine.loadStateDict(state as PrivacyEngineState),
      'LedgerMismatchError',
      /ledger/,
    );
    const s2 = b.engine.stateDict();
    delete (s2.params as Record<string, unknown>)['2.bias'];
    expectError(() => make(5, 1).engine.loadStateDict(s2), 'InvalidArgumentError', /2\.bias/);
  });
});

test('shuffle sampling is accounted with sampleRate 1', () => {
  const model = makeModel(1);
  const q = quiet();
  const e = new PrivacyEngine();
  privateSgd(e, model, 0.1, {
    dataset: 40,
    batchSize: 8,
    noiseMultiplier: 2,
    maxGradNorm: 1,
    sampling: 'shuffle',
    seed: 1,
    accountant: 'rdp',
    ...q,
  });
  expect(e.config.sampleRate).toBe(1);
  expect(q.warnings.some((w) => /no amplification/.test(w))).toBe(true);
  const d = makeData(40, 1, 43);
  expect(trainStep(e, model, d)).toBe(8);
  const poisson = new PrivacyEngine();
  const m2 = makeModel(1);
  poisson.makePrivate({
    model: m2,
    optimizer: new SGD(m2.trainableParameters(), { lr: 0.1 }),
    dataset: 40,
    batchSize: 8,
    noiseMultiplier: 2,
    maxGradNorm: 1,
    seed: 1,
    accountant: 'rdp',
    ...quiet(),
  });
  trainStep(poisson, m2, d);
  expect(e.getEpsilon(1e-5)).toBeGreaterThan(poisson.getEpsilon(1e-5));
});
