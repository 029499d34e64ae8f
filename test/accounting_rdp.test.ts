/**
 * RDP of the Poisson-subsampled Gaussian, its conversions, zCDP conversions
 * and adaptive-clipping noise: published values (Mironov, Talwar, Zhang 2019; Canonne,
 * Kamath, Steinke 2020; Andrew et al. 2021), each written in the test that uses it,
 * and independent references (direct sums, quadrature).
 */
import {
  DEFAULT_ORDERS,
  RdpAccountant,
  adaptiveClippingNoiseMultiplier,
  computeRdp,
  discreteGaussianDelta,
  rdpToEpsilon,
  zcdpToDelta,
  zcdpToEpsilon,
} from '../lib/api/accounting';
import { rdpPerStep } from '../lib/api/accounting';
import { expectError } from './helpers/errors';
import { integerA, quadratureRdp } from './helpers/accounting_reference';

const rel = (a: number, b: number) => Math.abs(a / b - 1);
/** Largest relative deviation seen against the oracles (reported at the end). */
let worstOracle = 0;
const oracle = (got: number, want: number, tol: number) => {
  worstOracle = Math.max(worstOracle, rel(got, want));
  expect(rel(got, want)).toBeLessThan(tol);
};
afterAll(() => {
  console.log(
    `largest relative deviation from the RDP/conversion oracles: ${worstOracle.toExponential(2)}`,
  );
});

describe('RDP oracle table (MTZ 2019)', () => {
  const table: [number, number, number, number][] = [
    [0.01, 1, 2, 1.718134221e-4],
    [0.1, 2, 2, 2.836228266e-3],
    [0.01, 1, 8, 8.936439076e-4],
    [0.1, 1, 8, 1.378361411],
    [0.01, 0.6, 32, 39.69072038],
    [0.01, 1, 2.5, 2.175753323e-4],
    [0.01, 1, 1.5, 1.272537433e-4],
    [0.1, 1, 10.5, 2.70578601],
    [0.1, 1, 3, 0.0317123003033764],
  ];
  test.each(table)('q=%p z=%p alpha=%p', (q, z, a, want) => {
    oracle(rdpPerStep(q, z, a), want, 1e-8);
    const viaApi = computeRdp({ sampleRate: q, noiseMultiplier: z, steps: 7, orders: [a] });
    expect(rel(viaApi[0], 7 * want)).toBeLessThan(1e-8);
  });

  test('the subsampled discrete Gaussian equals the continuous one at integer orders', () => {
    const d = computeRdp({
      sampleRate: 0.1,
      noiseMultiplier: 1,
      steps: 1,
      orders: [3, 3.5],
      mechanism: 'discreteGaussian',
    });
    oracle(d[0], 0.0317123003033764, 1e-12);
    expect(d[1]).toBe(Infinity);
  });

  test('q = 1 gives alpha / (2 z^2) exactly', () => {
    for (const z of [0.5, 1, 3.7]) {
      for (const a of [1.5, 2, 7.3, 64, 1024]) {
        expect(rdpPerStep(1, z, a)).toBeCloseTo(a / (2 * z * z), 12);
      }
    }
  });
});

describe('RDP against independent references', () => {
  test('integer orders match a direct sum in ordinary arithmetic', () => {
    // (z = 0.8 stops at alpha 12: the plain-arithmetic reference overflows beyond.)
    for (const [q, z, maxA] of [
      [0.001, 0.8, 12],
      [0.02, 1.1, 40],
      [0.3, 2, 40],
      [0.9, 5, 40],
    ]) {
      for (const a of [2, 3, 5, 12, 40].filter((x) => x <= maxA)) {
        const want = Math.log(integerA(q, z, a)) / (a - 1);
        expect(rel(rdpPerStep(q, z, a), want)).toBeLessThan(1e-7);
      }
    }
  });

  test('fractional orders match numerical quadrature of E[(P/Q)^alpha]', () => {
    // The quadrature is a different method; signed generalized binomials are
    // what makes the series agree with it (absolute values would overshoot).
    for (const [q, z] of [
      [0.01, 1],
      [0.1, 1],
      [0.1, 2],
      [0.05, 0.8],
      [0.5, 1.5],
    ]) {
      for (const a of [1.1, 1.5, 2.5, 4.3, 7.7]) {
        const want = quadratureRdp(q, z, a);
        expect(rel(rdpPerStep(q, z, a), want)).toBeLessThan(1e-7);
      }
    }
  });

  test('fractional orders interpolate monotonically between integer orders', () => {
    const orders = DEFAULT_ORDERS.filter((a) => a <= 20);
    const r = computeRdp({ sampleRate: 0.1, noiseMultiplier: 1, steps: 1, orders });
    for (let i = 1; i < r.length; i++) expect(r[i]).toBeGreaterThanOrEqual(r[i - 1]);
  });
});

