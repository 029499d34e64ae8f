/**
 * Exact discrete Gaussian N_Z(0, sigma^2): chi-square goodness of fit
 * against the exact pmf, the published variances (Canonne, Kamath, Steinke
 * 2020; written in the test), determinism, and overflow refusal.
 *
 * Seeds are fixed (deterministic tests); thresholds are set for a
 * false-alarm rate of 1e-4 per check under a random seed.
 */
import { Rng, sigmaSqRational } from '../lib/kernels/rng';
import { expectError } from './helpers/errors';
import { chiSquareCritical } from './helpers/stats';

const SEED = '3c'.repeat(32);
const Z_1E4 = 3.719; // upper normal quantile for alpha = 1e-4

/** Exact pmf on [-L, L] (normalized; mass beyond L is below 1e-30 for L = 12 sigma + 10). */
function pmf(sigmaSq: number): { lo: number; p: Float64Array } {
  const L = Math.ceil(12 * Math.sqrt(sigmaSq)) + 10;
  const p = new Float64Array(2 * L + 1);
  let z = 0;
  for (let x = -L; x <= L; x++) {
    const v = Math.exp(-(x * x) / (2 * sigmaSq));
    p[x + L] = v;
    z += v;
  }
  for (let i = 0; i < p.length; i++) p[i] /= z;
  return { lo: -L, p };
}

/** Moments of the exact pmf. */
function exactMoments(sigmaSq: number): { variance: number; m4: number } {
  const { lo, p } = pmf(sigmaSq);
  let v = 0;
  let m4 = 0;
  for (let i = 0; i < p.length; i++) {
    const x = lo + i;
    v += p[i] * x * x;
    m4 += p[i] * x ** 4;
  }
  return { variance: v, m4 };
}

/**
 * Chi-square statistic with bins of expected count >= 20: consecutive
 * integers are merged from the left until a bin reaches the target mass;
 * the tails merge into the outermost bins.
 */
function chiSquare(samples: Int32Array, sigmaSq: number): { stat: number; dof: number } {
  const n = samples.length;
  const { lo, p } = pmf(sigmaSq);
  const target = Math.max(20 / n, 1 / 200); // at most ~200 bins
  const edges: number[] = []; // bin k covers indices [edges[k], edges[k+1])
  let acc = 0;
  edges.push(0);
  for (let i = 0; i < p.length; i++) {
    acc += p[i];
    if (acc >= target) {
      edges.push(i + 1);
      acc = 0;
    }
  }
  if (edges[edges.length - 1] !== p.length) {
    if (edges.length > 1)
      edges[edges.length - 1] = p.length; // merge the right tail into the last bin
    else edges.push(p.length);
  }
  const nb = edges.length - 1;
  const binOf = new Int32Array(p.length);
  const expected = new Float64Array(nb);
  for (let k = 0; k < nb; k++) {
    for (let i = edges[k]; i < edges[k + 1]; i++) {
      binOf[i] = k;
      expected[k] += p[i] * n;
    }
  }
  const observed = new Float64Array(nb);
  for (let j = 0; j < n; j++) {
    const i = samples[j] - lo;
    if (i < 0 || i >= p.length) throw new Error(`sample ${samples[j]} outside the support table`);
    observed[binOf[i]]++;
  }
  let stat = 0;
  for (let k = 0; k < nb; k++) stat += (observed[k] - expected[k]) ** 2 / expected[k];
  return { stat, dof: nb - 1 };
}

