/**
 * The native transformer kernels (native/kernels/elementwise, through LayerNorm, the attention
 * core, ReLU and the residual adds) on every ISA path this CPU has, against plain
 * double-precision references written here: masked attention forward and backward (prefix
 * masks, masks that are not a prefix, sequences without a real key), LayerNorm forward and
 * backward with its per-sample parameter sums, ReLU's special values; results identical on 1
 * and 2 threads; unaligned (4-byte) views; argument checks.
 */
import { attentionBackward, attentionForward, MultiHeadAttention } from '../lib/nn/attention';
import { LayerNorm } from '../lib/nn/layer_norm';
import { ReLU } from '../lib/nn/activations';
import { Embedding } from '../lib/nn/embedding';
import { TimingSignal } from '../lib/nn/timing_signal';
import { maskFromLengths, SequenceMask } from '../lib/nn/sequence_mask';
import { Tensor } from '../lib/nn/tensor';
import { capabilities, setIsa, setThreads } from '../lib/native';
import {
  addInPlace,
  layerNormForward,
  reluForward,
  tokenMean,
  tokenSpread,
} from '../lib/kernels/elementwise';
import { InvalidArgumentError } from '../lib/errors';
import { lcg, randArray } from './helpers/nn_ref';

const start = capabilities();
afterAll(() => {
  setIsa(start.isa);
  setThreads(start.threads);
});

/** A copy of `a` at a 4-byte (not 16-byte) aligned offset of a larger buffer. */
function unaligned(a: Float32Array): Float32Array {
  const buf = new Float32Array(a.length + 1);
  const v = buf.subarray(1);
  v.set(a);
  return v;
}

/** Plain double reference of the masked attention forward and backward. */
function attentionRef(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  gOut: Float32Array,
  batch: number,
  seq: number,
  heads: number,
  dh: number,
  scale: number,
  mask: SequenceMask | null,
) {
  const d = heads * dh;
  const n = batch * seq * d;
  const out = new Float64Array(n);
  const probs = new Float64Array(batch * heads * seq * seq);
  const gq = new Float64Array(n);
  const gk = new Float64Array(n);
  const gv = new Float64Array(n);
  const at = (x: Float32Array, b: number, t: number, h: number, j: number) =>
    x[(b * seq + t) * d + h * dh + j];
  for (let b = 0; b < batch; b++) {
    const real = (s: number) => !mask || mask.valid[b * seq + s] !== 0;
    let any = false;
    for (let s = 0; s < seq; s++) any = any || real(s);
    for (let h = 0; h < heads; h++) {
      const P = (t: number, s: number) => ((b * heads + h) * seq + t) * seq + s;
      for (let t = 0; t < seq; t++) {
        if (!any) {
          for (let s = 0; s < seq; s++) probs[P(t, s)] = 1 / seq;
        } else {
          const sc: number[] = [];
          for (let s = 0; s < seq; s++) {
            let z = 0;
            for (let j = 0; j < dh; j++) z += at(q, b, t, h, j) * at(k, b, s, h, j);
            sc.push(real(s) ? scale * z : -Infinity);
          }
          const mx = Math.max(...sc);
          const e = sc.map((z) => (z === -Infinity ? 0 : Math.exp(z - mx)));
          const tot = e.reduce((a, c) => a + c, 0);
          for (let s = 0; s < seq; s++) probs[P(t, s)] = e[s] / tot;
        }
        for (let j = 0; j < dh; j++) {
          let o = 0;
          for (let s = 0; s < seq; s++) o += probs[P(t, s)] * at(v, b, s, h, j);
          out[(b * seq + t) * d + h * dh + j] = o;
        }
        const dp: number[] = [];
        let dot = 0;
        for (let s = 0; s < seq; s++) {
          let z = 0;
          for (let j = 0; j < dh; j++) z += at(gOut, b, t, h, j) * at(v, b, s, h, j);
          dp.push(z);
          dot += probs[P(t, s)] * z;
        }
        for (let s = 0; s < seq; s++) {
          const ds = scale * probs[P(t, s)] * (dp[s] - dot);
          for (let j = 0; j < dh; j++) {
            gq[(b * seq + t) * d + h * dh + j] += ds * at(k, b, s, h, j);
            gk[(b * seq + s) * d + h * dh + j] += ds * at(q, b, t, h, j);
            gv[(b * seq + s) * d + h * dh + j] += probs[P(t, s)] * at(gOut, b, t, h, j);
          }
        }
      }
    }
  }
  return { out, probs, gq, gk, gv };
}

function maxErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < want.length; i++) m = Math.max(m, Math.abs(got[i] - want[i]));
  return m;
}

/** A mask whose real keys are not a prefix in sequence 0 and a prefix in the others. */
function holeMask(batch: number, seq: number): SequenceMask {
  const m = maskFromLengths(
    Array.from({ length: batch }, (_, b) => Math.max(1, seq - 2 * b)),
    seq,
  );
  m.valid[1] = 0;
  m.valid[seq - 1] = 1;
  return m;
}

const isas = start.supportedIsas;

describe.each(isas)('native transformer kernels, ISA %s', (isa) => {
  beforeAll(() => setIsa(isa));

  test('attention forward and backward match a double reference (masks of every kind)', () => {
    const rnd = lcg(21);
    const cases: Array<[number, number, number, number, SequenceMask | null]> = [
      [2, 7, 2, 3, null],
      [4, 11, 3, 5, maskFromLengths([11, 4, 0, 1], 11)],
      [3, 9, 2, 16, holeMask(3, 9)],
      [2, 33, 4, 64, maskFromLengths([33, 20], 33)],
    ];
    for (const [batch, seq, heads, dh, mask] of cases) {
      const n = batch * seq * heads * dh;
      const q = unaligned(randArray(n, rnd, 1.5));
      const k = unaligned(randArray(n, rnd, 1.5));
      const v = unaligned(randArray(n, rnd));
      const g = unaligned(randArray(n, rnd));
      const scale = 1 / Math.sqrt(dh);
      const ref = attentionRef(q, k, v, g, batch, seq, heads, dh, scale, mask);
      const { out, probs } = attentionForward(q, k, v, batch, seq, heads, dh, scale, mask);
      expect(maxErr(probs, ref.probs)).toBeLessThan(2e-6);
      expect(maxErr(out, ref.out)).toBeLessThan(1e-5);
      if (mask) {
        // padding keys get exactly zero weight (in sequences with a real key)
        for (let b = 0; b < batch; b++) {
          if (!mask.valid.subarray(b * seq, (b + 1) * seq).some((x) => x)) continue;
          for (let h = 0; h < heads; h++)
            for (let t = 0; t < seq; t++)
              for (let s = 0; s < seq; s++)
                if (!mask.valid[b * seq + s])
                  expect(probs[((b * heads + h) * seq + t) * seq + s]).toBe(0);
        }
      }
      const p = unaligned(probs);
      const { gq, gk, gv } = attentionBackward(g, q, k, v, p, batch, seq, heads, dh, scale);
      expect(maxErr(gq, ref.gq)).toBeLessThan(1e-5);
      expect(maxErr(gk, ref.gk)).toBeLessThan(1e-5);
      expect(maxErr(gv, ref.gv)).toBeLessThan(1e-5);
    }
  });

  test('MultiHeadAttention backward with a mask (only real keys read) equals the full one', () => {
    const rnd = lcg(4);
    const [batch, seq, dIn] = [3, 10, 12];
    const att = new MultiHeadAttention({ dIn, dAttn: 12, dOut: 8, heads: 3, seed: 5 });
    att.train();
    const mask = maskFromLengths([10, 6, 1], seq);
    const x = new Tensor(randArray(batch * seq * dIn, rnd), [batch, seq, dIn]);
    att.setMask(mask);
    att.forward(x);
    const g = new Tensor(randArray(batch * seq * 8, rnd), [batch, seq, 8]);
    const gx = att.backward(g).data.slice();
    const grads = att.trainableParameters().map((p) => p.grad!.slice());
    // reference: the same layer's pieces with the attention core's backward reading all keys
    att.zeroGrad();
    const q = att.q.forward(x).data.slice();
    const k = att.k.forward(x).data.slice();
    const v = att.v.forward(x).data.slice();
    const { out, probs } = attentionForward(q, k, v, batch, seq, 3, 4, att.scale, mask);
    att.o.forward(new Tensor(out.slice(), [batch, seq, 12]));
    const gAttn = att.o.backward(g).data.slice();
    const full = attentionBackward(gAttn, q, k, v, probs, batch, seq, 3, 4, att.scale);
    const shape = [batch, seq, 12];
    const want = att.q.backward(new Tensor(full.gq.slice(), shape)).data.slice();
    const wk = att.k.backward(new Tensor(full.gk.slice(), shape)).data;
    for (let i = 0; i < want.length; i++) want[i] += wk[i];
    const wv = att.v.backward(new Tensor(full.gv.slice(), shape)).data;
    for (let i = 0; i < want.length; i++) want[i] += wv[i];
    expect(maxErr(gx, want)).toBeLessThan(1e-5);
    const wantGrads = att.trainableParameters().map((p) => p.grad!);
    grads.forEach((gr, i) => expect(maxErr(gr, wantGrads[i])).toBeLessThan(1e-5));
  });

  test('LayerNorm forward and backward (per-sample gamma/beta sums) match a double reference', () => {
    const rnd = lcg(8);
    for (const d of [1, 5, 16, 37, 512]) {
      const [batch, seq] = [3, 4];
      const ln = new LayerNorm(d, { eps: 1e-6 });
      ln.weight.data.set(randArray(d, rnd, 2));
      ln.bias.data.set(randArray(d, rnd));
      // rows with a large common offset: the variance must not cancel
      const xd = randArray(batch * seq * d, rnd);
      for (let i = 0; i < xd.length; i++) xd[i] += 20;
      const x = new Tensor(unaligned(xd), [batch, seq, d]);
      const g = unaligned(randArray(batch * seq * d, rnd));
      ln.train();
      ln.setGradMode('sum');
      const y = ln.forward(x).data;
      const gi = ln.backward(new Tensor(g, x.shape)).data;
      const w = ln.weight.data;
      const gw = new Float64Array(d);
      const gb = new Float64Array(d);
      for (let r = 0; r < batch * seq; r++) {
        const row = Array.from(x.data.subarray(r * d, (r + 1) * d));
        const mean = row.reduce((a, c) => a + c, 0) / d;
        const vr = row.reduce((a, c) => a + (c - mean) ** 2, 0) / d;
        const is = 1 / Math.sqrt(vr + 1e-6);
        const xh = row.map((c) => (c - mean) * is);
        let m1 = 0;
        let m2 = 0;
        for (let j = 0; j < d; j++) {
          expect(Math.abs(y[r * d + j] - (xh[j] * w[j] + ln.bias.data[j]))).toBeLessThan(
            1e-5 * (1 + Math.abs(w[j])),
          );
          m1 += g[r * d + j] * w[j];
          m2 += g[r * d + j] * w[j] * xh[j];
          gw[j] += g[r * d + j] * xh[j];
          gb[j] += g[r * d + j];
        }
        m1 /= d;
        m2 /= d;
        for (let j = 0; j < d; j++) {
          const want = is * (g[r * d + j] * w[j] - m1 - xh[j] * m2);
          expect(Math.abs(gi[r * d + j] - want)).toBeLessThan(1e-5 * is * 4);
        }
      }
      expect(maxErr(ln.weight.grad!, gw)).toBeLessThan(1e-4);
      expect(maxErr(ln.bias.grad!, gb)).toBeLessThan(1e-4);
    }
  });

  test('masked token mean and its adjoint match a plain reference; padding is never read', () => {
    const rnd = lcg(12);
    const [batch, seq, f] = [4, 7, 19];
    const mask = holeMask(batch, seq);
    mask.valid.fill(0, 2 * seq, 3 * seq); // sequence 2: no real token
    const x = unaligned(randArray(batch * seq * f, rnd));
    for (let r = 0; r < batch * seq; r++) if (!mask.valid[r]) x.fill(NaN, r * f, (r + 1) * f);
    const g = randArray(batch * f, rnd);
    for (const acc of [false, true]) {
      const out = new Float32Array(batch * f).fill(0.5);
      tokenMean(x, mask.valid, batch, seq, f, out, acc);
      const gx = new Float32Array(batch * seq * f).fill(0.25);
      tokenSpread(g, mask.valid, batch, seq, f, gx, acc);
      for (let b = 0; b < batch; b++) {
        let n = 0;
        for (let t = 0; t < seq; t++) n += mask.valid[b * seq + t];
        for (let j = 0; j < f; j++) {
          let m = 0;
          for (let t = 0; t < seq; t++) if (mask.valid[b * seq + t]) m += x[(b * seq + t) * f + j];
          const want = (acc ? 0.5 : 0) + (n ? m / n : 0);
          expect(Math.abs(out[b * f + j] - want)).toBeLessThan(1e-6);
          for (let t = 0; t < seq; t++) {
            const add = mask.valid[b * seq + t] ? g[b * f + j] / n : 0;
            expect(Math.abs(gx[(b * seq + t) * f + j] - ((acc ? 0.25 : 0) + add))).toBeLessThan(
              1e-6,
            );
          }
        }
      }
    }
  });

  test('embedding lookup and timing signal match a plain reference (padding, holes, bad ids)', () => {
    const rnd = lcg(17);
    const [vocab, d, batch, seq] = [11, 6, 3, 5];
    const table = randArray(vocab * d, rnd);
    const emb = new Embedding(vocab, d, { weight: table, scale: 2 });
    const ids = Float32Array.from([3, 0, 10, -1, -1, 7, 7, 7, 7, 7, 1, -1, 2, -1, 5]);
    const y = emb.forward(new Tensor(ids, [batch, seq])).data;
    for (let r = 0; r < batch * seq; r++)
      for (let j = 0; j < d; j++)
        expect(y[r * d + j]).toBe(ids[r] === -1 ? 0 : Math.fround(2 * table[ids[r] * d + j]));
    for (const bad of [11, 2.5, -2, NaN])
      expect(() => emb.forward(new Tensor(Float32Array.from([0, bad]), [1, 2]))).toThrow(
        InvalidArgumentError,
      );
    const ts = new TimingSignal(d);
    const mask = maskFromLengths([5, 2, 3], seq);
    mask.valid[2 * seq + 4] = 1; // sequence 2: real tokens 0, 1, 2 and 4 (not a prefix)
    ts.setMask(mask);
    const x = randArray(batch * seq * d, rnd);
    const out = ts.forward(new Tensor(x, [batch, seq, d])).data;
    ts.setMask(null);
    const sig = new TimingSignal(d).forward(
      new Tensor(new Float32Array(seq * d), [1, seq, d]),
    ).data;
    for (let b = 0; b < batch; b++)
      for (let t = 0; t < seq; t++)
        for (let j = 0; j < d; j++) {
          const i = (b * seq + t) * d + j;
          const want = mask.valid[b * seq + t] ? Math.fround(x[i] + sig[t * d + j]) : x[i];
          expect(out[i]).toBe(want);
        }
  });

  test('ReLU: NaN, -0 and -inf give +0, +inf and positive values pass; backward masks by y > 0', () => {
    const x = unaligned(
      Float32Array.from([
        NaN,
        -0,
        0,
        Infinity,
        -Infinity,
        1e-45,
        -1e-45,
        2.5,
        -3,
        ...randArray(40, lcg(2)),
      ]),
    );
    const relu = new ReLU();
    relu.train();
    const y = relu.forward(new Tensor(x, [x.length])).data;
    for (let i = 0; i < x.length; i++) expect(Object.is(y[i], x[i] > 0 ? x[i] : 0)).toBe(true);
    const g = randArray(x.length, lcg(3));
    const gi = relu.backward(new Tensor(g, [x.length])).data;
    for (let i = 0; i < x.length; i++) expect(gi[i]).toBe(y[i] > 0 ? g[i] : 0);
  });
});

