/**
 * Noise calibration (round trips, errors) and the privacy ledger (exact
 * round trips, malformed input).
 */
import {
  LedgerFormatError,
  PldAccountant,
  RdpAccountant,
  accountantFromJSON,
  calibrateNoiseMultiplier,
  getNoiseMultiplier,
  maxStepsWithinBudget,
} from '../lib';
import { expectError } from './helpers/errors';

describe('getNoiseMultiplier', () => {
  test('RDP: the returned z meets the target and 0.5% less noise does not', () => {
    for (const [eps, delta, q, steps] of [
      [1, 1e-5, 0.01, 1000],
      [8, 1e-6, 0.05, 3000],
      [0.5, 1e-5, 1, 10],
    ] as const) {
      const z = getNoiseMultiplier({
        targetEpsilon: eps,
        targetDelta: delta,
        sampleRate: q,
        steps,
        accountant: 'rdp',
      });
      const at = (zz: number) =>
        new RdpAccountant().step({ sampleRate: q, noiseMultiplier: zz }, steps).getEpsilon(delta);
      expect(at(z)).toBeLessThanOrEqual(eps);
      expect(at(z / 1.005)).toBeGreaterThan(eps);
    }
  });

  test('PLD (default): calibrate then evaluate round trip, within 0.5% of the smallest z', () => {
    const opts = { targetEpsilon: 2, targetDelta: 1e-5, sampleRate: 0.01, steps: 1000 };
    const r = calibrateNoiseMultiplier(opts);
    expect(r.accountant).toBe('pld');
    const at = (zz: number) =>
      new PldAccountant().step({ sampleRate: 0.01, noiseMultiplier: zz }, 1000).getEpsilon(1e-5);
    expect(at(r.noiseMultiplier)).toBeLessThanOrEqual(2);
    expect(at(r.noiseMultiplier / 1.005)).toBeGreaterThan(2);
    // less noise than the RDP calibration needs
    expect(r.noiseMultiplier).toBeLessThan(getNoiseMultiplier({ ...opts, accountant: 'rdp' }));
  });

  test('the oracle setting round trips: eps 1.828 at q = 0.01, 1000 steps needs z close to 1', () => {
    // eps(1.0) = 1.82824 <= 1.8283, so the smallest z is just under 1 and the
    // answer lies within 0.5% above it.
    const z = getNoiseMultiplier({
      targetEpsilon: 1.8283,
      targetDelta: 1e-5,
      sampleRate: 0.01,
      steps: 1000,
      pldParameters: { gridStep: 1e-4 },
    });
    expect(z).toBeLessThanOrEqual(1.005);
    expect(z).toBeGreaterThan(0.995);
    expect(
      new PldAccountant().step({ sampleRate: 0.01, noiseMultiplier: z }, 1000).getEpsilon(1e-5),
    ).toBeLessThanOrEqual(1.8283);
  });

  test('epochs are converted to ceil(epochs / q) steps', () => {
    const r = calibrateNoiseMultiplier({
      targetEpsilon: 3,
      targetDelta: 1e-5,
      sampleRate: 0.0025,
      epochs: 15,
      accountant: 'rdp',
    });
    expect(r.steps).toBe(6000);
    const r2 = calibrateNoiseMultiplier({
      targetEpsilon: 3,
      targetDelta: 1e-5,
      sampleRate: 0.3,
      epochs: 1,
      accountant: 'rdp',
    });
    expect(r2.steps).toBe(4);
  });

  test('impossible or malformed requests name the argument', () => {
    const ok = {
      targetEpsilon: 1,
      targetDelta: 1e-5,
      sampleRate: 0.01,
      steps: 100,
      accountant: 'rdp' as const,
    };
    expectError(
      () => getNoiseMultiplier({ ...ok, targetDelta: 1 }),
      'InvalidArgumentError',
      /targetDelta/,
    );
    expectError(
      () => getNoiseMultiplier({ ...ok, targetDelta: 0 }),
      'InvalidArgumentError',
      /targetDelta/,
    );
    expectError(
      () => getNoiseMultiplier({ ...ok, targetDelta: 1.5 }),
      'InvalidArgumentError',
      /targetDelta/,
    );
    expectError(
      () => getNoiseMultiplier({ ...ok, targetEpsilon: 0 }),
      'InvalidArgumentError',
      /targetEpsilon/,
    );
    expectError(
      () => getNoiseMultiplier({ ...ok, targetEpsilon: -1 }),
      'InvalidArgumentError',
      /targetEpsilon/,
    );
    expectError(
      () => getNoiseMultiplier({ ...ok, targetEpsilon: Infinity }),
      'InvalidArgumentError',
      /targetEpsilon/,
    );
    expectError(
      () => getNoiseMultiplier({ ...ok, targetEpsilon: NaN }),
      'InvalidArgumentError',
      /targetEpsilon/,
    );
    expectError(
      () => getNoiseMultiplier({ ...ok, sampleRate: 0 }),
      'InvalidArgumentError',
      /sampleRate/,
    );
    expectError(
      () => getNoiseMultiplier({ ...ok, sampleRate: 1.01 }),
      'InvalidArgumentError',
      /sampleRate/,
    );
    expectError(() => getNoiseMultiplier({ ...ok, steps: 0 }), 'InvalidArgumentError', /steps/);
    expectError(() => getNoiseMultiplier({ ...ok, steps: 2.5 }), 'InvalidArgumentError', /steps/);
    expectError(
      () => getNoiseMultiplier({ ...ok, steps: undefined }),
      'InvalidArgumentError',
      /steps/,
    );
    expectError(
      () => getNoiseMultiplier({ ...ok, epochs: 2 }),
      'InvalidArgumentError',
      /steps or epochs/,
    );
    expectError(
      () => getNoiseMultiplier({ ...ok, accountant: 'moments' as never }),
      'InvalidArgumentError',
      /accountant/,
    );
    // RDP cannot certify eps 0.001 at delta 1e-10 with any noise (its conversion has a floor)
    expectError(
      () => getNoiseMultiplier({ ...ok, targetEpsilon: 1e-3, targetDelta: 1e-10 }),
      'InvalidArgumentError',
      /targetEpsilon.*cannot be reached/,
    );
  });
});

