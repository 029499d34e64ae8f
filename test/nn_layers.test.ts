/**
 * Layers: forward against plain references, the non-private backward against
 * finite differences, and the per-sample hooks (norms and clipped sums)
 * against one-sample-at-a-time gradients, for seq 1 and seq > 1.
 */
import {
  GELU,
  LayerNorm,
  Linear,
  LoraLinear,
  Module,
  Parameter,
  ReLU,
  Sequential,
  Tanh,
  Tensor,
  crossEntropyLoss,
  mseLoss,
  loraModules,
  trainableParameters,
} from '../lib/nn';
import {
  LossFn,
  lcg,
  perSampleViaHooks,
  randArray,
  rawGrad,
  relErr,
  sliceBatch,
} from './helpers/nn_ref';

const IN = 6;
const HID = 5;
const OUT = 4;

/** A model with every trainable layer type. */
function buildModel(method: 'vanilla' | 'ffa', seed: number): Sequential {
  const rnd = lcg(seed);
  const lora1 = new LoraLinear(new Linear(IN, HID, { seed: seed + 1 }), {
    r: 3,
    alpha: 6,
    method,
    seed: seed + 2,
  });
  lora1.loraB = randArray(HID * 3, rnd, 0.5); // B = 0 at init would hide A's gradient
  const ln = new LayerNorm(HID);
  ln.weight.data.set(randArray(HID, rnd, 1).map((v) => 1 + 0.3 * v));
  ln.bias.data.set(randArray(HID, rnd, 0.2));
  const lora2 = new LoraLinear(new Linear(HID, HID, { seed: seed + 3, bias: false }), {
    r: 2,
    alpha: 4,
    rslora: true,
    method,
    seed: seed + 4,
  });
  lora2.loraB = randArray(HID * 2, rnd, 0.5);
  const head = new Linear(HID, OUT, { seed: seed + 5 });
  return new Sequential(lora1, new GELU(), ln, new Tanh(), lora2, new ReLU(), head);
}

function ceLoss(labels: Int32Array, seq: number): LossFn {
  return (y, i0, i1) => crossEntropyLoss(y, labels.subarray(i0 * seq, i1 * seq));
}