describe('Rng.discreteGaussian', () => {
  for (const sigma of [0.5, 1, 3, 100, 2 ** 16]) {
    test(`chi-square against the exact pmf, sigma = ${sigma}`, () => {
      const n = 100_000;
      const out = new Rng({ seed: SEED }).discreteGaussian(new Int32Array(n), sigma * sigma);
      const { stat, dof } = chiSquare(out, sigma * sigma);
      expect(dof).toBeGreaterThanOrEqual(2);
      expect(stat).toBeLessThan(chiSquareCritical(dof, Z_1E4));
    });
  }

  // sigma^2 = 2^32 + 1: the acceptance exponent's denominator 2a = 2^33 + 2 is not a power of two;
  // sigma^2 = 10^6 + 1/3: denominator 2a = 6000002 with b = 3; sigma^2 = (2^64 - 1) / 2^62 (just
  // under 4): denominator 2^64 - 1, above the 2^40 of the one-uniform read, so Algorithm 1 runs trial
  // by trial on fresh uniforms (this sigma^2 overflowed the previous sampler's 2 a b t^2).
  for (const sigmaSq of [
    { num: 2n ** 32n + 1n, den: 1n },
    { num: 3000001n, den: 3n },
    { num: 2n ** 64n - 1n, den: 2n ** 62n },
  ]) {
    test(`chi-square against the exact pmf, sigma^2 = ${sigmaSq.num}/${sigmaSq.den}`, () => {
      const n = 100_000;
      const s2 = Number(sigmaSq.num) / Number(sigmaSq.den);
      const out = new Rng({ seed: SEED }).discreteGaussian(new Int32Array(n), sigmaSq);
      const { stat, dof } = chiSquare(out, s2);
      expect(dof).toBeGreaterThanOrEqual(2);
      expect(stat).toBeLessThan(chiSquareCritical(dof, Z_1E4));
    });
  }

  test('chi-square rejects a wrong sigma (the test can fail)', () => {
    const n = 100_000;
    const out = new Rng({ seed: SEED }).discreteGaussian(new Int32Array(n), 1.05 * 1.05);
    const { stat, dof } = chiSquare(out, 1);
    expect(stat).toBeGreaterThan(chiSquareCritical(dof, Z_1E4));
  });

  test('variance matches the published values (sigma^2 = 0.5 and 1)', () => {
    for (const [sigmaSq, published] of [
      [0.5, 0.49897913083282],
      [1, 0.999999788767728],
    ]) {
      const exact = exactMoments(sigmaSq);
      expect(Math.abs(exact.variance - published)).toBeLessThan(1e-12); // our pmf table agrees
      const n = 400_000;
      const out = new Rng({ seed: SEED }).discreteGaussian(new Int32Array(n), sigmaSq);
      let s2 = 0;
      for (let i = 0; i < n; i++) s2 += out[i] * out[i];
      const varHat = s2 / n; // the mean is exactly 0
      const se = Math.sqrt((exact.m4 - published ** 2) / n);
      expect(Math.abs(varHat - published)).toBeLessThan(5 * se); // two-sided, alpha ~ 6e-7
    }
  });

  test('rational sigma^2, Int32Array and BigInt64Array agree, state continues', () => {
    const a = new Rng({ seed: SEED });
    const x = a.discreteGaussian(new Int32Array(1000), { num: 9n, den: 4n });
    const b = new Rng({ seed: SEED });
    const y = b.discreteGaussian(new BigInt64Array(1000), 2.25);
    expect(Array.from(y, Number)).toEqual(Array.from(x));
    expect(a.getState().position).toBe(b.getState().position);
    const c = Rng.fromState(a.getState());
    expect(Array.from(c.discreteGaussian(new Int32Array(50), 2.25))).toEqual(
      Array.from(a.discreteGaussian(new Int32Array(50), 2.25)),
    );
    // Mean zero and symmetric: samples are integers.
    expect(x.every((v) => Number.isInteger(v))).toBe(true);
  });

  test('numbers are taken as exact binary rationals', () => {
    expect(sigmaSqRational(0.5)).toEqual({ num: 1n, den: 2n });
    expect(sigmaSqRational(3)).toEqual({ num: 3n, den: 1n });
    expect(sigmaSqRational(0.1)).toEqual({ num: 0xccccccccccccdn, den: 2n ** 55n });
    expect(sigmaSqRational({ num: 6n, den: 4n })).toEqual({ num: 3n, den: 2n });
  });

  test('refuses what would overflow the output or 64-bit num/den', () => {
    const rng = new Rng({ seed: SEED });
    // Too fine a binary fraction or too large a value for 64-bit num/den.
    expectError(
      () => rng.discreteGaussian(new Int32Array(4), 1e-300),
      'InvalidArgumentError',
      /2\^64/,
    );
    expectError(
      () => rng.discreteGaussian(new Int32Array(4), 2 ** 70),
      'InvalidArgumentError',
      /2\^64/,
    );
    // Samples beyond int32 for an Int32Array.
    expectError(
      () => rng.discreteGaussian(new Int32Array(64), 2 ** 62),
      'InvalidArgumentError',
      /Int32Array|overflow/,
    );
    expect(rng.getState().position).toBe('0'); // failures do not advance the stream
  });

  test('validation', () => {
    const rng = new Rng({ seed: SEED });
    expectError(
      () => rng.discreteGaussian(new Float32Array(4) as unknown as Int32Array, 1),
      'InvalidArgumentError',
      /out/,
    );
    expectError(
      () => rng.discreteGaussian(new Int32Array(4), 0),
      'InvalidArgumentError',
      /sigmaSq/,
    );
    expectError(
      () => rng.discreteGaussian(new Int32Array(4), -1),
      'InvalidArgumentError',
      /sigmaSq/,
    );
    expectError(
      () => rng.discreteGaussian(new Int32Array(4), NaN),
      'InvalidArgumentError',
      /sigmaSq/,
    );
    expectError(
      () => rng.discreteGaussian(new Int32Array(4), Infinity),
      'InvalidArgumentError',
      /sigmaSq/,
    );
    expectError(
      () => rng.discreteGaussian(new Int32Array(4), '1' as unknown as number),
      'InvalidArgumentError',
      /sigmaSq/,
    );
    expectError(
      () => rng.discreteGaussian(new Int32Array(4), { num: 0n, den: 1n }),
      'InvalidArgumentError',
      /sigmaSq/,
    );
    expectError(
      () => rng.discreteGaussian(new Int32Array(4), { num: 1, den: 1 } as never),
      'InvalidArgumentError',
      /sigmaSq/,
    );
  });
});
