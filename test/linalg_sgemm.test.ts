import { sgemm, sgemmAsync } from '../lib/api/kernels';
import type { SgemmOptions } from '../lib/api/kernels';
import { forEachConfig } from './reference/linalg_configs';
import { offsetView, randomF32, refSgemm, rng } from './reference/linalg_ref';

const EPS = 2 ** -24;

function stored(o: SgemmOptions) {
  const ta = o.transA ?? false;
  const tb = o.transB ?? false;
  const ra = ta ? o.k : o.m;
  const wa = ta ? o.m : o.k;
  const rb = tb ? o.n : o.k;
  const wb = tb ? o.k : o.n;
  const lda = o.lda ?? wa;
  const ldb = o.ldb ?? wb;
  const ldc = o.ldc ?? o.n;
  const span = (r: number, w: number, ld: number) => (r === 0 || w === 0 ? 0 : (r - 1) * ld + w);
  return { a: span(ra, wa, lda), b: span(rb, wb, ldb), c: span(o.m, o.n, ldc) };
}

interface GemmCase {
  o: SgemmOptions;
  a: Float32Array;
  b: Float32Array;
  c0: Float32Array;
  ref: { c: Float64Array; scale: Float64Array };
}

/** Inputs (views at the given element offsets) and the float64 reference, computed once. */
function makeCase(o: SgemmOptions, rand: () => number, offsets = [0, 0, 0]): GemmCase {
  const len = stored(o);
  const a = offsetView(randomF32(rand, len.a), offsets[0]);
  const b = offsetView(randomF32(rand, len.b), offsets[1]);
  const c0 = offsetView(randomF32(rand, len.c), offsets[2]);
  if ((o.beta ?? 0) === 0) c0.fill(Number.NaN); // write-only: NaN must not survive
  return { o, a, b, c0, ref: refSgemm(a, b, c0, o) };
}

/** Runs sgemm on a copy of the case's C (same byteOffset) and checks it. */
function check(cs: GemmCase, what: string): Float32Array {
  const { o, ref } = cs;
  const c = offsetView(cs.c0, cs.c0.byteOffset / 4);
  const got = sgemm(cs.a, cs.b, c, o);
  expect(got).toBe(c);
  const ldc = o.ldc ?? o.n;
  for (let i = 0; i < o.m; i++) {
    for (let j = 0; j < o.n; j++) {
      const x = i * ldc + j;
      const tol = (o.k + 4) * EPS * ref.scale[x] + 1e-30;
      if (!(Math.abs(got[x] - ref.c[x]) <= tol)) {
        throw new Error(
          `sgemm ${what} ${JSON.stringify(o)} at (${i},${j}): ${got[x]} vs ${ref.c[x]}`,
        );
      }
    }
  }
  return got;
}