describe('forward references', () => {
  test('Linear: y = x W^T + b', () => {
    const rnd = lcg(1);
    const l = new Linear(IN, OUT, { seed: 3 });
    const x = new Tensor(randArray(2 * 3 * IN, rnd), [2, 3, IN]);
    const y = l.forward(x);
    expect(y.shape).toEqual([2, 3, OUT]);
    for (let r = 0; r < 6; r++)
      for (let o = 0; o < OUT; o++) {
        let s = l.bias!.data[o];
        for (let d = 0; d < IN; d++) s += x.data[r * IN + d] * l.weight.data[o * IN + d];
        expect(y.data[r * OUT + o]).toBeCloseTo(s, 5);
      }
  });

  test('LoraLinear: y = x W0^T + b + s (x A^T) B^T, merge/unmerge, init', () => {
    const rnd = lcg(2);
    const base = new Linear(IN, OUT, { seed: 4 });
    const lora = new LoraLinear(base, { r: 2, alpha: 8, seed: 5 });
    expect(lora.scaling).toBe(4);
    expect(Array.from(lora.loraB).every((v) => v === 0)).toBe(true);
    const bound = 1 / Math.sqrt(IN);
    expect(Array.from(lora.loraA).every((v) => Math.abs(v) <= bound)).toBe(true);
    expect(base.weight.requiresGrad).toBe(false);
    expect(lora.loraAParam.requiresGrad).toBe(true);
    lora.loraB = randArray(OUT * 2, rnd);
    const x = new Tensor(randArray(3 * IN, rnd), [3, IN]);
    const y = lora.eval().forward(x);
    for (let r = 0; r < 3; r++)
      for (let o = 0; o < OUT; o++) {
        let s = base.bias!.data[o];
        for (let d = 0; d < IN; d++) s += x.data[r * IN + d] * base.weight.data[o * IN + d];
        for (let k = 0; k < 2; k++) {
          let h = 0;
          for (let d = 0; d < IN; d++) h += x.data[r * IN + d] * lora.loraA[k * IN + d];
          s += 4 * h * lora.loraB[o * 2 + k];
        }
        expect(y.data[r * OUT + o]).toBeCloseTo(s, 4);
      }
    const w0 = base.weight.data.slice();
    lora.merge();
    expect(relErr(lora.forward(x).data, y.data)).toBeLessThan(1e-5);
    lora.unmerge();
    expect(relErr(base.weight.data, w0)).toBeLessThan(1e-6);
    const ffa = new LoraLinear(new Linear(IN, OUT), { r: 2, method: 'ffa' });
    expect(ffa.loraAParam.requiresGrad).toBe(false);
    expect(ffa.loraBParam.requiresGrad).toBe(true);
    const rs = new LoraLinear(new Linear(IN, OUT), { r: 4, alpha: 8, rslora: true });
    expect(rs.scaling).toBeCloseTo(4, 12);
  });

  test('namedModules paths and loraModules', () => {
    const m = buildModel('vanilla', 10);
    expect(loraModules(m).map((e) => e.path)).toEqual(['0', '4']);
    const paths = trainableParameters(m).map((e) => e.path);
    expect(paths).toEqual([
      '0.lora_A',
      '0.lora_B',
      '2.weight',
      '2.bias',
      '4.lora_A',
      '4.lora_B',
      '6.weight',
      '6.bias',
    ]);
    expect(trainableParameters(m, { excludeLora: true }).map((e) => e.path)).toEqual([
      '2.weight',
      '2.bias',
      '6.weight',
      '6.bias',
    ]);
  });
});

describe('non-private backward matches finite differences', () => {
  for (const seq of [1, 3]) {
    test(`all layer types, seq ${seq}`, () => {
      const model = buildModel('vanilla', 20 + seq);
      const rnd = lcg(7 + seq);
      const batch = 2;
      const x = new Tensor(
        randArray(batch * seq * IN, rnd),
        seq === 1 ? [batch, IN] : [batch, seq, IN],
      );
      const labels = Int32Array.from({ length: batch * seq }, () => Math.floor(rnd() * OUT));
      const loss = ceLoss(labels, seq);
      const params = model.trainableParameters();
      const g = rawGrad(model, params, x, loss, 0, batch);
      // Central differences in float32 on a few coordinates of every parameter.
      const f = (): number => loss(model.forward(x), 0, batch).total;
      let o = 0;
      for (const p of params) {
        for (const j of [0, Math.floor(p.size / 2), p.size - 1]) {
          const h = 1e-2;
          const v = p.data[j];
          p.data[j] = v + h;
          const fp = f();
          p.data[j] = v - h;
          const fm = f();
          p.data[j] = v;
          const fd = (fp - fm) / (2 * h);
          expect(Math.abs(fd - g[o + j])).toBeLessThan(2e-3 + 2e-2 * Math.abs(fd));
        }
        o += p.size;
      }
      // Input gradient too.
      model.setGradMode('sum');
      const y = model.forward(x);
      const gi = model.backward(loss(y, 0, batch).grad);
      model.zeroGrad();
      for (const j of [0, 5, x.size - 1]) {
        const v = x.data[j];
        x.data[j] = v + 1e-2;
        const fp = f();
        x.data[j] = v - 1e-2;
        const fm = f();
        x.data[j] = v;
        const fd = (fp - fm) / 2e-2;
        expect(Math.abs(fd - gi.data[j])).toBeLessThan(2e-3 + 2e-2 * Math.abs(fd));
      }
    });
  }
});

