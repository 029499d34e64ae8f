/**
 * The bf16 frozen base: PackedMatrix with `dtype: 'bf16'` against a plain reference that
 * rounds both operands to bf16 (round to nearest even, written here from the bit layout)
 * and sums the products in double.
 *
 * Error bound. A product of two bf16 values is exact in fp32 (8 + 8 significand bits), so
 * the only errors are the fp32 additions: at most k inside the micro-kernel, one per k
 * block when the block's sum is added to C (k / 64 covers every path's KC >= 64), and the
 * scaling by alpha and beta: |C - ref| <= gamma_n * (|alpha| S + |beta C0|) with
 * S = sum_k |a_k b_k|, n = k + ceil(k / 64) + 3, gamma_n = n u / (1 - n u), u = 2^-24
 * (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., eq. 3.5), plus
 * k 2^-126 |alpha| for sums that vdpbf16ps flushes to zero. Any two paths (native
 * vdpbf16ps, fp32 widening) therefore differ by at most twice that.
 */
import { capabilities, setIsa, setThreads } from '../lib/native';
import { PackedMatrix, sgemm } from '../lib/kernels/linalg';
import { Linear, LoraLinear, Sequential, Tensor, setBaseDtype } from '../lib/nn';
import { InvalidArgumentError } from '../lib/errors';
import { prng } from './helpers/sensitivity';

const caps = capabilities();
const ISAS = caps.supportedIsas;

afterEach(() => {
  setIsa(caps.isa);
  setThreads(caps.threads);
});

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** fp32 -> bf16 -> fp32, round to nearest even (a subnormal input becomes a signed zero). */
function bf16(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const exp = (b >>> 23) & 0xff;
  if (exp === 0xff) return (b & 0x7fffff) !== 0 ? NaN : f32[0];
  if (exp === 0) return b >>> 31 ? -0 : 0;
  const low = b & 0xffff;
  let high = b >>> 16;
  if (low > 0x8000 || (low === 0x8000 && (high & 1) === 1)) high += 1;
  u32[0] = (high << 16) >>> 0;
  return f32[0];
}

const U = 2 ** -24;
function gamma(n: number): number {
  return (n * U) / (1 - n * U);
}

interface Case {
  m: number;
  k: number;
  n: number;
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  beta?: number;
  /** Extra row stride of A, B and C, and a one-float offset of every array. */
  pad?: number;
}

function randomArray(len: number, rnd: () => number, scale = 1): Float32Array {
  const x = new Float32Array(len);
  for (let i = 0; i < len; i++) x[i] = (2 * rnd() - 1) * scale;
  return x;
}

/** Runs one case on the active ISA and checks it against the reference; returns C. */
function runCase(c: Case, seed: number): { out: Float32Array; ref: Float64Array; bound: number[] } {
  const { m, k, n } = c;
  const ta = !!c.transA;
  const tb = !!c.transB;
  const alpha = c.alpha ?? 1;
  const beta = c.beta ?? 0;
  const pad = c.pad ?? 0;
  const rnd = prng(seed);
  const lda = (ta ? m : k) + pad;
  const ldb = (tb ? k : n) + pad;
  const ldc = n + pad;
  const off = pad > 0 ? 1 : 0; // unaligned views
  const aBuf = randomArray(off + (ta ? k : m) * lda, rnd);
  const bBuf = randomArray(off + (tb ? n : k) * ldb, rnd);
  const cBuf = randomArray(off + m * ldc, rnd);
  const a = aBuf.subarray(off);
  const b = bBuf.subarray(off);
  const c0 = Float32Array.from(cBuf.subarray(off));
  const out = cBuf.subarray(off);
  const packed = PackedMatrix.pack(b, { k, n, transB: tb, ldb, dtype: 'bf16' });
  expect(packed.info().dtype).toBe('bf16');
  packed.multiply(a, out, { m, k, n, transA: ta, alpha, beta, lda, ldc });
  const ref = new Float64Array(m * n);
  const bound: number[] = [];
  const g = gamma(k + Math.ceil(k / 64) + 3);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      let sa = 0;
      for (let q = 0; q < k; q++) {
        const av = bf16(ta ? a[q * lda + i] : a[i * lda + q]);
        const bv = bf16(tb ? b[j * ldb + q] : b[q * ldb + j]);
        s += av * bv;
        sa += Math.abs(av * bv);
      }
      const cv = beta === 0 ? 0 : beta * c0[i * ldc + j];
      ref[i * n + j] = alpha * s + cv;
      bound.push(g * (Math.abs(alpha) * sa + Math.abs(cv)) + k * 2 ** -126 * Math.abs(alpha));
    }
  }
  // Padding between rows of C is never written.
  for (let i = 0; i < m; i++)
    for (let j = n; j < ldc && i * ldc + j < out.length; j++)
      expect(out[i * ldc + j]).toBe(c0[i * ldc + j]);
  const dense = new Float32Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) dense[i * n + j] = out[i * ldc + j];
  return { out: dense, ref, bound };
}

