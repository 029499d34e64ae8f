/**
 * PLD accountant: published PLD/PRV values, upper-bound checks against the
 * exact Gaussian curve, comparison with RDP, composition properties, the
 * discrete-Gaussian fallback, and the FFT and special functions it rests on.
 */
import { PldAccountant, RdpAccountant } from '../lib';
import { fft } from '../lib/accounting/fft';
import { SignedLogSum, erfc, logAdd, logErfc, logGamma, logSub } from '../lib/accounting/log_math';
import {
  composePlds,
  composedDelta,
  composedEpsilon,
  discretizeSubsampledGaussian,
  DEFAULT_PLD_PARAMETERS,
} from '../lib/accounting/pld';
import { expectError } from './helpers/errors';
import {
  gaussianDelta,
  gaussianEpsilon,
  naiveDft,
  normalTail,
  seededUniform,
} from './helpers/accounting_reference';

let worstOracle = 0;
afterAll(() => {
  console.log(
    `largest relative deviation of PLD from the PLD/PRV oracles: ${worstOracle.toExponential(2)}`,
  );
});

describe('PLD oracle values (PLD / PRV column)', () => {
  const cases: [number, number, number, number, number][] = [
    [150 / 60000, 1.3, 6000, 1e-5, 0.6401],
    [0.01, 1.0, 1000, 1e-5, 1.828],
    [0.005, 0.8, 1000, 1e-6, 2.0041],
  ];
  test.each(cases)('q=%p z=%p steps=%p delta=%p -> %p', (q, z, steps, delta, want) => {
    const digits = (String(want).split('.')[1] ?? '').length;
    const acc = new PldAccountant().step({ sampleRate: q, noiseMultiplier: z }, steps);
    const d = acc.getEpsilonDetails(delta);
    expect(d.method).toBe('pld');
    // Upper bound: not below the published value (up to its rounding) ...
    expect(d.epsilon).toBeGreaterThanOrEqual(want - 0.5 * 10 ** -digits);
    // ... and tight: within 1%.
    expect(d.epsilon).toBeLessThanOrEqual(want * 1.01);
    worstOracle = Math.max(worstOracle, Math.abs(d.epsilon / want - 1));
    // the worse relation is reported
    expect(d.epsilon).toBe(Math.max(d.add!, d.remove!));
    // tighter than RDP (improved conversion)
    expect(d.epsilon).toBeLessThan(
      new RdpAccountant().step({ sampleRate: q, noiseMultiplier: z }, steps).getEpsilon(delta),
    );
  });
});

describe('upper bound against the exact Gaussian (q = 1)', () => {
  // With q = 1, T steps of noise multiplier z compose to one Gaussian with
  // mu = sqrt(T)/z, whose delta(eps) is known exactly.
  // The first case runs at the default grid step, the others at 5e-4 to save time.
  const cases: [number, number, number, number][] = [
    [1, 1, 1e-5, 1e-4],
    [5, 30, 1e-6, 5e-4],
    [20, 400, 1e-5, 5e-4],
    [2.5, 3, 1e-3, 5e-4],
  ];
  test.each(cases)('z=%p steps=%p delta=%p gridStep=%p', (z, steps, delta, gridStep) => {
    const acc = new PldAccountant({ gridStep }).step({ sampleRate: 1, noiseMultiplier: z }, steps);
    const mu = Math.sqrt(steps) / z;
    const exact = gaussianEpsilon(mu, delta);
    const got = acc.getEpsilon(delta);
    expect(got).toBeGreaterThanOrEqual(exact);
    expect(got).toBeLessThanOrEqual(exact * 1.01 + 1e-4);
    for (const e of [0, exact / 2, exact, exact * 1.5]) {
      const want = gaussianDelta(mu, e);
      const d = acc.getDelta(e);
      expect(d).toBeGreaterThanOrEqual(want * (1 - 1e-9));
      expect(d).toBeLessThanOrEqual(want * 1.05 + 1e-10);
    }
  });
});