describe('sgemm', () => {
  it('matches the reference for all shapes, transposes, alpha/beta, strides, ISAs and thread counts', () => {
    const shapes: [number, number, number][] = [
      [0, 0, 0],
      [0, 5, 3],
      [4, 0, 3],
      [3, 4, 0],
      [1, 1, 1],
      [1, 9, 1],
      [7, 1, 3],
      [2, 3, 1],
      [5, 17, 9],
      [6, 16, 8],
      [12, 32, 5],
      [13, 33, 31],
      [31, 47, 70],
      [65, 18, 257],
      [25, 100, 40],
      [70, 90, 50],
    ];
    const rand = rng(1234);
    const cases: GemmCase[] = [];
    for (const [m, n, k] of shapes) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          cases.push(makeCase({ m, n, k, transA, transB }, rand, [1, 3, 5]));
          cases.push(makeCase({ m, n, k, transA, transB, alpha: -0.5, beta: 0.25 }, rand));
          cases.push(
            makeCase(
              {
                m,
                n,
                k,
                transA,
                transB,
                alpha: 2,
                beta: 1,
                lda: (transA ? m : k) + 3,
                ldb: (transB ? k : n) + 1,
                ldc: n + 2,
              },
              rand,
              [7, 0, 1],
            ),
          );
        }
      }
    }
    forEachConfig((isa, threads) => {
      for (const cs of cases) check(cs, `${isa} x${threads}`);
    });
  });

  it('matches the reference on narrow products (LoRA ranks: the skinny path) with odd sizes and offsets', () => {
    // n <= 16 output columns, k >= 16 and m >= 4 register tiles take the skinny kernel on
    // AVX2 / AVX-512 (scalar: the blocked path); m not a multiple of its row tile (16 / n),
    // k not a multiple of the vector width, 4-byte-aligned views, strided A and C.
    const rand = rng(4321);
    const cases: GemmCase[] = [];
    for (const n of [1, 2, 3, 4, 5, 7, 8, 9, 13, 16]) {
      for (const [m, k] of [
        [49, 16],
        [97, 17],
        [131, 100],
        [53, 771],
      ]) {
        for (const transB of [false, true]) {
          cases.push(makeCase({ m, n, k, transB }, rand, [1, 3, 5]));
          cases.push(makeCase({ m, n, k, transB, alpha: -0.5, beta: 0.25 }, rand, [2, 1, 3]));
          cases.push(
            makeCase(
              {
                m,
                n,
                k,
                transB,
                alpha: 2,
                beta: 1,
                lda: k + 3,
                ldb: (transB ? k : n) + 1,
                ldc: n + 2,
              },
              rand,
              [7, 0, 1],
            ),
          );
        }
      }
    }
    forEachConfig((isa, threads) => {
      for (const cs of cases) check(cs, `narrow ${isa} x${threads}`);
    });
  });

  it('gives bit-identical narrow products with 1 and 2 threads', () => {
    const rand = rng(19);
    for (const n of [1, 3, 8, 16]) {
      const o: SgemmOptions = { m: 1001, n, k: 300, transB: true };
      const a = randomF32(rand, 1001 * 300);
      const b = randomF32(rand, n * 300);
      let first: Float32Array | null = null;
      forEachConfig((_isa, threads) => {
        const c = sgemm(a, b, new Float32Array(1001 * n), o);
        if (threads === 1) first = c;
        else expect(Buffer.from(c.buffer).equals(Buffer.from(first!.buffer))).toBe(true);
      });
    }
  });

  it('leaves the padding between rows of C untouched', () => {
    const rand = rng(5);
    const o: SgemmOptions = { m: 9, n: 13, k: 20, ldc: 17, beta: 0.5 };
    const a = randomF32(rand, 9 * 20);
    const b = randomF32(rand, 20 * 13);
    const c = randomF32(rand, 8 * 17 + 13);
    const before = c.slice();
    sgemm(a, b, c, o);
    for (let i = 0; i < 8; i++)
      for (let j = 13; j < 17; j++) expect(c[i * 17 + j]).toBe(before[i * 17 + j]);
  });

  it('gives bit-identical results with 1 and 2 threads', () => {
    const rand = rng(9);
    const o: SgemmOptions = { m: 150, n: 130, k: 300, transB: true };
    const a = randomF32(rand, 150 * 300);
    const b = randomF32(rand, 130 * 300);
    const results: Float32Array[] = [];
    forEachConfig((_isa, threads) => {
      const c = sgemm(a, b, new Float32Array(150 * 130), o);
      if (threads === 1) results.push(c);
      else
        expect(Buffer.from(c.buffer).equals(Buffer.from(results[results.length - 1].buffer))).toBe(
          true,
        );
    });
  });

  it('propagates NaN from C when beta != 0 and from A', () => {
    const c = new Float32Array([Number.NaN, 1]);
    sgemm(new Float32Array([1]), new Float32Array([1, 1]), c, { m: 1, n: 2, k: 1, beta: 1 });
    expect(Number.isNaN(c[0])).toBe(true);
    expect(c[1]).toBe(2);
    const d = sgemm(new Float32Array([Number.NaN]), new Float32Array([1, 1]), new Float32Array(2), {
      m: 1,
      n: 2,
      k: 1,
    });
    expect(Number.isNaN(d[0]) && Number.isNaN(d[1])).toBe(true);
  });

  it('async variant matches the sync one', async () => {
    const rand = rng(77);
    const o: SgemmOptions = { m: 40, n: 50, k: 60, transA: true, alpha: 0.5 };
    const a = randomF32(rand, 60 * 40);
    const b = randomF32(rand, 60 * 50);
    const sync = sgemm(a, b, new Float32Array(40 * 50), o);
    const c = new Float32Array(40 * 50);
    const got = await sgemmAsync(a, b, c, o);
    expect(got).toBe(c);
    expect(Array.from(got)).toEqual(Array.from(sync));
  });
});
