import { clipFactors, clipRows, clippedSum, clippedSumAsync } from '../lib/api/kernels';
import type { GradShape } from '../lib/api/kernels';
import { forEachConfig } from './reference/linalg_configs';
import { offsetView, randomF32, refClipFactor, refClippedSum, rng } from './reference/linalg_ref';

const EPS = 2 ** -24;

function checkSum(
  got: Float32Array,
  ref: { out: Float64Array; scale: Float64Array },
  k: number,
  what: string,
): void {
  expect(got.length).toBe(ref.out.length);
  for (let x = 0; x < got.length; x++) {
    const tol = (k + 4) * EPS * ref.scale[x] + 1e-30;
    if (!(Math.abs(got[x] - ref.out[x]) <= tol))
      throw new Error(`${what} [${x}]: ${got[x]} vs ${ref.out[x]}`);
  }
}

describe('clippedSum', () => {
  const SHAPES: GradShape[] = [
    { batch: 0, seq: 2, inDim: 3, outDim: 4 },
    { batch: 2, seq: 0, inDim: 3, outDim: 4 },
    { batch: 2, seq: 3, inDim: 0, outDim: 4 },
    { batch: 1, seq: 1, inDim: 1, outDim: 1 },
    { batch: 3, seq: 5, inDim: 9, outDim: 3 },
    { batch: 4, seq: 7, inDim: 33, outDim: 17 },
    { batch: 5, seq: 20, inDim: 8, outDim: 40 },
    { batch: 6, seq: 30, inDim: 70, outDim: 8 },
    // > 2048 rows with a narrow side: split into fixed row pieces
    { batch: 5, seq: 500, inDim: 24, outDim: 3 },
    { batch: 4, seq: 600, inDim: 2, outDim: 21 },
  ];

  it('matches the reference (overwrite and accumulate) under every ISA and thread count', () => {
    forEachConfig((isa) => {
      const rand = rng(21);
      for (const s of SHAPES) {
        const a = offsetView(randomF32(rand, s.batch * s.seq * s.inDim), 1);
        const g = offsetView(randomF32(rand, s.batch * s.seq * s.outDim), 2);
        const f = new Float32Array(s.batch).map(() => rand());
        if (s.batch >= 4) f[2] = 0; // a dropped sample splits the rows into two runs
        const k = s.batch * s.seq;
        checkSum(
          clippedSum(a, g, s, f),
          refClippedSum(a, g, s, f),
          k,
          `${isa} ${JSON.stringify(s)}`,
        );
        const out = offsetView(randomF32(rand, s.outDim * s.inDim), 3);
        const ref = refClippedSum(a, g, s, f, out);
        expect(clippedSum(a, g, s, f, out, { accumulate: true })).toBe(out);
        checkSum(out, ref, k + 1, `${isa} accumulate ${JSON.stringify(s)}`);
        const out2 = new Float32Array(s.outDim * s.inDim).fill(Number.NaN);
        checkSum(
          clippedSum(a, g, s, f, out2, { accumulate: false }),
          refClippedSum(a, g, s, f),
          k,
          `${isa} overwrite`,
        );
      }
    });
  });

  it('a sample with factor 0 contributes nothing, even with NaN and Inf in a and g', () => {
    forEachConfig(() => {
      const rand = rng(4);
      const s: GradShape = { batch: 3, seq: 4, inDim: 19, outDim: 11 };
      const a = randomF32(rand, 3 * 4 * 19);
      const g = randomF32(rand, 3 * 4 * 11);
      const f = new Float32Array([0.5, 0, 1]);
      const ref = refClippedSum(a, g, s, f);
      for (let t = 0; t < 4; t++) {
        a[(4 + t) * 19 + 3] = Number.NaN;
        g[(4 + t) * 11 + 2] = Number.POSITIVE_INFINITY;
      }
      const got = clippedSum(a, g, s, f);
      expect(got.every(Number.isFinite)).toBe(true);
      checkSum(got, ref, 12, 'dropped sample');
    });
  });

  it('equals the sum of clipped per-sample gradients (book-keeping identity)', () => {
    const rand = rng(6);
    const s: GradShape = { batch: 4, seq: 3, inDim: 6, outDim: 5 };
    const a = randomF32(rand, 4 * 3 * 6);
    const g = randomF32(rand, 4 * 3 * 5);
    const f = new Float32Array([1, 0.25, 0.5, 0.125]);
    const total = new Float64Array(30);
    for (let i = 0; i < 4; i++) {
      const one = new Float32Array(4);
      one[i] = f[i];
      const gi = clippedSum(a, g, s, one);
      for (let x = 0; x < 30; x++) total[x] += gi[x];
    }
    const got = clippedSum(a, g, s, f);
    for (let x = 0; x < 30; x++) expect(got[x]).toBeCloseTo(total[x], 5);
  });

  it('async variant matches the sync one', async () => {
    const rand = rng(12);
    const s: GradShape = { batch: 6, seq: 10, inDim: 24, outDim: 8 };
    const a = randomF32(rand, 6 * 10 * 24);
    const g = randomF32(rand, 6 * 10 * 8);
    const f = new Float32Array(6).map(() => rand());
    const sync = clippedSum(a, g, s, f);
    const got = await clippedSumAsync(a, g, s, f);
    expect(Array.from(got)).toEqual(Array.from(sync));
    const out = sync.slice();
    await clippedSumAsync(a, g, s, f, out, { accumulate: true });
    for (let x = 0; x < out.length; x++) expect(out[x]).toBeCloseTo(2 * sync[x], 5);
  });
});

