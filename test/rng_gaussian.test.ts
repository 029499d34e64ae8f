/**
 * Gaussian noise: the float32 Box-Muller against a double-precision
 * TypeScript reference of the same transform (same stream words), moments
 * and Kolmogorov-Smirnov against N(0, 1).
 *
 * The seeds are fixed, so these tests are deterministic; the thresholds are
 * set so that a correct sampler with a random seed would fail them with the
 * stated probability (false-alarm rate), far below 1e-3 per test.
 */
import { Rng } from '../lib/kernels/rng';
import { capabilities, setIsa } from '../lib/native';
import { ksCritical, ksStatistic, meanVar, normalCdf } from './helpers/stats';
import { expectRejection } from './helpers/errors';

const SEED = 'a5'.repeat(32);

/** Reference: the documented transform in double precision. */
function referenceGroup(w: Uint32Array, g: number, out: Float64Array): void {
  for (let l = 0; l < 8; l++) {
    const wa = w[16 * g + l];
    const wb = w[16 * g + 8 + l];
    const u1 = Math.fround((wa >>> 1) | 1) * 2 ** -31;
    const r = Math.sqrt(-2 * Math.log(u1));
    const th = (2 * Math.PI * wb) / 2 ** 32;
    out[16 * g + l] = r * Math.cos(th);
    out[16 * g + 8 + l] = r * Math.sin(th);
  }
}

describe('Rng.gaussian (float32, vectorized Box-Muller)', () => {
  test('matches a double-precision reference of the documented transform on every ISA', () => {
    const n = 1 << 16;
    const words = new Rng({ seed: SEED }).fillUint32(new Uint32Array(n));
    const ref = new Float64Array(n);
    for (let g = 0; g < n / 16; g++) referenceGroup(words, g, ref);
    const caps = capabilities();
    try {
      for (const isa of caps.supportedIsas) {
        setIsa(isa);
        const got = new Rng({ seed: SEED }).gaussian(new Float32Array(n), 1);
        let worst = 0;
        for (let i = 0; i < n; i++) {
          // float32 rounding of r, cos/sin and the product: a few ulps.
          const err = Math.abs(got[i] - ref[i]) / (Math.abs(ref[i]) + 1e-6);
          worst = Math.max(worst, err);
        }
        expect(worst).toBeLessThan(2e-6);
      }
    } finally {
      setIsa(caps.isa);
    }
  });

  test('std scales, std = 0 gives zeros, odd lengths use whole groups', () => {
    const a = new Rng({ seed: SEED }).gaussian(new Float32Array(37), 1);
    const b = new Rng({ seed: SEED }).gaussian(new Float32Array(37), 3);
    for (let i = 0; i < 37; i++) expect(b[i]).toBeCloseTo(3 * a[i], 5);
    expect(
      Array.from(new Rng({ seed: SEED }).gaussian(new Float32Array(5), 0)).every((v) => v === 0),
    ).toBe(true);
    const rng = new Rng({ seed: SEED });
    rng.gaussian(new Float32Array(37), 1);
    expect(rng.getState().position).toBe('48');
    // A prefix of a longer call equals the shorter call.
    const long = new Rng({ seed: SEED }).gaussian(new Float32Array(100), 1);
    expect(Array.from(long.subarray(0, 37))).toEqual(Array.from(a));
  });

  test('addGaussianNoise adds exactly the samples gaussian() would draw', async () => {
    const base = Float32Array.from({ length: 1000 }, (_, i) => i / 7);
    const noise = new Rng({ seed: SEED }).gaussian(new Float32Array(1000), 1);
    const added = new Rng({ seed: SEED }).addGaussianNoise(base.slice(), 2);
    const asyncAdded = await new Rng({ seed: SEED }).addGaussianNoiseAsync(base.slice(), 2);
    for (let i = 0; i < 1000; i++) {
      expect(added[i]).toBeCloseTo(base[i] + 2 * noise[i], 4);
      expect(asyncAdded[i]).toBe(added[i]);
    }
  });

  test('async validation rejects without advancing the stream', async () => {
    const rng = new Rng({ seed: SEED });
    await expectRejection(
      rng.addGaussianNoiseAsync(new Float32Array(4), -1),
      'InvalidArgumentError',
      /std/,
    );
    await expectRejection(
      rng.addGaussianNoiseAsync(new Float32Array(4), 1e39),
      'InvalidArgumentError',
      /std/,
    );
    await expectRejection(
      rng.addGaussianNoiseAsync(new Float64Array(4) as unknown as Float32Array, 1),
      'InvalidArgumentError',
      /buf/,
    );
    expect(rng.getState().position).toBe('0');
  });

  test('async calls reserve their words at the call', async () => {
    const rng = new Rng({ seed: SEED });
    const p1 = rng.addGaussianNoiseAsync(new Float32Array(16), 1);
    const p2 = rng.addGaussianNoiseAsync(new Float32Array(16), 1);
    const [a, b] = await Promise.all([p1, p2]);
    const ref = new Rng({ seed: SEED }).gaussian(new Float32Array(32), 1);
    expect(Array.from(a)).toEqual(Array.from(ref.subarray(0, 16)));
    expect(Array.from(b)).toEqual(Array.from(ref.subarray(16)));
  });

  for (const kind of ['float32', 'float64'] as const) {
    test(`${kind}: moments and Kolmogorov-Smirnov against N(0, 1)`, () => {
      const n = 200_000;
      const out = kind === 'float32' ? new Float32Array(n) : new Float64Array(n);
      new Rng({ seed: SEED }).gaussian(out, 1);
      const { mean, variance } = meanVar(out);
      // 5 standard errors: two-sided false-alarm rate 6e-7 each.
      expect(Math.abs(mean)).toBeLessThan(5 / Math.sqrt(n));
      expect(Math.abs(variance - 1)).toBeLessThan(5 * Math.sqrt(2 / n));
      let m4 = 0;
      for (let i = 0; i < n; i++) m4 += out[i] ** 4;
      // E z^4 = 3, Var z^4 = 96: 5 standard errors.
      expect(Math.abs(m4 / n - 3)).toBeLessThan(5 * Math.sqrt(96 / n));
      // KS at false-alarm rate 1e-4.
      expect(ksStatistic(out, normalCdf)).toBeLessThan(ksCritical(n, 1e-4));
    });
  }

  test('KS detects a wrong distribution (the test can fail)', () => {
    const n = 200_000;
    const out = new Rng({ seed: SEED }).gaussian(new Float32Array(n), 1.03);
    expect(ksStatistic(out, normalCdf)).toBeGreaterThan(ksCritical(n, 1e-4));
  });
});