describe('conversions', () => {
  const orders2 = [
    1.25,
    1.5,
    1.75,
    2,
    2.25,
    2.5,
    3,
    3.5,
    4,
    4.5,
    ...Array.from({ length: 59 }, (_, i) => 5 + i),
    128,
    256,
    512,
  ];

  test('constant RDP 1.1 on orders 2..32, delta 1e-5, improved: 1.32783806176 at alpha 32', () => {
    const orders = Array.from({ length: 31 }, (_, i) => 2 + i);
    const r = rdpToEpsilon(
      orders,
      orders.map(() => 1.1),
      1e-5,
      { conversion: 'improved' },
    );
    oracle(r.epsilon, 1.32783806176, 1e-10);
    expect(r.order).toBe(32);
  });

  // The oracle list these come from labels the next two values "classic", but both are what the
  // improved conversion gives (the classic one gives 0.9419 and 1.709, and the
  // accountants table lists 0.942 as classic and 0.7242 as improved for the
  // first setting). We test them as improved and pin the classic values too.
  test('MNIST-like setting (q = 0.0025, z = 1.3, 6000 steps, delta 1e-5): 0.7242234026109595 at alpha 19', () => {
    const rdp = computeRdp({
      sampleRate: 150 / 60000,
      noiseMultiplier: 1.3,
      steps: 6000,
      orders: orders2,
    });
    const imp = rdpToEpsilon(orders2, rdp, 1e-5);
    oracle(imp.epsilon, 0.7242234026109595, 1e-9);
    expect(imp.order).toBe(19);
    const cls = rdpToEpsilon(orders2, rdp, 1e-5, { conversion: 'classic' });
    expect(cls.epsilon).toBeCloseTo(0.942, 3);
    expect(cls.epsilon).toBeGreaterThan(imp.epsilon);
  });

  test('q = 0.001, z = 1, 30000 steps, delta 1e-7: 1.4154988495444842', () => {
    const rdp = computeRdp({
      sampleRate: 100 / 100000,
      noiseMultiplier: 1.0,
      steps: 30000,
      orders: orders2,
    });
    oracle(rdpToEpsilon(orders2, rdp, 1e-7).epsilon, 1.4154988495444842, 1e-9);
  });

  test('classic conversion is eps = rdp + ln(1/delta)/(alpha-1) at the best order', () => {
    const r = rdpToEpsilon([2, 4, 8], [0.1, 0.3, 1.5], 1e-3, { conversion: 'classic' });
    const cands = [0.1 + Math.log(1e3) / 1, 0.3 + Math.log(1e3) / 3, 1.5 + Math.log(1e3) / 7];
    expect(r.epsilon).toBeCloseTo(Math.min(...cands), 12);
    expect(r.order).toBe(8);
  });

  test('improved is never worse than classic', () => {
    const rdp = computeRdp({ sampleRate: 0.02, noiseMultiplier: 0.9, steps: 500 });
    for (const d of [1e-3, 1e-6, 1e-9]) {
      expect(rdpToEpsilon(DEFAULT_ORDERS, rdp, d).epsilon).toBeLessThanOrEqual(
        rdpToEpsilon(DEFAULT_ORDERS, rdp, d, { conversion: 'classic' }).epsilon,
      );
    }
  });

  test('invalid arguments name themselves', () => {
    expectError(() => rdpToEpsilon([2], [0.1], 0), 'InvalidArgumentError', /delta/);
    expectError(() => rdpToEpsilon([2], [0.1], 1), 'InvalidArgumentError', /delta/);
    expectError(() => rdpToEpsilon([2], [0.1], NaN), 'InvalidArgumentError', /delta/);
    expectError(() => rdpToEpsilon([1], [0.1], 1e-5), 'InvalidArgumentError', /orders/);
    expectError(() => rdpToEpsilon([2, 3], [0.1], 1e-5), 'InvalidArgumentError', /rdp/);
    expectError(
      () => rdpToEpsilon([2], [0.1], 1e-5, { conversion: 'x' as never }),
      'InvalidArgumentError',
      /conversion/,
    );
    expectError(
      () => computeRdp({ sampleRate: 1.5, noiseMultiplier: 1, steps: 1 }),
      'InvalidArgumentError',
      /sampleRate/,
    );
    expectError(
      () => computeRdp({ sampleRate: 0.1, noiseMultiplier: 0, steps: 1 }),
      'InvalidArgumentError',
      /noiseMultiplier/,
    );
    expectError(
      () => computeRdp({ sampleRate: 0.1, noiseMultiplier: 1, steps: -1 }),
      'InvalidArgumentError',
      /steps/,
    );
  });
});

