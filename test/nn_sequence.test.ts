/**
 * Sequence blocks (attention with padding mask, transformer layers, pooling,
 * L2 normalization, timing signal, embedding): backward against central
 * finite differences on small sizes, padding isolation, and per-sample
 * gradients through LoRA-wrapped projections against a one-example-at-a-time
 * reference loop.
 */
import { Linear, LoraLinear, Module, Parameter, Tensor } from '../lib/nn';
import { MultiHeadAttention, attentionForward } from '../lib/nn/attention';
import { Embedding } from '../lib/nn/embedding';
import { L2Normalize } from '../lib/nn/l2norm';
import { applyLora } from '../lib/nn/lora_targets';
import { MeanPooling } from '../lib/nn/pooling';
import { SequenceMask, maskFromLengths } from '../lib/nn/sequence_mask';
import { TimingSignal } from '../lib/nn/timing_signal';
import { TransformerLayer } from '../lib/nn/transformer_layer';
import { isPerSampleModule } from '../lib/nn/module';
import { lcg, randArray } from './helpers/nn_ref';

/** A module with a mask setter. */
type Masked = Module & { setMask(m: SequenceMask | null): void };

/** Loss sum(w * y) and its gradient w. */
function linearLoss(y: Tensor, w: Float32Array): { total: number; grad: Tensor } {
  let s = 0;
  for (let i = 0; i < y.size; i++) s += w[i] * y.data[i];
  return { total: s, grad: new Tensor(w.slice(), y.shape) };
}

/** Checks param and input gradients of `m` against central differences at a few coordinates. */
function fdCheck(
  m: Masked,
  x: Tensor,
  mask: SequenceMask | null,
  params: Parameter[],
  seed: number,
  h = 1e-2,
): void {
  const rnd = lcg(seed);
  m.setMask(mask);
  m.train();
  m.setGradMode('sum');
  m.zeroGrad();
  const y = m.forward(x);
  const w = randArray(y.size, rnd);
  const gi = m.backward(linearLoss(y, w).grad);
  const f = (): number => {
    m.setMask(mask);
    return linearLoss(m.forward(x), w).total;
  };
  const check = (data: Float32Array, j: number, analytic: number) => {
    const v = data[j];
    data[j] = v + h;
    const fp = f();
    data[j] = v - h;
    const fm = f();
    data[j] = v;
    const fd = (fp - fm) / (2 * h);
    expect(Math.abs(fd - analytic)).toBeLessThan(3e-3 + 3e-2 * Math.abs(fd));
  };
  for (const p of params) {
    expect(p.grad).not.toBeNull();
    for (let c = 0; c < 4; c++) {
      const j = Math.floor(rnd() * p.size);
      check(p.data, j, p.grad![j]);
    }
  }
  for (let c = 0; c < 6; c++) {
    const j = Math.floor(rnd() * x.size);
    check(x.data, j, gi.data[j]);
  }
  // Some gradient entries must be clearly nonzero for the check to mean anything.
  expect(gi.data.some((v) => Math.abs(v) > 1e-3)).toBe(true);
  m.zeroGrad();
}

describe('attention core', () => {
  test('matches a plain softmax reference; padding keys get zero weight; no real key -> uniform', () => {
    const rnd = lcg(3);
    const [batch, seq, heads, dh] = [3, 4, 2, 3];
    const d = heads * dh;
    const q = randArray(batch * seq * d, rnd);
    const k = randArray(batch * seq * d, rnd);
    const v = randArray(batch * seq * d, rnd);
    const mask = maskFromLengths([4, 2, 0], seq);
    const { out } = attentionForward(q, k, v, batch, seq, heads, dh, 0.7, mask);
    for (let b = 0; b < batch; b++)
      for (let h = 0; h < heads; h++)
        for (let t = 0; t < seq; t++) {
          const sc: number[] = [];
          for (let s = 0; s < seq; s++) {
            let z = 0;
            for (let j = 0; j < dh; j++)
              z += q[(b * seq + t) * d + h * dh + j] * k[(b * seq + s) * d + h * dh + j];
            sc.push(mask.valid[b * seq + s] ? 0.7 * z : -1e9);
          }
          const mx = Math.max(...sc);
          const e = sc.map((z) => Math.exp(z - mx));
          const tot = e.reduce((a, c) => a + c, 0);
          for (let j = 0; j < dh; j++) {
            let want = 0;
            for (let s = 0; s < seq; s++) want += (e[s] / tot) * v[(b * seq + s) * d + h * dh + j];
            expect(out[(b * seq + t) * d + h * dh + j]).toBeCloseTo(want, 5);
          }
        }
  });
});