describe('PLD against RDP and monotonicity', () => {
  // A coarser grid keeps this fast; PLD stays an upper bound at any grid step.
  const params = { gridStep: 1e-3 };
  const pld = (q: number, z: number, steps: number) =>
    new PldAccountant(params).step({ sampleRate: q, noiseMultiplier: z }, steps).getEpsilon(1e-5);
  const rdp = (q: number, z: number, steps: number) =>
    new RdpAccountant().step({ sampleRate: q, noiseMultiplier: z }, steps).getEpsilon(1e-5);
  test('PLD <= RDP on a grid of (q, z, steps)', () => {
    for (const q of [0.001, 0.02, 0.2]) {
      for (const z of [0.8, 1.5]) {
        for (const steps of [10, 1000]) {
          expect(pld(q, z, steps)).toBeLessThanOrEqual(rdp(q, z, steps));
        }
      }
    }
  });
  test('epsilon grows with steps and q, falls with z', () => {
    const base = pld(0.01, 1, 300);
    expect(pld(0.01, 1, 600)).toBeGreaterThan(base);
    expect(pld(0.02, 1, 300)).toBeGreaterThan(base);
    expect(pld(0.01, 1.2, 300)).toBeLessThan(base);
  });
  test('a finer grid gives a tighter (smaller) upper bound', () => {
    const coarse = new PldAccountant({ gridStep: 2e-3 })
      .step({ sampleRate: 0.01, noiseMultiplier: 1 }, 300)
      .getEpsilon(1e-5);
    const fine = new PldAccountant({ gridStep: 2e-4 })
      .step({ sampleRate: 0.01, noiseMultiplier: 1 }, 300)
      .getEpsilon(1e-5);
    expect(fine).toBeLessThanOrEqual(coarse);
    expect(coarse / fine - 1).toBeLessThan(0.02);
  });
});

describe('composition', () => {
  const params = { ...DEFAULT_PLD_PARAMETERS, gridStep: 1e-3 };
  test('heterogeneous history equals the product of its parts, in any order', () => {
    const a = new PldAccountant(params)
      .step({ sampleRate: 0.01, noiseMultiplier: 1 }, 200)
      .step({ sampleRate: 0.05, noiseMultiplier: 2 }, 50);
    const b = new PldAccountant(params)
      .step({ sampleRate: 0.05, noiseMultiplier: 2 }, 50)
      .step({ sampleRate: 0.01, noiseMultiplier: 1 }, 200);
    expect(a.getEpsilon(1e-6)).toBeCloseTo(b.getEpsilon(1e-6), 9);
    // splitting steps into separate calls merges into one entry and gives the same answer
    const c = new PldAccountant(params);
    for (let i = 0; i < 4; i++) c.step({ sampleRate: 0.01, noiseMultiplier: 1 }, 50);
    c.step({ sampleRate: 0.05, noiseMultiplier: 2 }, 50);
    expect(c.history).toEqual([
      { mechanism: 'gaussian', noiseMultiplier: 1, sampleRate: 0.01, steps: 200 },
      { mechanism: 'gaussian', noiseMultiplier: 2, sampleRate: 0.05, steps: 50 },
    ]);
    expect(c.getEpsilon(1e-6)).toBeCloseTo(a.getEpsilon(1e-6), 9);
    // each part alone is cheaper than the whole
    const part = new PldAccountant(params)
      .step({ sampleRate: 0.01, noiseMultiplier: 1 }, 200)
      .getEpsilon(1e-6);
    expect(part).toBeLessThan(a.getEpsilon(1e-6));
  });

  test('FFT composition agrees with direct convolution of the discrete PLDs', () => {
    const h = 0.05;
    const p = { ...params, gridStep: h };
    const d = discretizeSubsampledGaussian(0.2, 1, 'remove', p);
    // exact 3-fold convolution by direct sums
    let cur = new Map<number, number>([[0, 1]]);
    for (let s = 0; s < 3; s++) {
      const next = new Map<number, number>();
      for (const [k, v] of cur) {
        for (let i = 0; i < d.mass.length; i++) {
          const kk = k + d.offset + i;
          next.set(kk, (next.get(kk) ?? 0) + v * d.mass[i]);
        }
      }
      cur = next;
    }
    const [c] = composePlds([[{ pld: d, count: 3 }]], p);
    for (const eps of [0, 0.5, 1, 2]) {
      let want = 0;
      for (const [k, v] of cur) if (k * h > eps) want += v * -Math.expm1(eps - k * h);
      want += 1 - (1 - d.infMass) ** 3;
      const got = composedDelta(c, eps);
      expect(Math.abs(got - want)).toBeLessThan(1e-10);
      expect(got).toBeGreaterThanOrEqual(want);
    }
  });

  test('discretization preserves P and Q mass and dominates the exact curve', () => {
    const p = { ...params, gridStep: 0.01 };
    for (const rel of ['add', 'remove'] as const) {
      const d = discretizeSubsampledGaussian(0.1, 1, rel, p);
      let pm = d.infMass;
      let qm = 0;
      for (let i = 0; i < d.mass.length; i++) {
        pm += d.mass[i];
        qm += d.mass[i] * Math.exp(-(d.offset + i) * p.gridStep);
      }
      expect(pm).toBeCloseTo(1, 12);
      expect(qm).toBeLessThanOrEqual(1 + 1e-12);
      // one step: delta of the discrete pair >= the exact delta of the mixture pair
      const [c] = composePlds([[{ pld: d, count: 1 }]], p);
      // on grid points the discrete curve is exact; between them it lies above
      for (const eps of [0.05, 0.2, 0.2049, 0.5, 0.5075, 1, 1.0001]) {
        const exact = exactOneStepDelta(0.1, 1, rel, eps);
        const got = composedDelta(c, eps);
        expect(got).toBeGreaterThanOrEqual(exact * (1 - 1e-8));
        expect(got).toBeLessThanOrEqual(exact * 1.02 + 1e-12);
      }
    }
  });
});