describe('per-sample hooks equal one-sample-at-a-time gradients', () => {
  for (const method of ['vanilla', 'ffa'] as const) {
    for (const seq of [1, 4]) {
      test(`${method}, seq ${seq}`, () => {
        const model = buildModel(method, 30 + seq);
        const rnd = lcg(40 + seq);
        const batch = 5;
        const x = new Tensor(
          randArray(batch * seq * IN, rnd, 2),
          seq === 1 ? [batch, IN] : [batch, seq, IN],
        );
        const labels = Int32Array.from({ length: batch * seq }, () => Math.floor(rnd() * OUT));
        const loss = ceLoss(labels, seq);
        const params = model.trainableParameters();
        const per = [];
        for (let i = 0; i < batch; i++) per.push(rawGrad(model, params, x, loss, i, i + 1));
        const factors = Float32Array.from({ length: batch }, () => rnd());
        const { normsSq, sum } = perSampleViaHooks(model, params, x, loss, factors);
        const expectSum = new Float64Array(sum.length);
        for (let i = 0; i < batch; i++) {
          let n2 = 0;
          for (let j = 0; j < per[i].length; j++) {
            n2 += per[i][j] * per[i][j];
            expectSum[j] += factors[i] * per[i][j];
          }
          expect(Math.abs(normsSq[i] - n2)).toBeLessThan(1e-4 * n2 + 1e-9);
        }
        expect(relErr(sum, expectSum)).toBeLessThan(1e-4);
      });
    }
  }

  test('direct and ghost norms agree (seq 1 and 6)', () => {
    for (const seq of [1, 6]) {
      const results: Float64Array[] = [];
      for (const method of ['direct', 'ghost', 'auto'] as const) {
        const model = buildModel('vanilla', 50);
        for (const [, m] of model.namedModules())
          if (m instanceof Linear || m instanceof LoraLinear) m.normMethod = method;
        const rnd = lcg(51);
        const x = new Tensor(randArray(3 * seq * IN, rnd), [3, seq, IN]);
        const target = randArray(3 * seq * OUT, rnd);
        const loss: LossFn = (y, i0, i1) =>
          mseLoss(y, target.subarray(i0 * seq * OUT, i1 * seq * OUT));
        results.push(
          perSampleViaHooks(
            model,
            model.trainableParameters(),
            x,
            loss,
            new Float32Array(3).fill(1),
          ).normsSq,
        );
      }
      expect(relErr(results[1], results[0])).toBeLessThan(1e-5);
      expect(relErr(results[2], results[0])).toBeLessThan(1e-5);
    }
  });

  test('samples with factor 0 are skipped even when their activations are NaN', () => {
    const model = buildModel('vanilla', 60);
    const rnd = lcg(61);
    const x = new Tensor(randArray(4 * 2 * IN, rnd), [4, 2, IN]);
    x.data[2 * 2 * IN + 3] = NaN; // sample 2
    const labels = Int32Array.from({ length: 8 }, () => Math.floor(rnd() * OUT));
    const loss = ceLoss(labels, 2);
    const params = model.trainableParameters();
    const f = Float32Array.from([1, 0.5, 0, 1]);
    const { normsSq, sum } = perSampleViaHooks(model, params, x, loss, f);
    expect(Number.isFinite(normsSq[2])).toBe(false);
    expect(sum.every((v) => Number.isFinite(v))).toBe(true);
    const ref = new Float64Array(sum.length);
    for (const i of [0, 1, 3]) {
      const g = rawGrad(model, params, x, loss, i, i + 1);
      for (let j = 0; j < g.length; j++) ref[j] += f[i] * g[j];
    }
    expect(relErr(sum, ref)).toBeLessThan(1e-4);
  });
});