describe('accountants table, RDP columns', () => {
  const cases: [number, number, number, number, number | null, number][] = [
    [150 / 60000, 1.3, 6000, 1e-5, 0.942, 0.7242],
    [0.01, 1.0, 1000, 1e-5, 2.538, 2.101],
    [0.005, 0.8, 1000, 1e-6, null, 2.6265],
  ];
  test.each(cases)('q=%p z=%p steps=%p delta=%p', (q, z, steps, delta, classic, improved) => {
    const digits = (v: number) => (String(v).split('.')[1] ?? '').length;
    const imp = new RdpAccountant()
      .step({ sampleRate: q, noiseMultiplier: z }, steps)
      .getEpsilon(delta);
    expect(Math.abs(imp - improved)).toBeLessThanOrEqual(0.5 * 10 ** -digits(improved) + 1e-12);
    if (classic !== null) {
      const cls = new RdpAccountant({ conversion: 'classic' })
        .step({ sampleRate: q, noiseMultiplier: z }, steps)
        .getEpsilon(delta);
      expect(Math.abs(cls - classic)).toBeLessThanOrEqual(0.5 * 10 ** -digits(classic) + 1e-12);
    }
  });
});

describe('RDP accountant properties', () => {
  const eps = (q: number, z: number, steps: number) =>
    new RdpAccountant().step({ sampleRate: q, noiseMultiplier: z }, steps).getEpsilon(1e-5);
  test('epsilon grows with steps and q, falls with z', () => {
    for (const q of [0.001, 0.01, 0.1]) {
      for (const z of [0.7, 1, 2]) {
        expect(eps(q, z, 200)).toBeLessThan(eps(q, z, 2000));
        expect(eps(q, z, 500)).toBeLessThan(eps(Math.min(1, q * 2), z, 500));
        expect(eps(q, z * 1.2, 500)).toBeLessThan(eps(q, z, 500));
      }
    }
  });

  test('heterogeneous histories add RDP order by order', () => {
    const a = new RdpAccountant()
      .step({ sampleRate: 0.01, noiseMultiplier: 1 }, 300)
      .step({ sampleRate: 0.05, noiseMultiplier: 2 }, 100);
    const r1 = computeRdp({ sampleRate: 0.01, noiseMultiplier: 1, steps: 300 });
    const r2 = computeRdp({ sampleRate: 0.05, noiseMultiplier: 2, steps: 100 });
    const sum = r1.map((v, i) => v + r2[i]);
    expect(a.getEpsilon(1e-6)).toBeCloseTo(rdpToEpsilon(DEFAULT_ORDERS, sum, 1e-6).epsilon, 12);
    // order of events does not matter
    const b = new RdpAccountant()
      .step({ sampleRate: 0.05, noiseMultiplier: 2 }, 100)
      .step({ sampleRate: 0.01, noiseMultiplier: 1 }, 300);
    expect(b.getEpsilon(1e-6)).toBeCloseTo(a.getEpsilon(1e-6), 12);
  });

  test('discrete-Gaussian events use integer orders only', () => {
    const a = new RdpAccountant().step(
      { sampleRate: 0.01, noiseMultiplier: 1, mechanism: 'discreteGaussian' },
      1000,
    );
    const { order } = a.getEpsilonAndOrder(1e-5);
    expect(Number.isInteger(order)).toBe(true);
    const cont = new RdpAccountant()
      .step({ sampleRate: 0.01, noiseMultiplier: 1 }, 1000)
      .getEpsilon(1e-5);
    expect(a.getEpsilon(1e-5)).toBeGreaterThanOrEqual(cont);
    expect(a.getEpsilon(1e-5)).toBeLessThan(cont * 1.02);
  });

  test('getDelta inverts getEpsilon', () => {
    const a = new RdpAccountant().step({ sampleRate: 0.01, noiseMultiplier: 1.1 }, 2000);
    const e = a.getEpsilon(1e-6);
    expect(rel(a.getDelta(e), 1e-6)).toBeLessThan(1e-6);
  });

  test('step validates its arguments', () => {
    const a = new RdpAccountant();
    expectError(
      () => a.step({ sampleRate: 0, noiseMultiplier: 1 }),
      'InvalidArgumentError',
      /sampleRate/,
    );
    expectError(
      () => a.step({ sampleRate: 0.1, noiseMultiplier: NaN }),
      'InvalidArgumentError',
      /noiseMultiplier/,
    );
    expectError(
      () => a.step({ sampleRate: 0.1, noiseMultiplier: 1 }, 0),
      'InvalidArgumentError',
      /count/,
    );
    expectError(
      () => a.step({ sampleRate: 0.1, noiseMultiplier: 1 }, 1.5),
      'InvalidArgumentError',
      /count/,
    );
    expectError(
      () => a.step({ sampleRate: 0.1, noiseMultiplier: 1, mechanism: 'laplace' as never }),
      'InvalidArgumentError',
      /mechanism/,
    );
    expect(a.history).toEqual([]);
    expect(a.getEpsilon(1e-5)).toBe(0);
  });
});