describe('backward matches finite differences', () => {
  test('multi-head attention with a padding mask (trainable projections)', () => {
    const rnd = lcg(5);
    const att = new MultiHeadAttention({ dIn: 5, dAttn: 6, dOut: 4, heads: 2, seed: 1 });
    const x = new Tensor(randArray(3 * 4 * 5, rnd), [3, 4, 5]);
    fdCheck(att, x, maskFromLengths([4, 2, 3], 4), att.trainableParameters(), 11);
  });

  test('pre-LN transformer layer with a widening residual projection and ReLU', () => {
    const rnd = lcg(6);
    const layer = new TransformerLayer({
      dIn: 6,
      dModel: 8,
      heads: 2,
      dFF: 10,
      norm: 'pre',
      seed: 2,
    });
    const x = new Tensor(randArray(2 * 5 * 6, rnd), [2, 5, 6]);
    fdCheck(layer, x, maskFromLengths([5, 3], 5), layer.trainableParameters(), 12, 3e-3);
  });

  test('post-LN (BERT-style) transformer layer with GELU', () => {
    const rnd = lcg(7);
    const layer = new TransformerLayer({
      dIn: 8,
      dModel: 8,
      heads: 2,
      dFF: 12,
      norm: 'post',
      activation: 'gelu',
      seed: 3,
    });
    const x = new Tensor(randArray(2 * 4 * 8, rnd), [2, 4, 8]);
    fdCheck(layer, x, maskFromLengths([2, 4], 4), layer.trainableParameters(), 13);
  });

  test('mean pooling, L2 normalization and the timing signal', () => {
    const rnd = lcg(8);
    const pool = new MeanPooling();
    const x = new Tensor(randArray(3 * 4 * 5, rnd), [3, 4, 5]);
    fdCheck(pool, x, maskFromLengths([4, 1, 2], 4), [], 14);
    const l2 = Object.assign(new L2Normalize(), { setMask: () => undefined });
    fdCheck(l2, new Tensor(randArray(4 * 6, rnd), [4, 6]), null, [], 15);
    const ts = new TimingSignal(6);
    fdCheck(
      ts,
      new Tensor(randArray(2 * 3 * 6, rnd), [2, 3, 6]),
      maskFromLengths([3, 1], 3),
      [],
      16,
    );
  });
});

describe('reference values', () => {
  test('timing signal is tensor2tensor add_timing_signal_1d; padding gets none', () => {
    const ts = new TimingSignal(4);
    ts.setMask(maskFromLengths([2], 3));
    const y = ts.forward(Tensor.zeros([1, 3, 4])).data;
    const w = [1, 1e-4]; // exp(-i * ln(1e4) / (n-1)) for n = 2
    for (let t = 0; t < 2; t++)
      for (let i = 0; i < 2; i++) {
        expect(y[t * 4 + i]).toBeCloseTo(Math.sin(t * w[i]), 6);
        expect(y[t * 4 + 2 + i]).toBeCloseTo(Math.cos(t * w[i]), 6);
      }
    expect(Array.from(y.subarray(8, 12))).toEqual([0, 0, 0, 0]);
  });

  test('embedding scales rows, padding rows are zero, bad ids are typed errors', () => {
    const e = new Embedding(3, 2, { weight: Float32Array.from([1, 2, 3, 4, 5, 6]), scale: 2 });
    const y = e.forward(Tensor.from([2, 0, -1], [1, 3])).data;
    expect(Array.from(y)).toEqual([10, 12, 2, 4, 0, 0]);
    expect(() => e.forward(Tensor.from([3], [1, 1]))).toThrow(/ids\[0\]/);
    expect(() => e.forward(Tensor.from([0.5], [1, 1]))).toThrow(/ids\[0\]/);
  });

  test('L2 normalization gives unit rows and clamps tiny norms at sqrt(eps)', () => {
    const l2 = new L2Normalize(1e-12);
    const y = l2.forward(Tensor.from([3, 4, 0, 0], [2, 2])).data;
    expect(Array.from(y)).toEqual([0.6000000238418579, 0.800000011920929, 0, 0]);
  });
});