/**
 * Exact one-step delta(eps) of the subsampled Gaussian pair: the likelihood
 * ratio is monotone in x, so {P > e^eps Q} is a half-line with a closed-form
 * end point and delta is a combination of normal tails (here from quadrature).
 */
function exactOneStepDelta(q: number, s: number, rel: 'add' | 'remove', eps: number): number {
  const sf = normalTail;
  const cdf = (x: number) => normalTail(-x);
  if (rel === 'remove') {
    const x = s * s * Math.log((Math.exp(eps) - (1 - q)) / q) + 0.5;
    return (1 - q) * sf(x / s) + q * sf((x - 1) / s) - Math.exp(eps) * sf(x / s);
  }
  const r = Math.exp(-eps) - (1 - q);
  if (r <= 0) return 0;
  const x = s * s * Math.log(r / q) + 0.5;
  return cdf(x / s) - Math.exp(eps) * ((1 - q) * cdf(x / s) + q * cdf((x - 1) / s));
}

describe('discrete Gaussian events and edge cases', () => {
  test('discrete-Gaussian histories fall back to RDP at integer orders', () => {
    const acc = new PldAccountant().step(
      { sampleRate: 0.01, noiseMultiplier: 1, mechanism: 'discreteGaussian' },
      1000,
    );
    const d = acc.getEpsilonDetails(1e-5);
    expect(d.method).toBe('rdp-fallback');
    const r = new RdpAccountant({
      orders: [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 16, 20, 32, 64, 128, 256, 512, 1024],
    })
      .step({ sampleRate: 0.01, noiseMultiplier: 1 }, 1000)
      .getEpsilon(1e-5);
    expect(d.epsilon).toBeLessThanOrEqual(r + 1e-12);
    expect(d.epsilon).toBeGreaterThan(1.828); // never below the continuous PLD value
  });
  test('empty history costs nothing; delta is validated', () => {
    const acc = new PldAccountant();
    expect(acc.getEpsilon(1e-5)).toBe(0);
    expectError(() => acc.getEpsilon(0), 'InvalidArgumentError', /delta/);
    expectError(() => acc.getEpsilon(1), 'InvalidArgumentError', /delta/);
    expectError(() => acc.getEpsilon(NaN), 'InvalidArgumentError', /delta/);
    expectError(
      () => acc.step({ sampleRate: 2, noiseMultiplier: 1 }),
      'InvalidArgumentError',
      /sampleRate/,
    );
    expectError(() => new PldAccountant({ gridStep: 0 }), 'InvalidArgumentError', /gridStep/);
  });
  test('a delta below the truncation charges falls back to RDP (loudly), not a wrong number', () => {
    const acc = new PldAccountant({ gridStep: 1e-3, windowTail: 1e-9 }).step(
      { sampleRate: 0.01, noiseMultiplier: 1 },
      100,
    );
    const d = acc.getEpsilonDetails(1e-10);
    expect(d.method).toBe('rdp-fallback');
    expect(d.fallback).toMatch(/allowance/);
    expect(d.remove).toBe(Infinity); // PLD alone certifies nothing at this delta
    const rdp = new RdpAccountant().step({ sampleRate: 0.01, noiseMultiplier: 1 }, 100);
    expect(d.epsilon).toBe(rdp.getEpsilon(1e-10));
    const fine = acc.getEpsilonDetails(1e-6);
    expect(fine.method).toBe('pld');
    expect(fine.fallback).toBeUndefined();
    expect(Number.isFinite(fine.epsilon)).toBe(true);
  });
  test('a grid too fine for the history is coarsened automatically (still an upper bound)', () => {
    const acc = new PldAccountant({ maxFftLength: 1 << 16 }).step(
      { sampleRate: 1, noiseMultiplier: 2 },
      400,
    );
    const d = acc.getEpsilonDetails(1e-5);
    expect(d.gridStep).toBeGreaterThan(1e-4);
    const exact = gaussianEpsilon(Math.sqrt(400) / 2, 1e-5);
    expect(d.epsilon).toBeGreaterThanOrEqual(exact);
    expect(d.epsilon).toBeLessThan(exact * 1.02);
  });
  test('the FFT length cap is enforced with a clear error at the lowest level', () => {
    const p = { ...DEFAULT_PLD_PARAMETERS, gridStep: 1e-6, maxFftLength: 1 << 16 };
    expectError(
      () => discretizeSubsampledGaussian(0.5, 0.5, 'remove', p),
      'InvalidArgumentError',
      /gridStep/,
    );
  });
});