test('LoRA dropout: per-sample norms match the clipped sums; factors 1 give the raw gradient', () => {
  // Masks are keyed by record, so two models with the same record context draw the same masks.
  const make = () => {
    const l = new LoraLinear(new Linear(IN, OUT, { seed: 70 }), { r: 3, dropout: 0.4, seed: 71 });
    l.loraB = randArray(OUT * 3, lcg(72), 0.5);
    // Per-record masks (required in perSample mode): same context -> same masks.
    return l.setRecordContext({
      key: new Uint32Array([1, 2, 3, 4]),
      step: 0,
      records: [0, 1, 2, 3],
    });
  };
  const rnd = lcg(73);
  const batch = 4;
  const seq = 3;
  const x = new Tensor(randArray(batch * seq * IN, rnd), [batch, seq, IN]);
  const target = randArray(batch * seq * OUT, rnd);
  const loss: LossFn = (y) => mseLoss(y, target);
  const ref = make();
  const params = (m: LoraLinear) => [m.loraAParam, m.loraBParam];
  const raw = rawGrad(ref, params(ref), x, loss, 0, batch);
  const hooks = make();
  const all = perSampleViaHooks(hooks, params(hooks), x, loss, new Float32Array(batch).fill(1));
  expect(relErr(all.sum, raw)).toBeLessThan(1e-5);
  for (let i = 0; i < batch; i++) {
    const m = make();
    const onehot = new Float32Array(batch);
    onehot[i] = 1;
    const one = perSampleViaHooks(m, params(m), x, loss, onehot);
    const n2 = one.sum.reduce((s, v) => s + v * v, 0);
    expect(Math.abs(one.normsSq[i] - n2)).toBeLessThan(1e-4 * n2 + 1e-9);
    expect(one.normsSq[i]).toBeCloseTo(all.normsSq[i], 4);
  }
});

describe('errors', () => {
  test('shape and argument checks', () => {
    const l = new Linear(3, 2);
    expect(() => l.forward(new Tensor(new Float32Array(8), [2, 4]))).toThrow(
      /4 features, expected 3/,
    );
    expect(() => l.backward(new Tensor(new Float32Array(4), [2, 2]))).toThrow(
      /without a preceding forward/,
    );
    l.forward(new Tensor(new Float32Array(6), [2, 3]));
    expect(() => l.backward(new Tensor(new Float32Array(6), [3, 2]))).toThrow(/does not match/);
    expect(() => new LoraLinear(new Linear(3, 2), { r: 0 })).toThrow(/r: must be/);
    expect(() => crossEntropyLoss(new Tensor(new Float32Array(4), [2, 2]), [0, 2])).toThrow(
      /label 2/,
    );
    expect(() => new Tensor(new Float32Array(3), [2, 2])).toThrow(/needs 4/);
    expect(() => new Tensor(new Float64Array(4) as unknown as Float32Array, [2, 2])).toThrow(
      /must be a Float32Array/,
    );
    expect(() => new Tensor([1, 2, 3, 4] as unknown as Float32Array, [2, 2])).toThrow(
      /must be a Float32Array/,
    );
  });

  test('a pending capture is not silently overwritten', () => {
    const l = new Linear(3, 2).setGradMode('perSample');
    const x = new Tensor(new Float32Array(6), [2, 3]);
    l.forward(x);
    l.backward(new Tensor(new Float32Array(4), [2, 2]));
    l.forward(x);
    expect(() => l.backward(new Tensor(new Float32Array(4), [2, 2]))).toThrow(/pending/);
  });

  test('Parameter and Module basics', () => {
    class Custom extends Module {
      p = new Parameter(new Float32Array(2), [2]);
      ownParameters(): Array<[string, Parameter]> {
        return [['p', this.p]];
      }
      forward(x: Tensor): Tensor {
        return x;
      }
      backward(g: Tensor): Tensor {
        return g;
      }
    }
    const s = new Sequential(new Custom(), new Sequential(new Custom()));
    expect(s.namedParameters().map(([k]) => k)).toEqual(['0.p', '1.0.p']);
    s.eval();
    expect(s.namedModules().every(([, m]) => !m.training)).toBe(true);
    expect(sliceBatch(new Tensor(Float32Array.from([1, 2, 3, 4]), [2, 2]), 1, 2).data).toEqual(
      Float32Array.from([3, 4]),
    );
  });
});