describe('padding contributes nothing', () => {
  test('outputs at real positions ignore padding inputs, and padding gets zero gradient', () => {
    const rnd = lcg(21);
    const layer = new TransformerLayer({ dIn: 6, dModel: 8, heads: 2, dFF: 10, seed: 4 });
    const mask = maskFromLengths([3, 5], 5);
    const x = new Tensor(randArray(2 * 5 * 6, rnd), [2, 5, 6]);
    layer.setMask(mask);
    const y1 = layer.forward(x).data.slice();
    const x2 = x.clone();
    for (let t = 3; t < 5; t++)
      for (let j = 0; j < 6; j++) x2.data[(0 * 5 + t) * 6 + j] = 1e3 * rnd();
    const y2 = layer.forward(x2).data;
    for (let t = 0; t < 3; t++)
      for (let j = 0; j < 8; j++) expect(y2[t * 8 + j]).toBe(y1[t * 8 + j]);
    // gradient of a loss over real rows: zero at padding rows of the input
    const pool = new MeanPooling();
    pool.setMask(mask);
    layer.forward(x);
    const p = pool.forward(layer.forward(x));
    const gx = layer.backward(pool.backward(Tensor.from(randArray(p.size, rnd), p.shape))).data;
    for (let t = 3; t < 5; t++) for (let j = 0; j < 6; j++) expect(gx[t * 6 + j]).toBe(0);
  });
});

/** A tiny encoder: two layers (widening, then pre-LN), pooling, head; LoRA on every target. */
class TinyEncoder extends Module {
  readonly l0: TransformerLayer;
  readonly l1: TransformerLayer;
  constructor(activation: 'relu' | 'gelu' = 'relu') {
    super();
    this.l0 = new TransformerLayer({ dIn: 6, dModel: 8, heads: 2, dFF: 10, activation, seed: 10 });
    this.l1 = new TransformerLayer({ dIn: 8, dModel: 8, heads: 2, dFF: 12, activation, seed: 20 });
  }
  readonly pool = new MeanPooling();
  readonly head = new Linear(8, 3, { seed: 5 });
  children(): Array<[string, Module]> {
    return [
      ['layers.0', this.l0],
      ['layers.1', this.l1],
      ['pool', this.pool],
      ['head', this.head],
    ];
  }
  setMask(m: SequenceMask | null): void {
    this.l0.setMask(m);
    this.l1.setMask(m);
    this.pool.setMask(m);
  }
  forward(x: Tensor): Tensor {
    return this.head.forward(this.pool.forward(this.l1.forward(this.l0.forward(x))));
  }
  backward(g: Tensor): Tensor {
    return this.l0.backward(this.l1.backward(this.pool.backward(this.head.backward(g))));
  }
}

function tinyLora(
  seed: number,
  activation: 'relu' | 'gelu' = 'relu',
): { m: TinyEncoder; wrapped: string[] } {
  const m = new TinyEncoder(activation);
  for (const p of m.parameters()) p.requiresGrad = false;
  const wrapped = applyLora(m, ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'fc1', 'fc2'], {
    r: 2,
    alpha: 4,
    seed,
  });
  m.head.weight.requiresGrad = true;
  m.head.bias!.requiresGrad = true;
  // B starts at zero; give it values so that every gradient path is exercised.
  const rnd = lcg(seed + 1);
  for (const [, mod] of m.namedModules())
    if (mod instanceof LoraLinear) mod.loraB = randArray(mod.loraB.length, rnd, 0.5);
  return { m, wrapped };
}