describe('numerical building blocks', () => {
  test('radix-2 FFT matches a naive DFT and inverts exactly', () => {
    const rnd = seededUniform(7);
    for (const n of [1, 2, 8, 64, 256]) {
      const re = Array.from({ length: n }, () => rnd() - 0.5);
      const im = Array.from({ length: n }, () => rnd() - 0.5);
      const want = naiveDft(re, im);
      const r = Float64Array.from(re);
      const i = Float64Array.from(im);
      fft(r, i);
      for (let k = 0; k < n; k++) {
        expect(Math.abs(r[k] - want.re[k])).toBeLessThan(1e-12);
        expect(Math.abs(i[k] - want.im[k])).toBeLessThan(1e-12);
      }
      fft(r, i, true);
      for (let k = 0; k < n; k++) {
        expect(Math.abs(r[k] - re[k])).toBeLessThan(1e-14);
        expect(Math.abs(i[k] - im[k])).toBeLessThan(1e-14);
      }
    }
    expectError(
      () => fft(new Float64Array(3), new Float64Array(3)),
      'Error',
      /internal: .*power of two/,
    );
  });

  test('erfc and log erfc against quadrature and the asymptotic expansion', () => {
    for (const x of [-3, -0.7, 0, 0.3, 0.5, 1, 1.49, 2, 3.3, 5, 8, 8.6, 12]) {
      const want = 2 * normalTail(x * Math.SQRT2, 100000);
      expect(Math.abs(erfc(x) / want - 1)).toBeLessThan(1e-9);
      expect(Math.abs(logErfc(x) - Math.log(want))).toBeLessThan(1e-9);
    }
    // far tail: log erfc(x) = -x^2 - ln(x sqrt(pi)) + ln(1 - 1/(2x^2) + 3/(4x^4) - ...)
    for (const x of [30, 100, 1e4]) {
      const u = 1 / (2 * x * x);
      const want =
        -x * x - Math.log(x * Math.sqrt(Math.PI)) + Math.log(1 - u + 3 * u * u - 15 * u ** 3);
      expect(Math.abs(logErfc(x) - want)).toBeLessThan(1e-12 * x * x);
    }
    // continuity across the method switches
    for (const x of [0.5, 8.5, 20]) {
      expect(Math.abs(logErfc(x - 1e-9) - logErfc(x + 1e-9))).toBeLessThan(1e-7);
    }
  });

  test('log-gamma, log-add and signed log sums', () => {
    let fact = 1;
    for (let n = 1; n < 25; n++) {
      fact *= n;
      expect(Math.abs(logGamma(n + 1) - Math.log(fact))).toBeLessThan(
        1e-12 * Math.max(1, Math.log(fact)),
      );
    }
    expect(logGamma(0.5)).toBeCloseTo(0.5 * Math.log(Math.PI), 14);
    expect(logGamma(-0.5)).toBeCloseTo(Math.log(2 * Math.sqrt(Math.PI)), 13); // |Gamma(-1/2)| = 2 sqrt(pi)
    expect(logAdd(Math.log(2), Math.log(3))).toBeCloseTo(Math.log(5), 15);
    expect(logSub(Math.log(5), Math.log(3))).toBeCloseTo(Math.log(2), 15);
    const s = new SignedLogSum();
    for (const v of [5, -7, 1.5, -0.25]) s.add(Math.sign(v), Math.log(Math.abs(v)));
    expect(s.sign).toBe(-1);
    expect(Math.exp(s.logAbs)).toBeCloseTo(0.75, 14);
  });
});

test('composedEpsilon and composedDelta are consistent', () => {
  const acc = new PldAccountant({ gridStep: 5e-4 }).step(
    { sampleRate: 0.02, noiseMultiplier: 0.9 },
    500,
  );
  const e = acc.getEpsilon(1e-6);
  expect(Math.abs(acc.getDelta(e) / 1e-6 - 1)).toBeLessThan(1e-6);
  expect(composedEpsilon).toBeDefined();
});