describe('maxStepsWithinBudget', () => {
  test('the answer fits and one more step does not; the accountant is untouched', () => {
    const acc = new RdpAccountant().step({ sampleRate: 0.01, noiseMultiplier: 1 }, 200);
    const spec = { sampleRate: 0.01, noiseMultiplier: 1 };
    const k = maxStepsWithinBudget(acc, spec, { targetEpsilon: 2, targetDelta: 1e-5 });
    expect(acc.history).toEqual([
      { mechanism: 'gaussian', sampleRate: 0.01, noiseMultiplier: 1, steps: 200 },
    ]);
    const at = (n: number) => acc.clone().step(spec, n).getEpsilon(1e-5);
    expect(at(k)).toBeLessThanOrEqual(2);
    expect(at(k + 1)).toBeGreaterThan(2);
    expect(maxStepsWithinBudget(acc, spec, { targetEpsilon: 0.01, targetDelta: 1e-5 })).toBe(0);
    expectError(
      () => maxStepsWithinBudget(acc, spec, { targetEpsilon: 2, targetDelta: 0 }),
      'InvalidArgumentError',
      /targetDelta/,
    );
  });
  test('PLD, coarse grid', () => {
    const acc = new PldAccountant({ gridStep: 1e-3 });
    const spec = { sampleRate: 0.02, noiseMultiplier: 1.2 };
    const k = maxStepsWithinBudget(acc, spec, { targetEpsilon: 1, targetDelta: 1e-5 });
    expect(acc.clone().step(spec, k).getEpsilon(1e-5)).toBeLessThanOrEqual(1);
    expect(
      acc
        .clone()
        .step(spec, k + 1)
        .getEpsilon(1e-5),
    ).toBeGreaterThan(1);
  });
});