function worstRatio(r: { out: Float32Array; ref: Float64Array; bound: number[] }): number {
  let worst = 0;
  for (let i = 0; i < r.ref.length; i++) {
    const e = Math.abs(r.out[i] - r.ref[i]);
    worst = Math.max(worst, r.bound[i] > 0 ? e / r.bound[i] : e === 0 ? 0 : Infinity);
  }
  return worst;
}

const CASES: Case[] = [
  { m: 1, k: 1, n: 1 },
  { m: 1, k: 2, n: 33 },
  { m: 5, k: 3, n: 40 },
  { m: 13, k: 7, n: 33 },
  { m: 12, k: 256, n: 32 },
  { m: 25, k: 257, n: 65 },
  { m: 37, k: 513, n: 17, pad: 3 },
  { m: 24, k: 31, n: 64, transA: true },
  { m: 11, k: 30, n: 9, transB: true, pad: 5 },
  { m: 19, k: 100, n: 48, alpha: -0.75, beta: 0.5, pad: 1 },
  { m: 200, k: 96, n: 200, alpha: 2, beta: 1 },
  { m: 97, k: 300, n: 130, transB: true, beta: 1 },
];

describe('bf16 packed product against the bf16-rounded double reference', () => {
  test.each(ISAS)('every shape within the fp32 accumulation bound (%s path)', (isa) => {
    setIsa(isa);
    CASES.forEach((c, i) => {
      const r = runCase(c, 1000 + i);
      expect([isa, c, worstRatio(r) <= 1]).toEqual([isa, c, true]);
    });
  });

  test('the native vdpbf16ps path and the widening fallback agree within twice the bound', () => {
    const paths = ISAS.filter((i) => i !== 'scalar');
    // With AVX512_BF16 the avx512 path is native and avx2/scalar widen; without it every path
    // widens and this still compares two different fp32 kernels.
    const all = [...paths, 'scalar'];
    CASES.forEach((c, i) => {
      const results = all.map((isa) => {
        setIsa(isa);
        return runCase(c, 2000 + i);
      });
      for (let p = 1; p < results.length; p++) {
        for (let e = 0; e < results[0].out.length; e++) {
          const d = Math.abs(results[0].out[e] - results[p].out[e]);
          if (d > 2 * results[0].bound[e]) throw new Error(`${all[p]} differs at ${e}: ${d}`);
        }
      }
    });
    if (caps.isa === 'avx512') expect(['native', 'widened']).toContain(caps.bf16);
    else expect(caps.bf16).toBe('widened');
  });

  test('both operands are rounded to nearest even: ties, overflow, NaN, subnormals, signed zero', () => {
    const vals = [
      1 + 2 ** -8, // halfway between 1 and 1 + 2^-7: ties to even (1)
      1 + 3 * 2 ** -8, // halfway, odd below: rounds up to 1 + 2^-6
      1 + 2 ** -8 + 2 ** -20, // just above halfway: up
      -(1 + 2 ** -8),
      3.4028234663852886e38, // FLT_MAX rounds to +Infinity
      -3.4028234663852886e38,
      2 ** -130, // subnormal: zero
      -0,
      Infinity,
      NaN,
      1.2345678e-20,
      65504.5,
    ];
    for (const isa of ISAS) {
      setIsa(isa);
      // B side: k = 1, A = 1.
      const bp = PackedMatrix.pack(Float32Array.from(vals), {
        k: 1,
        n: vals.length,
        dtype: 'bf16',
      });
      const c = new Float32Array(vals.length);
      bp.multiply(new Float32Array([1]), c, { m: 1, k: 1, n: vals.length });
      // + 0: a zero product added to C = 0 is +0 whatever the sign of the rounded value.
      vals.forEach((v, j) => expect([isa, 'B', j, c[j]]).toEqual([isa, 'B', j, bf16(v) + 0]));
      // A side: B = 1 (k = 1), one row per value.
      const one = PackedMatrix.pack(new Float32Array([1]), { k: 1, n: 1, dtype: 'bf16' });
      const c2 = new Float32Array(vals.length);
      one.multiply(Float32Array.from(vals), c2, { m: vals.length, k: 1, n: 1 });
      vals.forEach((v, j) => expect([isa, 'A', j, c2[j]]).toEqual([isa, 'A', j, bf16(v) + 0]));
    }
    expect(bf16(1 + 2 ** -8)).toBe(1);
    expect(bf16(1 + 3 * 2 ** -8)).toBe(1 + 2 ** -6);
    expect(bf16(3.4028234663852886e38)).toBe(Infinity);
  });

  test('a row never depends on the other rows or on the thread count (per-record arithmetic)', () => {
    const k = 200;
    const n = 70;
    const rnd = prng(77);
    const w = randomArray(n * k, rnd);
    const x = randomArray(64 * k, rnd);
    for (const isa of ISAS) {
      setIsa(isa);
      const p = PackedMatrix.pack(w, { k, n, transB: true, dtype: 'bf16' });
      setThreads(caps.threads);
      const full = new Float32Array(64 * n);
      p.multiply(x, full, { m: 64, k, n });
      setThreads(1);
      for (const [i0, rows] of [
        [0, 1],
        [5, 7],
        [13, 51],
      ]) {
        const part = new Float32Array(rows * n);
        p.multiply(x.subarray(i0 * k), part, { m: rows, k, n });
        expect(
          Buffer.from(part.buffer).equals(Buffer.from(full.buffer, i0 * n * 4, rows * n * 4)),
        ).toBe(true);
      }
    }
  });

  test('a bf16 handle holds half the bytes of the fp32 one and repacks after an ISA switch', () => {
    const w = randomArray(768 * 768, prng(5));
    const f = PackedMatrix.pack(w, { k: 768, n: 768, transB: true });
    const h = PackedMatrix.pack(w, { k: 768, n: 768, transB: true, dtype: 'bf16' });
    expect(f.info().dtype).toBe('fp32');
    expect(h.info().bytes).toBe(f.info().bytes / 2);
    expect(h.info().bytes).toBe(768 * 768 * 2);
    const other = ISAS.find((i) => i !== caps.isa);
    if (other) {
      const x = randomArray(3 * 768, prng(6));
      const y1 = new Float32Array(3 * 768);
      h.multiply(x, y1, { m: 3, k: 768, n: 768 });
      setIsa(other);
      const y2 = new Float32Array(3 * 768);
      h.multiply(x, y2, { m: 3, k: 768, n: 768 });
      expect(h.info().isa).toBe(other);
      expect(h.info().dtype).toBe('bf16');
    }
  });

  test('a bad dtype is a RangeError naming it', () => {
    expect(() =>
      PackedMatrix.pack(new Float32Array(4), {
        k: 2,
        n: 2,
        dtype: 'fp16' as unknown as 'bf16',
      }),
    ).toThrow(/dtype must be 'fp32' or 'bf16'/);
  });
});