describe('clipFactors', () => {
  it('computes min(1, C/(norm + 1e-6)) rounded down, with counts', () => {
    const n2 = new Float64Array([
      0,
      0.25,
      1,
      4,
      100,
      1e30,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      -1,
      Number.NEGATIVE_INFINITY,
    ]);
    const r = clipFactors(n2, 1.5);
    expect(Object.prototype.toString.call(r.factors)).toBe('[object Float32Array]'); // created in another realm
    expect(r.factors.length).toBe(n2.length);
    for (let i = 0; i < n2.length; i++) {
      const want = refClipFactor(n2[i], 1.5);
      expect(r.factors[i]).toBeLessThanOrEqual(want);
      expect(r.factors[i]).toBeCloseTo(want, 6);
      if (Number.isFinite(n2[i]) && n2[i] >= 0)
        expect(r.factors[i] * Math.sqrt(n2[i])).toBeLessThanOrEqual(1.5);
    }
    expect(r.clipped).toBe(3); // 4, 100, 1e30
    expect(r.nonfinite).toBe(4);
    expect(Array.from(r.factors.slice(6))).toEqual([0, 0, 0, 0]);
    const out = new Float32Array(n2.length);
    expect(clipFactors(n2, 1.5, out).factors).toBe(out);
  });

  it('factor * norm never exceeds C on random norms', () => {
    const rand = rng(99);
    const n2 = new Float64Array(2000).map(() => 10 ** (8 * rand() - 4));
    for (const c of [0.1, 1, 3.7]) {
      const { factors } = clipFactors(n2, c);
      for (let i = 0; i < n2.length; i++)
        expect(factors[i] * Math.sqrt(n2[i])).toBeLessThanOrEqual(c);
    }
  });
});

describe('clipRows', () => {
  it('clips rows in place under every ISA, zeroing non-finite rows', () => {
    forEachConfig(() => {
      const rand = rng(31);
      const B = 6;
      const D = 37;
      const x = offsetView(randomF32(rand, B * D), 1);
      for (let j = 0; j < D; j++) x[2 * D + j] *= 0.01;
      x[3 * D + 4] = Number.NaN;
      x[5 * D] = Number.NEGATIVE_INFINITY;
      const orig = x.slice();
      const r = clipRows(x, B, D, 1);
      expect(r.nonfinite).toBe(2);
      expect(r.clipped).toBe(3);
      for (let i = 0; i < B; i++) {
        let s = 0;
        let s0 = 0;
        for (let j = 0; j < D; j++) {
          s += x[i * D + j] ** 2;
          s0 += orig[i * D + j] ** 2;
        }
        if (i === 3 || i === 5) {
          expect(s).toBe(0);
          expect(r.factors[i]).toBe(0);
        } else if (i === 2) {
          expect(r.factors[i]).toBe(1);
          expect(Array.from(x.subarray(i * D, (i + 1) * D))).toEqual(
            Array.from(orig.subarray(i * D, (i + 1) * D)),
          );
        } else {
          expect(Math.sqrt(s)).toBeCloseTo(1, 5);
          expect(r.factors[i]).toBeCloseTo(refClipFactor(s0, 1), 6);
        }
      }
    });
  });

  it('handles empty input', () => {
    expect(clipRows(new Float32Array(0), 0, 5, 1).factors.length).toBe(0);
    expect(clipRows(new Float32Array(0), 3, 0, 1).clipped).toBe(0);
  });
});