describe('native transformer kernels: threads and argument checks', () => {
  test('results are identical on 1 and 2 threads', () => {
    const rnd = lcg(30);
    const [batch, seq, heads, dh] = [5, 24, 4, 16];
    const n = batch * seq * heads * dh;
    const q = randArray(n, rnd);
    const k = randArray(n, rnd);
    const v = randArray(n, rnd);
    const g = randArray(n, rnd);
    const mask = maskFromLengths([24, 3, 17, 0, 9], seq);
    const run = () => {
      const { out, probs } = attentionForward(q, k, v, batch, seq, heads, dh, 0.3, mask);
      const gr = attentionBackward(g, q, k, v, probs, batch, seq, heads, dh, 0.3);
      const y = new Float32Array(n);
      layerNormForward(q, k.subarray(0, 64), v.subarray(0, 64), n / 64, 64, 1e-6, y, null, null);
      return [out, probs, gr.gq, gr.gk, gr.gv, y].map((a) => Array.from(a));
    };
    setThreads(1);
    const one = run();
    setThreads(2);
    const two = run();
    setThreads(start.threads);
    expect(two).toEqual(one);
  });

  test('outputs that share memory with inputs, and short arrays, are refused', () => {
    const x = new Float32Array(64);
    expect(() => addInPlace(x.subarray(0, 32), x.subarray(16, 48))).toThrow(InvalidArgumentError);
    expect(() => addInPlace(x.subarray(0, 32), x.subarray(0, 16))).toThrow(/x has length 16/);
    expect(() => reluForward(x.subarray(0, 32), x.subarray(8, 40))).toThrow(/y must not share/);
    reluForward(x, x); // in place is allowed
    expect(() =>
      layerNormForward(x, x.subarray(0, 8), x.subarray(0, 8), 8, 8, 1e-6, x, null, null),
    ).toThrow(/y must not share memory with x/);
  });
});
