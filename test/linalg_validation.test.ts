import {
  clipFactors,
  clipRows,
  clippedSum,
  clippedSumAsync,
  perSampleGradNormSq,
  perSampleGradNormSqAsync,
  sgemm,
  sgemmAsync,
} from '../lib/api/kernels';
import { expectError, expectRejection } from './helpers/errors';

const f32 = (n: number) => new Float32Array(n);
const shape = { batch: 2, seq: 3, inDim: 4, outDim: 5 };
const A = f32(24);
const G = f32(30);

describe('linalg argument validation', () => {
  it('sgemm', () => {
    const o = { m: 2, n: 3, k: 4 };
    expectError(
      () => sgemm(new Float64Array(8) as any, f32(12), f32(6), o),
      'InvalidArgumentError',
      /^a must be a Float32Array/,
    );
    expectError(() => sgemm([1, 2] as any, f32(12), f32(6), o), 'InvalidArgumentError', /^a /);
    expectError(() => sgemm(f32(8), 'x' as any, f32(6), o), 'InvalidArgumentError', /^b /);
    expectError(
      () => sgemm(f32(8), f32(12), new Int32Array(6) as any, o),
      'InvalidArgumentError',
      /^c /,
    );
    expectError(
      () => sgemm(f32(8), f32(12), f32(6), undefined as any),
      'InvalidArgumentError',
      /opts/,
    );
    expectError(
      () => sgemm(f32(8), f32(12), f32(6), { n: 3, k: 4 } as any),
      'InvalidArgumentError',
      /^m /,
    );
    expectError(
      () => sgemm(f32(8), f32(12), f32(6), { ...o, m: -1 }),
      'InvalidArgumentError',
      /^m /,
    );
    expectError(
      () => sgemm(f32(8), f32(12), f32(6), { ...o, n: 1.5 }),
      'InvalidArgumentError',
      /^n /,
    );
    expectError(
      () => sgemm(f32(8), f32(12), f32(6), { ...o, k: Infinity }),
      'InvalidArgumentError',
      /^k /,
    );
    expectError(
      () => sgemm(f32(8), f32(12), f32(6), { ...o, transA: 1 as any }),
      'InvalidArgumentError',
      /transA/,
    );
    expectError(
      () => sgemm(f32(8), f32(12), f32(6), { ...o, transB: 'yes' as any }),
      'InvalidArgumentError',
      /transB/,
    );
    expectError(
      () => sgemm(f32(8), f32(12), f32(6), { ...o, alpha: NaN }),
      'InvalidArgumentError',
      /alpha/,
    );
    expectError(
      () => sgemm(f32(8), f32(12), f32(6), { ...o, alpha: 1e39 }),
      'InvalidArgumentError',
      /alpha/,
    );
    expectError(
      () => sgemm(f32(8), f32(12), f32(6), { ...o, beta: '1' as any }),
      'InvalidArgumentError',
      /beta/,
    );
    expectError(
      () => sgemm(f32(8), f32(12), f32(6), { ...o, lda: 3 }),
      'InvalidArgumentError',
      /lda/,
    );
    expectError(
      () => sgemm(f32(8), f32(12), f32(6), { ...o, ldb: 2 }),
      'InvalidArgumentError',
      /ldb/,
    );
    expectError(
      () => sgemm(f32(8), f32(12), f32(6), { ...o, ldc: 0 }),
      'InvalidArgumentError',
      /ldc/,
    );
    expectError(
      () => sgemm(f32(8), f32(12), f32(6), { ...o, transA: true, lda: 1 }),
      'InvalidArgumentError',
      /lda/,
    );
    expectError(() => sgemm(f32(7), f32(12), f32(6), o), 'InvalidArgumentError', /^a has length 7/);
    expectError(() => sgemm(f32(8), f32(11), f32(6), o), 'InvalidArgumentError', /^b /);
    expectError(() => sgemm(f32(8), f32(12), f32(5), o), 'InvalidArgumentError', /^c /);
    expectError(
      () => sgemm(f32(8), f32(12), f32(6), { ...o, lda: 5 }),
      'InvalidArgumentError',
      /^a has length 8/,
    );
    const buf = f32(20);
    expectError(
      () => sgemm(buf.subarray(0, 8), f32(12), buf.subarray(4, 10), o),
      'InvalidArgumentError',
      /c must not share memory with a/,
    );
    expectError(
      () => sgemm(f32(8), buf.subarray(0, 12), buf.subarray(11, 17), o),
      'InvalidArgumentError',
      /c must not share memory with b/,
    );
    expectError(
      () => sgemm(f32(8), f32(12), f32(6), { ...o, m: 2 ** 60 }),
      'InvalidArgumentError',
      /^m /,
    );
    expectError(
      () => sgemm(f32(8), f32(12), f32(6), { m: 2 ** 40, n: 2 ** 40, k: 1 }),
      'InvalidArgumentError',
      /size overflows|^a has length/,
    );
    // Larger-than-needed arrays are accepted (extra elements are untouched).
    const c = f32(7).fill(9);
    sgemm(f32(8).fill(1), f32(12).fill(1), c, o);
    expect(Array.from(c)).toEqual([4, 4, 4, 4, 4, 4, 9]);
  });

  it('perSampleGradNormSq', () => {
    expectError(
      () => perSampleGradNormSq(new Float64Array(24) as any, G, shape),
      'InvalidArgumentError',
      /^a /,
    );
    expectError(() => perSampleGradNormSq(A, null as any, shape), 'InvalidArgumentError', /^g /);
    expectError(() => perSampleGradNormSq(A, G, null as any), 'InvalidArgumentError', /shape/);
    expectError(
      () => perSampleGradNormSq(A, G, [2, 3, 4, 5] as any),
      'InvalidArgumentError',
      /shape/,
    );
    expectError(
      () => perSampleGradNormSq(A, G, { ...shape, batch: 1.5 }),
      'InvalidArgumentError',
      /batch/,
    );
    expectError(
      () => perSampleGradNormSq(A, G, { ...shape, seq: -1 }),
      'InvalidArgumentError',
      /seq/,
    );
    expectError(
      () => perSampleGradNormSq(A, G, { ...shape, inDim: '4' as any }),
      'InvalidArgumentError',
      /inDim/,
    );
    expectError(
      () => perSampleGradNormSq(A, G, { ...shape, outDim: undefined as any }),
      'InvalidArgumentError',
      /outDim/,
    );
    expectError(
      () => perSampleGradNormSq(A, G, { ...shape, method: 'fast' as any }),
      'InvalidArgumentError',
      /method/,
    );
    expectError(
      () => perSampleGradNormSq(A, G, { ...shape, method: 1 as any }),
      'InvalidArgumentError',
      /method/,
    );
    expectError(
      () => perSampleGradNormSq(f32(23), G, shape),
      'InvalidArgumentError',
      /^a has length 23 but the shape needs 24/,
    );
    expectError(
      () => perSampleGradNormSq(A, f32(31), shape),
      'InvalidArgumentError',
      /^g has length 31/,
    );
    expectError(
      () => perSampleGradNormSq(A, G, shape, new Float64Array(3)),
      'InvalidArgumentError',
      /^out /,
    );
    expectError(
      () => perSampleGradNormSq(A, G, shape, f32(2) as any),
      'InvalidArgumentError',
      /^out /,
    );
    expectError(
      () => perSampleGradNormSq(A, G, { ...shape, batch: 2 ** 30, seq: 2 ** 30 }),
      'InvalidArgumentError',
      /size overflows|^a has length/,
    );
    const shared = new Float64Array(13);
    const a = new Float32Array(shared.buffer, 0, 24);
    expectError(
      () => perSampleGradNormSq(a, G, shape, shared.subarray(11, 13)),
      'InvalidArgumentError',
      /out must not share memory with a/,
    );
  });

  it('clippedSum', () => {
    const f = new Float32Array([1, 0.5]);
    expectError(() => clippedSum(A, G, shape, [1, 1] as any), 'InvalidArgumentError', /factors/);
    expectError(
      () => clippedSum(A, G, shape, f32(3)),
      'InvalidArgumentError',
      /^factors has length 3/,
    );
    expectError(
      () => clippedSum(A, G, shape, new Float32Array([1, NaN])),
      'InvalidArgumentError',
      /factors\[1\] must be finite/,
    );
    expectError(
      () => clippedSum(A, G, shape, new Float32Array([Infinity, 1])),
      'InvalidArgumentError',
      /factors\[0\]/,
    );
    expectError(() => clippedSum(A, f32(29), shape, f), 'InvalidArgumentError', /^g /);
    expectError(
      () => clippedSum(A, G, { ...shape, outDim: -5 }, f),
      'InvalidArgumentError',
      /outDim/,
    );
    expectError(
      () => clippedSum(A, G, shape, f, f32(19)),
      'InvalidArgumentError',
      /^out has length 19 but the shape needs 20/,
    );
    expectError(
      () => clippedSum(A, G, shape, f, new Float64Array(20) as any),
      'InvalidArgumentError',
      /^out /,
    );
    expectError(
      () => clippedSum(A, G, shape, f, undefined, { accumulate: true }),
      'InvalidArgumentError',
      /out is required/,
    );
    expectError(
      () => clippedSum(A, G, shape, f, f32(20), { accumulate: 1 as any }),
      'InvalidArgumentError',
      /accumulate/,
    );
    expectError(
      () => clippedSum(A, G, shape, f, f32(20), 5 as any),
      'InvalidArgumentError',
      /opts/,
    );
    const buf = f32(60);
    expectError(
      () => clippedSum(buf.subarray(0, 24), G, shape, f, buf.subarray(20, 40)),
      'InvalidArgumentError',
      /out must not share memory with a/,
    );
  });

  it('clipFactors and clipRows', () => {
    const n2 = new Float64Array([1, 2]);
    expectError(() => clipFactors(f32(2) as any, 1), 'InvalidArgumentError', /normsSq/);
    for (const bad of [0, -1, NaN, Infinity])
      expectError(() => clipFactors(n2, bad), 'InvalidArgumentError', /maxNorm/);
    expectError(() => clipFactors(n2, '1' as any), 'InvalidArgumentError', /maxNorm/);
    expectError(() => clipFactors(n2, 1, f32(3)), 'InvalidArgumentError', /^out /);
    expectError(
      () => clipFactors(n2, 1, new Float64Array(2) as any),
      'InvalidArgumentError',
      /^out /,
    );
    expectError(() => clipRows(new Float64Array(4) as any, 2, 2, 1), 'InvalidArgumentError', /^x /);
    expectError(() => clipRows(f32(4), 2.5, 2, 1), 'InvalidArgumentError', /batch/);
    expectError(() => clipRows(f32(4), 2, -2, 1), 'InvalidArgumentError', /dim/);
    expectError(
      () => clipRows(f32(4), 2, 3, 1),
      'InvalidArgumentError',
      /^x has length 4 but the shape needs 6/,
    );
    expectError(() => clipRows(f32(4), 2, 2, 0), 'InvalidArgumentError', /maxNorm/);
    expectError(() => clipRows(f32(4), 2, 2, undefined as any), 'InvalidArgumentError', /maxNorm/);
  });

  it('checks lengths after every getter ran (a getter that detaches an input cannot cause a bad read)', () => {
    const detach = (x: Float32Array) =>
      structuredClone(x.buffer, { transfer: [x.buffer as ArrayBuffer] });
    const a = f32(24);
    const shapeA = {
      batch: 2,
      seq: 3,
      inDim: 4,
      get outDim() {
        detach(a);
        return 5;
      },
    };
    expectError(() => perSampleGradNormSq(a, G, shapeA), 'InvalidArgumentError', /^a has length 0/);
    const g = f32(30);
    const opts = {
      get accumulate() {
        detach(g);
        return true;
      },
    };
    expectError(
      () => clippedSum(A, g, shape, new Float32Array([1, 1]), f32(20), opts),
      'InvalidArgumentError',
      /^g has length 0/,
    );
    const b = f32(12);
    const o = {
      m: 2,
      n: 3,
      k: 4,
      get ldc() {
        detach(b);
        return 3;
      },
    };
    expectError(() => sgemm(f32(8), b, f32(6), o), 'InvalidArgumentError', /^b has length 0/);
  });

  it('accepts SharedArrayBuffer views and still detects overlap in them', () => {
    const sab = new SharedArrayBuffer(4 * 32);
    const a = new Float32Array(sab, 0, 8).fill(1);
    const b = new Float32Array(sab, 32, 12).fill(1);
    const c = new Float32Array(sab, 80, 6);
    sgemm(a, b, c, { m: 2, n: 3, k: 4 });
    expect(Array.from(c)).toEqual([4, 4, 4, 4, 4, 4]);
    expectError(
      () => sgemm(a, b, new Float32Array(sab, 60, 6), { m: 2, n: 3, k: 4 }),
      'InvalidArgumentError',
      /c must not share memory with b/,
    );
  });

  it('async variants reject (never throw synchronously) with the same errors', async () => {
    await expectRejection(
      sgemmAsync(f32(7), f32(12), f32(6), { m: 2, n: 3, k: 4 }),
      'InvalidArgumentError',
      /^a has length/,
    );
    await expectRejection(
      sgemmAsync(f32(8), f32(12), f32(6), null as any),
      'InvalidArgumentError',
      /opts/,
    );
    await expectRejection(
      perSampleGradNormSqAsync(A, G, { ...shape, method: 'x' as any }),
      'InvalidArgumentError',
      /method/,
    );
    await expectRejection(
      perSampleGradNormSqAsync(f32(1), G, shape),
      'InvalidArgumentError',
      /^a /,
    );
    await expectRejection(clippedSumAsync(A, G, shape, f32(1)), 'InvalidArgumentError', /factors/);
  });
});
