import { perSampleGradNormSq, perSampleGradNormSqAsync } from '../lib/api/kernels';
import type { GradShape, NormMethod } from '../lib/api/kernels';
import { forEachConfig } from './reference/linalg_configs';
import { offsetView, randomF32, refBoundSq, refNormSq, rng } from './reference/linalg_ref';

const SHAPES: GradShape[] = [
  { batch: 0, seq: 3, inDim: 4, outDim: 5 },
  { batch: 2, seq: 0, inDim: 4, outDim: 5 },
  { batch: 2, seq: 3, inDim: 0, outDim: 5 },
  { batch: 2, seq: 3, inDim: 4, outDim: 0 },
  { batch: 1, seq: 1, inDim: 1, outDim: 1 },
  { batch: 3, seq: 1, inDim: 13, outDim: 7 },
  { batch: 2, seq: 2, inDim: 1, outDim: 1 },
  { batch: 3, seq: 5, inDim: 9, outDim: 3 },
  { batch: 2, seq: 7, inDim: 17, outDim: 9 },
  { batch: 3, seq: 16, inDim: 33, outDim: 8 },
  { batch: 2, seq: 9, inDim: 8, outDim: 41 },
  { batch: 2, seq: 30, inDim: 70, outDim: 13 },
];

/** Token pairs with equal a and nearly opposite g: G_i is ~1e-3 of the terms. */
function cancelling(a: Float32Array, g: Float32Array, s: GradShape): void {
  const { batch: B, seq: T, inDim: d, outDim: p } = s;
  for (let i = 0; i < B; i++) {
    for (let t = 0; t + 1 < T; t += 2) {
      for (let k = 0; k < d; k++) a[(i * T + t + 1) * d + k] = a[(i * T + t) * d + k];
      for (let j = 0; j < p; j++)
        g[(i * T + t + 1) * p + j] = -g[(i * T + t) * p + j] * (1 - 2 ** -10);
    }
  }
}

function inputs(s: GradShape, rand: () => number, adversarial: boolean) {
  const a = randomF32(rand, s.batch * s.seq * s.inDim);
  const g = randomF32(rand, s.batch * s.seq * s.outDim);
  if (adversarial) cancelling(a, g, s);
  return { a: offsetView(a, 1), g: offsetView(g, 3) };
}

describe('perSampleGradNormSq', () => {
  it('direct, ghost and auto match the reference; direct and ghost agree to 1e-5 even on cancelling tokens', () => {
    forEachConfig((isa) => {
      const rand = rng(42);
      for (const s of SHAPES) {
        for (const adversarial of [false, true]) {
          const { a, g } = inputs(s, rand, adversarial);
          const ref = refNormSq(a, g, s);
          const bound = refBoundSq(a, g, s);
          const got: Record<string, Float64Array> = {};
          for (const method of ['direct', 'ghost', 'auto', 'bound'] as NormMethod[]) {
            got[method] = perSampleGradNormSq(a, g, { ...s, method });
            expect(got[method].length).toBe(s.batch);
          }
          for (let i = 0; i < s.batch; i++) {
            const what = `${isa} ${JSON.stringify(s)} adv=${adversarial} i=${i}`;
            // The reference is itself float64; allow its rounding (~eps * bound).
            const tol = 1e-9 * ref[i] + 1e-13 * bound[i];
            for (const m of ['direct', 'ghost', 'auto']) {
              if (!(Math.abs(got[m][i] - ref[i]) <= tol))
                throw new Error(`${m} ${what}: ${got[m][i]} vs ${ref[i]}`);
            }
            expect(Math.abs(got.direct[i] - got.ghost[i])).toBeLessThanOrEqual(
              1e-5 * Math.max(got.direct[i], 1e-300) + 1e-13 * bound[i],
            );
            expect(got.bound[i]).toBeCloseTo(bound[i], 6);
            expect(ref[i]).toBeLessThanOrEqual(got.bound[i] * (1 + 1e-12));
          }
        }
      }
    });
  });

  it('exact cancellation gives zero (up to rounding) and T = 1 is |a|^2 |g|^2', () => {
    const s: GradShape = { batch: 1, seq: 2, inDim: 5, outDim: 3 };
    const a = new Float32Array([1, 2, 3, 4, 5, 1, 2, 3, 4, 5]);
    const g = new Float32Array([0.5, -1, 2, -0.5, 1, -2]);
    for (const method of ['direct', 'ghost'] as NormMethod[]) {
      expect(perSampleGradNormSq(a, g, { ...s, method })[0]).toBe(0);
    }
    const a1 = new Float32Array([3, 4]);
    const g1 = new Float32Array([1, 2, 2]);
    for (const method of ['direct', 'ghost', 'auto', 'bound'] as NormMethod[]) {
      expect(
        perSampleGradNormSq(a1, g1, { batch: 1, seq: 1, inDim: 2, outDim: 3, method })[0],
      ).toBe(225);
    }
  });

  it('writes into out, and NaN/Inf inputs give a non-finite norm for that sample only', () => {
    const rand = rng(3);
    const s: GradShape = { batch: 3, seq: 4, inDim: 10, outDim: 6 };
    const a = randomF32(rand, 3 * 4 * 10);
    const g = randomF32(rand, 3 * 4 * 6);
    a[1 * 40 + 7] = Number.NaN;
    g[2 * 24 + 5] = Number.POSITIVE_INFINITY;
    const ref = refNormSq(a, g, s);
    for (const method of ['direct', 'ghost', 'bound'] as NormMethod[]) {
      const out = new Float64Array(3);
      expect(perSampleGradNormSq(a, g, { ...s, method }, out)).toBe(out);
      expect(Number.isFinite(out[0])).toBe(true);
      expect(Number.isFinite(out[1])).toBe(false);
      expect(Number.isFinite(out[2])).toBe(false);
      if (method !== 'bound') expect(out[0]).toBeCloseTo(ref[0], 8);
    }
  });

  it('auto gives the exact norm for short (ghost-cheaper) and long (direct-cheaper) sequences', () => {
    const rand = rng(8);
    for (const s of [
      { batch: 2, seq: 2, inDim: 64, outDim: 64 },
      { batch: 2, seq: 40, inDim: 16, outDim: 4 },
    ]) {
      const a = randomF32(rand, s.batch * s.seq * s.inDim);
      const g = randomF32(rand, s.batch * s.seq * s.outDim);
      const ref = refNormSq(a, g, s);
      const got = perSampleGradNormSq(a, g, s);
      for (let i = 0; i < s.batch; i++) expect(got[i]).toBeCloseTo(ref[i], 6);
    }
  });

  it('async variant matches the sync one', async () => {
    const rand = rng(11);
    const s = { batch: 5, seq: 12, inDim: 20, outDim: 7, method: 'direct' as const };
    const a = randomF32(rand, 5 * 12 * 20);
    const g = randomF32(rand, 5 * 12 * 7);
    const sync = perSampleGradNormSq(a, g, s);
    const out = new Float64Array(5);
    const got = await perSampleGradNormSqAsync(a, g, s, out);
    expect(got).toBe(out);
    expect(Array.from(got)).toEqual(Array.from(sync));
    expect(Array.from(await perSampleGradNormSqAsync(a, g, { ...s, method: 'ghost' }))).toEqual(
      Array.from(perSampleGradNormSq(a, g, { ...s, method: 'ghost' })),
    );
  });
});