describe('baseDtype of Linear, LoraLinear and setBaseDtype', () => {
  const D_IN = 40;
  const D_OUT = 24;

  test('a frozen bf16 Linear computes bf16(x) bf16(W)^T + b forward and bf16(g) bf16(W) backward', () => {
    const l = new Linear(D_IN, D_OUT, { trainable: false, seed: 3, baseDtype: 'bf16' });
    expect(l.baseDtype).toBe('bf16');
    const rows = 9;
    const x = randomArray(rows * D_IN, prng(8));
    l.train();
    const y = l.forward(new Tensor(x, [rows, D_IN]));
    const W = l.weight.data;
    const b = l.bias!.data;
    let worst = 0;
    let differsFromFp32 = false;
    for (let i = 0; i < rows; i++) {
      for (let o = 0; o < D_OUT; o++) {
        let s = 0;
        let sa = 0;
        let s32 = 0;
        for (let q = 0; q < D_IN; q++) {
          const p = bf16(x[i * D_IN + q]) * bf16(W[o * D_IN + q]);
          s += p;
          sa += Math.abs(p);
          s32 += x[i * D_IN + q] * W[o * D_IN + q];
        }
        const bound = gamma(D_IN + 4) * (sa + Math.abs(b[o]));
        worst = Math.max(worst, Math.abs(y.data[i * D_OUT + o] - (s + b[o])) / bound);
        if (Math.abs(y.data[i * D_OUT + o] - (s32 + b[o])) > 1e-4) differsFromFp32 = true;
      }
    }
    expect(worst).toBeLessThanOrEqual(1);
    expect(differsFromFp32).toBe(true); // the bf16 path really ran
    const g = randomArray(rows * D_OUT, prng(9));
    const gi = l.backward(new Tensor(g, [rows, D_OUT]));
    worst = 0;
    for (let i = 0; i < rows; i++) {
      for (let q = 0; q < D_IN; q++) {
        let s = 0;
        let sa = 0;
        for (let o = 0; o < D_OUT; o++) {
          const p = bf16(g[i * D_OUT + o]) * bf16(W[o * D_IN + q]);
          s += p;
          sa += Math.abs(p);
        }
        worst = Math.max(worst, Math.abs(gi.data[i * D_IN + q] - s) / (gamma(D_OUT + 4) * sa));
      }
    }
    expect(worst).toBeLessThanOrEqual(1);
  });

  test('a trainable weight stays fp32 (bitwise equal to an fp32 layer)', () => {
    const a = new Linear(D_IN, D_OUT, { seed: 4, baseDtype: 'bf16' });
    const b = new Linear(D_IN, D_OUT, { seed: 4 });
    const x = new Tensor(randomArray(5 * D_IN, prng(10)), [5, D_IN]);
    const ya = a.forward(x).data;
    const yb = b.forward(x).data;
    expect(Array.from(ya)).toEqual(Array.from(yb));
    const ref = new Float32Array(5 * D_OUT);
    sgemm(x.data, b.weight.data, ref, { m: 5, n: D_OUT, k: D_IN, transB: true });
    for (let i = 0; i < 5; i++)
      for (let o = 0; o < D_OUT; o++) ref[i * D_OUT + o] += b.bias!.data[o];
    expect(Array.from(ya)).toEqual(Array.from(ref));
  });

  test('LoraLinear and setBaseDtype set the base; the adapter stays fp32', () => {
    const lora = new LoraLinear(new Linear(D_IN, D_OUT, { trainable: false, seed: 5 }), {
      r: 4,
      seed: 6,
      baseDtype: 'bf16',
    });
    expect(lora.base.baseDtype).toBe('bf16');
    const head = new Linear(D_OUT, 3, { seed: 7 });
    const model = new Sequential(lora, head);
    expect(setBaseDtype(model, 'fp32')).toBe(2);
    expect(lora.base.baseDtype).toBe('fp32');
    expect(setBaseDtype(model, 'bf16')).toBe(2);
    expect(head.baseDtype).toBe('bf16'); // set, but the head is trainable: it runs fp32
    // Same model in fp32 and bf16: outputs differ by the bf16 base only (B = 0 at init).
    const x = new Tensor(randomArray(4 * D_IN, prng(11)), [4, D_IN]);
    const y16 = model.forward(x).data.slice();
    setBaseDtype(model, 'fp32');
    const y32 = model.forward(x).data;
    let rel = 0;
    for (let i = 0; i < y32.length; i++) rel = Math.max(rel, Math.abs(y16[i] - y32[i]));
    expect(rel).toBeGreaterThan(0);
    expect(rel).toBeLessThan(0.05);
  });

  test('bad values are InvalidArgumentErrors naming the argument', () => {
    const bad = 'fp16' as unknown as 'bf16';
    const expectArg = (f: () => unknown, arg: string) => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(InvalidArgumentError);
        expect((e as InvalidArgumentError).argument).toBe(arg);
        return;
      }
      throw new Error('did not throw');
    };
    expectArg(() => new Linear(2, 2, { baseDtype: bad }), 'baseDtype');
    expectArg(() => new LoraLinear(new Linear(2, 2), { r: 1, baseDtype: bad }), 'baseDtype');
    const l = new Linear(2, 2);
    expectArg(() => {
      l.baseDtype = bad;
    }, 'baseDtype');
    expectArg(() => setBaseDtype(l, bad), 'dtype');
    expectArg(() => setBaseDtype({} as unknown as Linear, 'bf16'), 'model');
  });
});
