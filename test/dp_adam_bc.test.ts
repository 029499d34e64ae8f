/**
 * DP-AdamBC inside a private run (the README's snippet): the correction is post-processing. Under
 * the same fixed seed, a run with it and one without draw the same batches, release the same first
 * noised gradient (later ones differ only because the weights do) and the same ledger; the
 * corrected run's updates follow Adam with max(v_hat - phi, floor) for phi = (noiseStd / B)^2.
 */
import { Adam, PrivacyEngine } from '../lib';
import { makeData, makeModel, quiet, recordBatches, snapshot, trainStep } from './helpers/dp_setup';

function run(bc: boolean) {
  const model = makeModel(3);
  const adam = new Adam(model.trainableParameters(), { lr: 1e-2 });
  const engine = new PrivacyEngine();
  const { optimizer } = engine.makePrivate({
    model,
    optimizer: adam,
    dataset: { length: 200 },
    batchSize: 20,
    noiseMultiplier: 1.0,
    maxGradNorm: 1.0,
    seed: 7,
    ...quiet(),
  });
  const phi = (optimizer.noiseStd / optimizer.expectedBatchSize) ** 2;
  if (bc) adam.setNoiseVariance(phi);
  const data = makeData(200, 2, 9);
  const grads: number[][] = [];
  // The released (noised) gradients, read as the wrapped optimizer receives them.
  const innerStep = adam.step.bind(adam);
  adam.step = () => {
    grads.push(model.trainableParameters().flatMap((p) => Array.from(p.grad!)));
    innerStep();
  };
  const weights: number[][] = [];
  const batches = recordBatches(engine);
  for (let step = 0; step < 5; step++) {
    trainStep(engine, model, data);
    weights.push(Array.from(snapshot(model)));
  }
  return { grads, weights, batches, phi, epsilon: engine.getEpsilon(1e-5), adam };
}

test('DP-AdamBC changes the update only: same batches, first noised gradient and ledger under one seed', () => {
  const plain = run(false);
  const bc = run(true);
  expect(bc.phi).toBeCloseTo(1 / 20 ** 2, 12); // noiseStd = sigma * C = 1, expected batch 20
  expect(bc.adam.noiseVariance).toBe(bc.phi);
  expect(bc.batches).toEqual(plain.batches);
  expect(bc.batches.flat().length).toBeGreaterThan(0);
  expect(bc.grads[0]).toEqual(plain.grads[0]);
  expect(bc.epsilon).toBe(plain.epsilon);
  expect(bc.weights[4]).not.toEqual(plain.weights[4]);
  // Replay Adam with the correction on the released gradients: the corrected run's weights.
  // Step by step from the weights after the first step (Adam's moments rebuilt from step 1).
  const m = bc.weights[0].map(() => 0);
  const v = bc.weights[0].map(() => 0);
  for (let t = 1; t < 5; t++) {
    for (let j = 0; j < m.length; j++) {
      const g0 = bc.grads[t - 1][j];
      if (t === 1) {
        m[j] = 0.1 * g0;
        v[j] = 0.001 * g0 * g0;
      }
      const g = bc.grads[t][j];
      m[j] = 0.9 * m[j] + 0.1 * g;
      v[j] = 0.999 * v[j] + 0.001 * g * g;
      const vh = Math.max(v[j] / (1 - 0.999 ** (t + 1)) - bc.phi, bc.phi / 10);
      const expected =
        bc.weights[t - 1][j] - (1e-2 * (m[j] / (1 - 0.9 ** (t + 1)))) / (Math.sqrt(vh) + 1e-8);
      expect(bc.weights[t][j]).toBeCloseTo(expected, 5);
    }
  }
});
