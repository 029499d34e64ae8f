/**
 * WeightAverage (exponential moving average of parameters) against a written-out average, its
 * swap-in / restore contract, its argument checks, and, inside a seeded private run, that it is
 * post-processing: the run's batches, weights and ledger are the same with and without it.
 */
import { Parameter, PrivacyEngine, WeightAverage } from '../lib';
import {
  gather,
  makeData,
  makeModel,
  privateSgd,
  quiet,
  recordBatches,
  snapshot,
  trainStep,
} from './helpers/dp_setup';
import { expectInvalidArgument } from './helpers/errors';

function param(values: number[]): Parameter {
  return new Parameter(Float32Array.from(values), [values.length]);
}

test('the average follows a = d a + (1 - d) w, with the ramp min(d, (1 + t) / (10 + t))', () => {
  const seq = [
    [1, -2],
    [3, 0.5],
    [-1, 4],
    [2, 2],
    [0, -3],
  ];
  for (const warmup of [true, false]) {
    const p = param([0.25, 1]);
    const avg = new WeightAverage([p], { decay: 0.2, warmup });
    const ref = [0.25, 1];
    seq.forEach((w, t) => {
      p.data.set(w);
      const d = warmup ? Math.min(0.2, (1 + t) / (10 + t)) : 0.2;
      expect(avg.currentDecay).toBeCloseTo(d, 12);
      avg.update();
      for (let j = 0; j < 2; j++) ref[j] = d * ref[j] + (1 - d) * w[j];
    });
    expect(avg.updates).toBe(seq.length);
    const a = avg.average(0);
    for (let j = 0; j < 2; j++) expect(a[j]).toBeCloseTo(ref[j], 6);
  }
  // The ramp binds early with a high decay: the first update keeps only 1/10 of the start.
  const q = param([10]);
  const slow = new WeightAverage([q], { decay: 0.999 });
  q.data[0] = 0;
  slow.update();
  expect(slow.average(0)[0]).toBeCloseTo(1, 6);
});

test('stateDict / loadStateDict: a restored average continues exactly as the uninterrupted one; bad states are refused whole', () => {
  const seq = [
    [1, -2],
    [3, 0.5],
    [-1, 4],
    [2, 2],
  ];
  const p = param([0.5, 0.5]);
  const full = new WeightAverage([p], { decay: 0.9 });
  const q = param([0.5, 0.5]);
  const first = new WeightAverage([q], { decay: 0.9 });
  seq.slice(0, 2).forEach((w) => {
    q.data.set(w);
    first.update();
  });
  const st = first.stateDict();
  const second = new WeightAverage([q], { decay: 0.9 });
  second.loadStateDict(st);
  expect(second.updates).toBe(2);
  expect(second.currentDecay).toBeCloseTo(first.currentDecay, 15); // the ramp resumes too
  seq.forEach((w, t) => {
    p.data.set(w);
    full.update();
    if (t >= 2) {
      q.data.set(w);
      second.update();
    }
  });
  expect(Array.from(second.average(0))).toEqual(Array.from(full.average(0)));
  // stateDict and loadStateDict copy: changing the state afterwards reaches neither average.
  st.averages[0][1] = 99;
  expect(first.average(0)[1]).not.toBe(99);
  expect(second.average(0)[1]).not.toBe(99);
  const before = Array.from(second.average(0));
  expectInvalidArgument(
    () => second.loadStateDict({ updates: -1, averages: st.averages }),
    'state.updates',
  );
  expectInvalidArgument(() => second.loadStateDict({ updates: 1, averages: [] }), 'state.averages');
  expectInvalidArgument(
    () => second.loadStateDict({ updates: 1, averages: [new Float32Array(3)] }),
    'state.averages[0]',
  );
  expectInvalidArgument(
    () => second.loadStateDict({ updates: 1, averages: [Float32Array.of(1, NaN)] }),
    'state.averages[0]',
  );
  expect(Array.from(second.average(0))).toEqual(before);
  expect(second.updates).toBe(4);
});

