/**
 * Tampered engine states (as a re-sealed checkpoint would carry them) against
 * `PrivacyEngine.loadStateDict`, the samplers' and the optimizer's `loadStateDict`:
 * - a shuffle permutation that repeats a record (which would put it in one batch twice, twice
 *   its clipped contribution), leaves [0, N) or has the wrong length, and a position or a batch
 *   count out of range, are refused by name with the sampler unchanged;
 * - a state refused in its sampler or optimizer part leaves the engine's parameters, optimizer
 *   and sampler exactly as they were (nothing is half-loaded);
 * - a missing `privacy` or `optimizer.slots` part, a null slot, a non-finite lr or a negative
 *   step is a typed error naming it, not a TypeError.
 */
import { Rng } from '../lib/kernels/rng';
import { Adam } from '../lib/optim';
import { PoissonSampler, PrivacyEngine, PrivacyEngineState, ShuffleSampler } from '../lib/privacy';
import type { SamplerState } from '../lib/privacy/samplers';
import { seedToKey } from '../lib/privacy/seed';
import { makeData, makeModel, quiet, snapshot, trainStep } from './helpers/dp_setup';
import { expectError } from './helpers/errors';

/** A seeded engine over a small LoRA model (shuffled batches of 8 from 40, or Poisson q = 0.2). */
function make(sampling: 'shuffle' | 'poisson') {
  const model = makeModel(1);
  const engine = new PrivacyEngine();
  engine.makePrivate({
    model,
    optimizer: new Adam(model.trainableParameters(), { lr: 0.01 }),
    dataset: 40,
    batchSize: 8,
    noiseMultiplier: 1.1,
    maxGradNorm: 1,
    sampling,
    seed: 3,
    accountant: 'rdp',
    ...quiet(),
  });
  return { model, engine };
}

/** A shuffle sampler of 8 from 10 records that has drawn one batch. */
function shuffled() {
  const s = new ShuffleSampler({
    datasetSize: 10,
    batchSize: 8,
    rng: new Rng({ seed: seedToKey(2) }),
  });
  s.sample();
  return s;
}

test('a shuffle state that is not a permutation of the records, or out of range, is refused with the sampler unchanged', () => {
  const s = shuffled();
  const good = s.stateDict();
  expect(good.permutation).toHaveLength(10);
  const perm = good.permutation!;
  const twice = [...perm];
  twice[1] = twice[0]; // one record twice, another never
  const bad: Array<[Partial<SamplerState>, RegExp]> = [
    [
      { permutation: twice },
      new RegExp(`state\\.permutation: is not a permutation: index ${perm[0]} appears twice`),
    ],
    [
      { permutation: perm.map((v) => (v === 9 ? 10 : v)) },
      /state\.permutation\[\d\]: must be an integer in \[0, 9\], got 10/,
    ],
    [{ permutation: perm.map((v) => (v === 9 ? -1 : v)) }, /state\.permutation\[\d\]/],
    [
      { permutation: perm.map((v) => (v === 9 ? 8.5 : v)) },
      /state\.permutation\[\d\]: must be an integer/,
    ],
    [{ permutation: perm.slice(1) }, /state\.permutation: must hold 10 indices, holds 9/],
    [{ permutation: 'abc' as unknown as number[] }, /state\.permutation/],
    [{ position: 11 }, /state\.position/],
    [{ position: -1 }, /state\.position/],
    [{ position: 2.5 }, /state\.position/],
    [{ batchesDrawn: -1 }, /state\.batchesDrawn/],
    [{ batchesDrawn: Number.NaN }, /state\.batchesDrawn/],
  ];
  for (const [change, message] of bad) {
    const before = s.stateDict();
    expectError(() => s.loadStateDict({ ...good, ...change }), 'InvalidArgumentError', message);
    expect(s.stateDict()).toEqual(before);
  }
  // The saved state itself restores the same stream of batches.
  const t = shuffled();
  t.loadStateDict(structuredClone(good));
  expect(Array.from(t.sample())).toEqual(Array.from(s.sample()));
});

test('a Poisson state with a bad batch count is refused with the sampler unchanged', () => {
  const s = new PoissonSampler({
    datasetSize: 10,
    sampleRate: 0.5,
    rng: new Rng({ seed: seedToKey(2) }),
  });
  s.sample();
  const good = s.stateDict();
  for (const batchesDrawn of [
    -1,
    1.5,
    Number.NaN,
    '3' as unknown as number,
    undefined as unknown as number,
  ]) {
    expectError(
      () => s.loadStateDict({ ...good, batchesDrawn }),
      'InvalidArgumentError',
      /state\.batchesDrawn/,
    );
    expect(s.stateDict()).toEqual(good);
  }
});

