/**
 * WeightAverage (exponential moving average of parameters) against a written-out average, its
 * swap-in / restore contract, its argument checks, and, inside a seeded private run, that it is
 * post-processing: the run's batches, weights and ledger are the same with and without it.
 */
import {
  InvalidArgumentError,
  Linear,
  Parameter,
  PrivacyEngine,
  SGD,
  Sequential,
  Tanh,
  Tensor,
  WeightAverage,
  mseLoss,
} from '../lib';

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
  const bad: Array<[() => unknown, string]> = [
    [() => new WeightAverage([p], { decay: 1 }), 'decay'],
    [() => new WeightAverage([p], { decay: -0.1 }), 'decay'],
    [() => new WeightAverage([p], { decay: NaN }), 'decay'],
    [() => new WeightAverage([p], { decay: 0.9, warmup: 1 as unknown as boolean }), 'warmup'],
    [() => new WeightAverage([p, p], { decay: 0.9 }), 'params'],
    [() => new WeightAverage([{} as Parameter], { decay: 0.9 }), 'params[0]'],
    [() => new WeightAverage([p], null as unknown as { decay: number }), 'options'],
    [() => new WeightAverage([p], { decay: 0.9 }).average(1), 'i'],
  ];
  for (const [f, name] of bad) {
    let err: unknown;
    try {
      f();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).argument).toBe(name);
  }
  const avg = new WeightAverage([p], { decay: 0.9 });
  p.data = new Float32Array(2);
  for (const f of [() => avg.update(), () => avg.copyTo(), () => avg.withAverage(() => 0)])
    expect(f).toThrow(InvalidArgumentError);
  expect(Array.from(p.data)).toEqual([0, 0]); // nothing was written
  expect(avg.updates).toBe(0);
});

function privateRun(average: boolean) {
  const N = 120;
  const model = new Sequential(
    new Linear(4, 5, { seed: 1 }),
    new Tanh(),
    new Linear(5, 1, { seed: 2 }),
  );
  const engine = new PrivacyEngine();
  const { optimizer } = engine.makePrivate({
    model,
    optimizer: new SGD(model.trainableParameters(), { lr: 0.1, momentum: 0.5 }),
    dataset: { length: N },
    batchSize: 12,
    noiseMultiplier: 1.0,
    maxGradNorm: 1.0,
    seed: 11,
    onWarning: () => undefined,
  });
  const avg = average ? new WeightAverage(model.trainableParameters(), { decay: 0.9 }) : null;
  const xs = Float32Array.from({ length: N * 4 }, (_, i) => Math.cos(i * 0.53));
  const batches: number[][] = [];
  const evals: number[] = [];
  for (let step = 0; step < 6; step++) {
    const { microBatches } = engine.nextBatch();
    batches.push(microBatches.flatMap((b) => Array.from(b)));
    for (const idx of microBatches) {
      const x = new Tensor(new Float32Array(idx.length * 4), [idx.length, 4]);
      idx.forEach((i, k) => x.data.set(xs.subarray(i * 4, (i + 1) * 4), k * 4));
      const y = Float32Array.from(idx, (i) => (i % 3 ? 1 : -1));
      model.backward(mseLoss(model.forward(x), y).grad);
      optimizer.accumulate();
    }
    optimizer.step();
    if (avg) {
      avg.update();
      // Evaluating the average between steps must not disturb the run.
      evals.push(avg.withAverage(() => model.forward(new Tensor(xs.slice(0, 4), [1, 4])).data[0]));
    }
  }
  return {
    batches,
    evals,
    weights: model.trainableParameters().flatMap((p) => Array.from(p.data)),
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