test('withAverage swaps the average in, returns the result and restores the values, also on a throw', () => {
  const p = param([1, 2]);
  const avg = new WeightAverage([p], { decay: 0.5, warmup: false });
  p.data.set([3, 6]);
  avg.update(); // average (2, 4)
  const v0 = p.version;
  const seen = avg.withAverage(() => Array.from(p.data));
  expect(seen).toEqual([2, 4]);
  expect(Array.from(p.data)).toEqual([3, 6]);
  expect(p.version).toBeGreaterThan(v0); // derived copies are told twice
  expect(() =>
    avg.withAverage(() => {
      throw new Error('boom');
    }),
  ).toThrow('boom');
  expect(Array.from(p.data)).toEqual([3, 6]);
  // average() hands out a copy.
  avg.average(0)[0] = 99;
  avg.copyTo();
  expect(Array.from(p.data)).toEqual([2, 4]);
});

test('bad arguments are typed errors naming the argument', () => {
  const p = param([1]);
  expectInvalidArgument(() => new WeightAverage([p], { decay: 1 }), 'decay');
  expectInvalidArgument(() => new WeightAverage([p], { decay: -0.1 }), 'decay');
  expectInvalidArgument(() => new WeightAverage([p], { decay: NaN }), 'decay');
  expectInvalidArgument(
    () => new WeightAverage([p], { decay: 0.9, warmup: 1 as unknown as boolean }),
    'warmup',
  );
  expectInvalidArgument(() => new WeightAverage([p, p], { decay: 0.9 }), 'params');
  // A misspelt option is refused, not ignored.
  expectInvalidArgument(
    () => new WeightAverage([p], { decay: 0.9, warmUp: false } as { decay: number }),
    'options.warmUp',
  );
  expectInvalidArgument(() => new WeightAverage([{} as Parameter], { decay: 0.9 }), 'params[0]');
  expectInvalidArgument(
    () => new WeightAverage([p], null as unknown as { decay: number }),
    'options',
  );
  expectInvalidArgument(() => new WeightAverage([p], { decay: 0.9 }).average(1), 'i');
  const avg = new WeightAverage([p], { decay: 0.9 });
  p.data = new Float32Array(2);
  for (const f of [() => avg.update(), () => avg.copyTo(), () => avg.withAverage(() => 0)])
    expectInvalidArgument(f, 'params[0]');
  expect(Array.from(p.data)).toEqual([0, 0]); // nothing was written
  expect(avg.updates).toBe(0);
});

function privateRun(average: boolean) {
  const engine = new PrivacyEngine();
  const model = makeModel(1);
  privateSgd(engine, model, 0.1, {
    dataset: 120,
    batchSize: 12,
    noiseMultiplier: 1.0,
    maxGradNorm: 1.0,
    seed: 11,
    ...quiet(),
  });
  const avg = average ? new WeightAverage(model.trainableParameters(), { decay: 0.9 }) : null;
  const data = makeData(120, 2, 5);
  const probe = gather(data, [0]).x;
  const batches = recordBatches(engine);
  const evals: number[] = [];
  for (let step = 0; step < 6; step++) {
    trainStep(engine, model, data);
    if (avg) {
      avg.update();
      // Evaluating the average between steps must not disturb the run.
      evals.push(avg.withAverage(() => model.forward(probe).data[0]));
    }
  }
  return {
    batches,
    evals,
    weights: Array.from(snapshot(model)),
    epsilon: engine.getEpsilon(1e-5),
    steps: engine.steps,
    avg,
  };
}

test('inside a private run the average is post-processing: same batches, weights and ledger', () => {
  const plain = privateRun(false);
  const avg = privateRun(true);
  expect(avg.batches.flat().length).toBeGreaterThan(0);
  expect(avg.batches).toEqual(plain.batches);
  expect(avg.weights).toEqual(plain.weights);
  expect(avg.epsilon).toBe(plain.epsilon);
  expect(avg.steps).toBe(6);
  expect(avg.evals.every(Number.isFinite)).toBe(true);
  // The average differs from the last iterate (it lags behind the noisy steps).
  const a = avg.avg!.params.flatMap((_, i) => Array.from(avg.avg!.average(i)));
  expect(a).not.toEqual(avg.weights);
});