test('an engine state refused in its sampler or optimizer part leaves the engine as it was', () => {
  const d = makeData(40, 2, 5);
  const a = make('shuffle');
  for (let k = 0; k < 2; k++) trainStep(a.engine, a.model, d);
  const state = structuredClone<PrivacyEngineState>(a.engine.stateDict());
  const perm = state.sampler.permutation!;
  const tampered: Array<[(s: PrivacyEngineState) => void, RegExp]> = [
    [(s) => (s.sampler.permutation = perm.map((v, i) => (i === 1 ? perm[0] : v))), /appears twice/],
    [(s) => (s.sampler.batchesDrawn = -3), /state\.batchesDrawn/],
    [(s) => (s.optimizer.lr = Number.NaN), /state\.lr/],
    [(s) => (s.optimizer.lr = Infinity), /state\.lr/],
  ];
  for (const [change, message] of tampered) {
    const c = make('shuffle');
    // Parameters unlike the state's (an engine that has charged steps refuses any state that
    // does not continue its ledger, so the engine here is a fresh one).
    for (const p of c.model.trainableParameters()) p.data.fill(0.123);
    const params = snapshot(c.model);
    const sampler = JSON.stringify(c.engine.stateDict().sampler);
    const optimizer = c.engine.stateDict().optimizer;
    const s = structuredClone(state);
    change(s);
    expectError(() => c.engine.loadStateDict(s), 'InvalidArgumentError', message);
    expect(snapshot(c.model)).toEqual(params);
    expect(JSON.stringify(c.engine.stateDict().sampler)).toBe(sampler);
    const now = c.engine.stateDict().optimizer;
    expect(now.lr).toBe(optimizer.lr);
    expect(now.step).toBe(optimizer.step);
    expect(now.slots).toEqual(optimizer.slots);
  }
  // The untampered state loads and continues exactly like the original run.
  const c = make('shuffle');
  c.engine.loadStateDict(structuredClone(state));
  trainStep(a.engine, a.model, d);
  trainStep(c.engine, c.model, d);
  expect(snapshot(c.model)).toEqual(snapshot(a.model));
});

test('missing engine-state parts, null slots, a bad lr or step are typed errors naming them', () => {
  const d = makeData(40, 2, 7);
  const a = make('poisson');
  trainStep(a.engine, a.model, d);
  const state = a.engine.stateDict();
  const cases: Array<[(s: PrivacyEngineState) => void, RegExp]> = [
    [
      (s) => delete (s as Partial<PrivacyEngineState>).privacy,
      /^state\.privacy: must be an object/,
    ],
    [
      (s) => delete (s.optimizer as { slots?: unknown }).slots,
      /^state\.optimizer\.slots: must be an object/,
    ],
    [
      (s) => ((s.optimizer.slots as unknown as Record<string, unknown>)['2.bias'] = null),
      /^state\.optimizer: no optimizer state for '2\.bias'/,
    ],
    [
      (s) => ((s.optimizer.slots as unknown as Record<string, unknown>)['2.bias'] = 7),
      /^state\.optimizer\.slots\['2\.bias'\]: must be an object/,
    ],
  ];
  for (const [change, message] of cases) {
    const s = structuredClone(state);
    change(s);
    const c = make('poisson');
    const params = snapshot(c.model);
    expectError(() => c.engine.loadStateDict(s), 'InvalidArgumentError', message);
    expect(snapshot(c.model)).toEqual(params);
  }
  // The optimizer's own loadStateDict checks its step, lr and slots before writing.
  const m = makeModel(2);
  const opt = new Adam(m.trainableParameters(), { lr: 0.01 });
  const good = opt.stateDict();
  const optCases: Array<[Record<string, unknown>, RegExp]> = [
    [{ step: -1 }, /^state\.step/],
    [{ step: 0.5 }, /^state\.step/],
    [{ lr: -0.1 }, /^state\.lr/],
    [{ lr: Number.NaN }, /^state\.lr/],
    [
      { slots: good.slots.map((x, i) => (i === 0 ? null : x)) },
      /^state\.slots\[0\]: must be an object/,
    ],
  ];
  for (const [change, message] of optCases) {
    expectError(() => opt.loadStateDict({ ...good, ...change }), 'InvalidArgumentError', message);
    expect(opt.lr).toBe(0.01);
    expect(opt.stepCount).toBe(0);
  }
});
