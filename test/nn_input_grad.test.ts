/**
 * backward(g, false): the first layer skips the gradient with respect to the model input
 * and every parameter gradient (raw sums and per-sample norms) stays bitwise the same.
 */
import { Linear, LoraLinear, ReLU, Sequential, Tensor, isPerSampleModule } from '../lib/nn';
import { randomF32, rng } from './reference/linalg_ref';

function build(): Sequential {
  const first = new LoraLinear(new Linear(12, 10, { trainable: false, seed: 1 }), {
    r: 3,
    seed: 2,
  });
  const last = new Linear(10, 6, { seed: 3 });
  return new Sequential(first, new ReLU(), last);
}

function grads(m: Sequential): Float32Array[] {
  return m.trainableParameters().map((p) => Float32Array.from(p.grad ?? []));
}

test('raw gradients are unchanged and no input gradient is returned', () => {
  const rand = rng(5);
  const x = new Tensor(randomF32(rand, 4 * 3 * 12), [4, 3, 12]);
  const g = new Tensor(randomF32(rand, 4 * 3 * 6), [4, 3, 6]);
  const results = [true, false].map((inputGrad) => {
    const m = build();
    (m.layers[0] as LoraLinear).loraB = randomF32(rng(6), 10 * 3);
    m.train();
    m.forward(x);
    const gi = m.backward(g, inputGrad);
    return { gi, grads: grads(m) };
  });
  expect(results[0].gi.shape).toEqual([4, 3, 12]);
  expect(results[1].gi.size).toBe(0);
  expect(results[1].grads.length).toBe(results[0].grads.length);
  results[0].grads.forEach((a, i) => {
    expect(a.length).toBeGreaterThan(0);
    expect(Array.from(results[1].grads[i])).toEqual(Array.from(a));
  });
});

test('per-sample norms are unchanged', () => {
  const rand = rng(7);
  const x = new Tensor(randomF32(rand, 5 * 2 * 12), [5, 2, 12]);
  const g = new Tensor(randomF32(rand, 5 * 2 * 6), [5, 2, 6]);
  const norms = [true, false].map((inputGrad) => {
    const m = build();
    (m.layers[0] as LoraLinear).loraB = randomF32(rng(8), 10 * 3);
    m.train();
    m.setGradMode('perSample');
    m.forward(x);
    m.backward(g, inputGrad);
    const out = new Float64Array(5);
    for (const [, mod] of m.namedModules())
      if (isPerSampleModule(mod) && mod.captureBatch() > 0) mod.addPerSampleNormsSq(out);
    return out;
  });
  expect(norms[0].every((v) => v > 0)).toBe(true);
  expect(Array.from(norms[1])).toEqual(Array.from(norms[0]));
});

test('a plain first Linear skips its input gradient too', () => {
  const rand = rng(9);
  const lin = new Linear(8, 4, { seed: 4 });
  const x = new Tensor(randomF32(rand, 3 * 8), [3, 8]);
  lin.forward(x);
  expect(lin.backward(new Tensor(randomF32(rand, 12), [3, 4]), false).size).toBe(0);
  expect(lin.weight.grad?.some((v) => v !== 0)).toBe(true);
});