describe('LoRA on the attention and feed-forward projections', () => {
  test('applyLora wraps every target by PEFT name', () => {
    const { wrapped } = tinyLora(1);
    expect(wrapped).toEqual([
      'layers.0.attention.q_proj',
      'layers.0.attention.k_proj',
      'layers.0.attention.v_proj',
      'layers.0.attention.o_proj',
      'layers.0.ffn.fc1',
      'layers.0.ffn.fc2',
      'layers.1.attention.q_proj',
      'layers.1.attention.k_proj',
      'layers.1.attention.v_proj',
      'layers.1.attention.o_proj',
      'layers.1.ffn.fc1',
      'layers.1.ffn.fc2',
    ]);
    const m2 = new TinyEncoder();
    expect(applyLora(m2, ['v_proj'], { r: 1 }, (p) => p.startsWith('layers.1'))).toEqual([
      'layers.1.attention.v_proj',
    ]);
    expect(() => applyLora(new TinyEncoder(), ['nope'], { r: 1 })).toThrow(/targets/);
  });

  test('LoRA gradients match finite differences through attention and FFN', () => {
    // GELU: no kinks for the central difference to straddle (ReLU is checked above).
    const { m } = tinyLora(2, 'gelu');
    const rnd = lcg(9);
    const x = new Tensor(randArray(2 * 5 * 6, rnd), [2, 5, 6]);
    fdCheck(m, x, maskFromLengths([5, 2], 5), m.trainableParameters(), 17, 3e-3);
  });

  test('per-sample norms and clipped sums equal a one-example-at-a-time loop, padding included', () => {
    const { m } = tinyLora(3);
    const rnd = lcg(10);
    const lengths = [5, 2, 4, 1, 3];
    const seq = 5;
    const batch = lengths.length;
    const x = new Tensor(randArray(batch * seq * 6, rnd), [batch, seq, 6]);
    const w = randArray(batch * 3, rnd);
    const params = m.trainableParameters();
    // Reference: each example alone, unpadded, raw gradient through the 'sum' backward.
    const ref: Float64Array[] = [];
    for (let i = 0; i < batch; i++) {
      const len = lengths[i];
      const xi = new Tensor(x.data.slice(i * seq * 6, (i * seq + len) * 6), [1, len, 6]);
      m.setMask(maskFromLengths([len], len));
      m.setGradMode('sum');
      m.zeroGrad();
      const y = m.forward(xi);
      m.backward(new Tensor(w.slice(i * 3, i * 3 + 3), y.shape));
      const g = new Float64Array(params.reduce((s, p) => s + p.size, 0));
      let o = 0;
      for (const p of params) {
        for (let j = 0; j < p.size; j++) g[o + j] = p.grad ? p.grad[j] : 0;
        o += p.size;
      }
      ref.push(g);
      m.zeroGrad();
    }
    // Batched, padded, per-sample hooks.
    m.setMask(maskFromLengths(lengths, seq));
    m.setGradMode('perSample');
    const y = m.forward(x);
    m.backward(new Tensor(w.slice(), y.shape));
    const normsSq = new Float64Array(batch);
    const factors = Float32Array.from([0.5, 1, 0, 2, 0.25]);
    const acc = new Map<Parameter, Float64Array>();
    for (const [, mod] of m.namedModules()) {
      if (!isPerSampleModule(mod) || !mod.ownParameters().some(([, p]) => p.requiresGrad)) continue;
      mod.addPerSampleNormsSq(normsSq);
      mod.accumulateClippedGrads(factors, (p) => {
        let b = acc.get(p);
        if (!b) acc.set(p, (b = new Float64Array(p.size)));
        return b;
      });
      mod.releaseCapture();
    }
    m.setGradMode('sum');
    for (let i = 0; i < batch; i++) {
      const n = ref[i].reduce((s, v) => s + v * v, 0);
      expect(n).toBeGreaterThan(1e-3);
      expect(Math.abs(normsSq[i] - n)).toBeLessThan(1e-4 * n);
    }
    let o = 0;
    for (const p of params) {
      const got = acc.get(p)!;
      for (let j = 0; j < p.size; j++) {
        let want = 0;
        for (let i = 0; i < batch; i++) want += factors[i] * ref[i][o + j];
        expect(Math.abs(got[j] - want)).toBeLessThan(1e-4 * (1 + Math.abs(want)));
      }
      o += p.size;
    }
  });
});