describe('zCDP conversions (Canonne, Kamath, Steinke 2020)', () => {
  test('rho 0.025: delta at eps 1 is 1.3361319064e-6', () => {
    oracle(zcdpToDelta(0.025, 1), 1.3361319064e-6, 1e-9);
  });
  test('rho 0.025: eps at delta 1e-6 is 1.0140742547', () => {
    oracle(zcdpToEpsilon(0.025, 1e-6), 1.0140742547, 1e-9);
  });
  test('the two conversions are inverse to each other', () => {
    for (const rho of [0.001, 0.1, 2]) {
      const e = zcdpToEpsilon(rho, 1e-7);
      expect(rel(zcdpToDelta(rho, e), 1e-7)).toBeLessThan(1e-6);
    }
  });
  test('zCDP conversion matches the RDP improved conversion on a dense order grid', () => {
    const orders = Array.from({ length: 4000 }, (_, i) => 1.01 + i * 0.01);
    const rho = 0.3;
    const viaRdp = rdpToEpsilon(
      orders,
      orders.map((a) => a * rho),
      1e-5,
    ).epsilon;
    expect(zcdpToEpsilon(rho, 1e-5)).toBeLessThanOrEqual(viaRdp + 1e-12);
    expect(viaRdp - zcdpToEpsilon(rho, 1e-5)).toBeLessThan(1e-5);
  });
  test('bad arguments', () => {
    expectError(() => zcdpToEpsilon(-1, 1e-5), 'InvalidArgumentError', /rho/);
    expectError(() => zcdpToEpsilon(0.1, 2), 'InvalidArgumentError', /delta/);
    expectError(() => zcdpToDelta(0.1, -1), 'InvalidArgumentError', /epsilon/);
  });
});

describe('adaptive clipping joint noise (Andrew et al. 2021)', () => {
  test('target z = 1 with sigma_b = E[B]/20', () => {
    oracle(
      adaptiveClippingNoiseMultiplier({ targetNoiseMultiplier: 1, countNoiseStd: 256 / 20 }),
      1.000764,
      1e-6,
    );
    oracle(
      adaptiveClippingNoiseMultiplier({ targetNoiseMultiplier: 1, countNoiseStd: 16 / 20 }),
      1.281025,
      1e-6,
    );
  });
  test('the count alone cannot exceed the budget', () => {
    expectError(
      () => adaptiveClippingNoiseMultiplier({ targetNoiseMultiplier: 1, countNoiseStd: 0.5 }),
      'InvalidArgumentError',
      /countNoiseStd/,
    );
    expectError(
      () => adaptiveClippingNoiseMultiplier({ targetNoiseMultiplier: -1, countNoiseStd: 5 }),
      'InvalidArgumentError',
      /targetNoiseMultiplier/,
    );
  });
});

describe('discrete Gaussian, exact single release', () => {
  test('sigma^2 = 1, sensitivity 1, eps 1: delta = 0.1413513', () => {
    oracle(discreteGaussianDelta(1, 1, 1), 0.1413513, 1e-6);
  });
  test('close to the continuous Gaussian for large sigma, and decreasing in eps', () => {
    // continuous: Phi(-eps/mu + mu/2) - e^eps Phi(-eps/mu - mu/2) with mu = D / sigma
    const sigma = 30;
    const d = discreteGaussianDelta(sigma * sigma, 20, 0.5);
    const mu = 20 / sigma;
    const phi = (x: number) => 0.5 * (1 + erfApprox(x / Math.SQRT2));
    const cont = phi(-0.5 / mu + mu / 2) - Math.exp(0.5) * phi(-0.5 / mu - mu / 2);
    expect(Math.abs(d / cont - 1)).toBeLessThan(1e-3);
    expect(discreteGaussianDelta(1, 1, 2)).toBeLessThan(discreteGaussianDelta(1, 1, 1));
  });
  test('bad arguments', () => {
    expectError(() => discreteGaussianDelta(0, 1, 1), 'InvalidArgumentError', /sigmaSquared/);
    expectError(() => discreteGaussianDelta(1, 0.5, 1), 'InvalidArgumentError', /sensitivity/);
    expectError(() => discreteGaussianDelta(1, 1, -1), 'InvalidArgumentError', /epsilon/);
  });
});

/** erf by its Maclaurin series (|x| < 3 here), independent of the library. */
function erfApprox(x: number): number {
  let sum = 0;
  let term = x;
  for (let n = 0; n < 200; n++) {
    sum += term / (2 * n + 1);
    term *= (-x * x) / (n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}