describe('ledger', () => {
  const fill = <T extends RdpAccountant | PldAccountant>(a: T): T => {
    a.step({ sampleRate: 0.01, noiseMultiplier: 1.1 }, 300);
    a.step({ sampleRate: 1, noiseMultiplier: 4 }, 2); // non-Poisson phase, accounted with q = 1
    a.step({ sampleRate: 0.01, noiseMultiplier: 1.1 }, 100);
    return a;
  };

  test('RDP: toJSON / fromJSON restores exactly and answers identically', () => {
    const a = fill(new RdpAccountant({ orders: [1.5, 2, 3, 8, 32], conversion: 'classic' }));
    const text = JSON.stringify(a);
    const b = RdpAccountant.fromJSON(text);
    expect(b.history).toEqual(a.history);
    expect(b.orders).toEqual(a.orders);
    expect(b.conversion).toBe('classic');
    expect(JSON.stringify(b)).toBe(text);
    for (const d of [1e-3, 1e-5, 1e-9]) expect(b.getEpsilon(d)).toBe(a.getEpsilon(d));
    const c = accountantFromJSON(JSON.parse(text));
    expect(c).toBeInstanceOf(RdpAccountant);
    expect(c.getEpsilon(1e-5)).toBe(a.getEpsilon(1e-5));
  });

  test('PLD: toJSON / fromJSON restores exactly and answers identically', () => {
    const a = fill(new PldAccountant({ gridStep: 1e-3 }));
    const json = a.toJSON();
    expect(json.formatVersion).toBe(1);
    expect(json.accountant).toBe('pld');
    expect(json.history).toHaveLength(3);
    expect(json.parameters.gridStep).toBe(1e-3);
    const b = accountantFromJSON(JSON.stringify(json));
    expect(b).toBeInstanceOf(PldAccountant);
    expect(b.history).toEqual(a.history);
    expect(b.getEpsilon(1e-5)).toBe(a.getEpsilon(1e-5));
    // a clone is independent of the original
    const cl = a.clone();
    cl.step({ sampleRate: 0.5, noiseMultiplier: 1 }, 1);
    expect(a.history).toHaveLength(3);
    expect(cl.history).toHaveLength(4);
    // the restored ledger keeps counting
    b.step({ sampleRate: 0.01, noiseMultiplier: 1.1 }, 10);
    expect(b.getEpsilon(1e-5)).toBeGreaterThan(a.getEpsilon(1e-5));
  });

  test('malformed ledgers are refused with a clear error', () => {
    const good = JSON.stringify(fill(new RdpAccountant()));
    const bad = (mut: (o: Record<string, any>) => void) => {
      const o = JSON.parse(good);
      mut(o);
      return JSON.stringify(o);
    };
    const cases: [string, RegExp][] = [
      ['{not json', /not valid JSON/],
      ['[]', /JSON object/],
      ['null', /JSON object/],
      [bad((o) => delete o.history), /history/],
      [bad((o) => (o.history = {})), /history/],
      [bad((o) => (o.history[0].steps = -3)), /history\[0\].*count|steps/],
      [bad((o) => (o.history[1].sampleRate = 0)), /history\[1\].*sampleRate/],
      [bad((o) => (o.history[0].noiseMultiplier = 'x')), /noiseMultiplier/],
      [bad((o) => (o.history[0].extra = 1)), /history\[0\]/],
      [bad((o) => delete o.history[0].mechanism), /history\[0\]/],
      [bad((o) => (o.formatVersion = 2)), /formatVersion/],
      [bad((o) => (o.accountant = 'moments')), /accountant/],
      [bad((o) => (o.type = 'other')), /type/],
      [bad((o) => (o.parameters.orders = [0.5])), /orders/],
      [bad((o) => (o.parameters.conversion = 'x')), /conversion/],
      [bad((o) => delete o.parameters), /parameters/],
    ];
    for (const [text, re] of cases) {
      expectError(() => accountantFromJSON(text), 'LedgerFormatError', re);
    }
    // a ledger for one kind is not silently read as the other
    expectError(() => PldAccountant.fromJSON(good), 'LedgerFormatError', /'rdp' accountant/);
    const pld = JSON.parse(JSON.stringify(new PldAccountant()));
    pld.parameters.gridStep = -1;
    expectError(() => accountantFromJSON(pld), 'LedgerFormatError', /gridStep/);
    expect(new LedgerFormatError('x')).toBeInstanceOf(Error);
  });
});
