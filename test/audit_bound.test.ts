/**
 * The one-run audit bound against an independent 60-digit Python computation
 * (test/reference/audit_bound_reference.py, values committed in
 * audit_bound_values.json) and a closed form worked by hand.
 */
import * as fs from 'fs';
import * as path from 'path';
import { auditPValue, epsilonLowerBound } from '../lib/audit';
import { InvalidArgumentError } from '../lib/errors';

interface Case {
  m: number;
  r: number;
  v: number;
  delta: number;
  epsilonLowerBound: number;
  pValueAt1: number;
  pValueAt2: number;
}
const ref = JSON.parse(
  fs.readFileSync(path.join(__dirname, 'reference', 'audit_bound_values.json'), 'utf8'),
) as { cases: Case[] };

describe('one-run audit bound', () => {
  test.each(ref.cases.map((c) => [`m=${c.m} r=${c.r} v=${c.v} delta=${c.delta}`, c]))(
    'matches the high-precision reference: %s',
    (_, c) => {
      const k = c;
      expect(epsilonLowerBound(k.m, k.r, k.v, k.delta)).toBeCloseTo(k.epsilonLowerBound, 6);
      for (const [eps, want] of [
        [1, k.pValueAt1],
        [2, k.pValueAt2],
      ]) {
        const got = auditPValue(k.m, k.r, k.v, eps, k.delta);
        expect(Math.abs(got - want)).toBeLessThanOrEqual(1e-9 * want + 1e-300);
      }
    },
  );

  test('closed form: r correct guesses out of r, delta 0 -> eps = -log(20^(1/r) - 1)', () => {
    for (const r of [5, 30, 100, 400]) {
      const want = -Math.log(Math.pow(20, 1 / r) - 1);
      expect(epsilonLowerBound(1000, r, r, 0)).toBeCloseTo(want, 7);
    }
  });

  test('chance-level guessing certifies nothing; more correct guesses certify more', () => {
    expect(epsilonLowerBound(1000, 100, 50, 1e-5)).toBe(0);
    let last = 0;
    for (let v = 60; v <= 100; v += 5) {
      const e = epsilonLowerBound(1000, 100, v, 1e-5);
      expect(e).toBeGreaterThanOrEqual(last);
      last = e;
    }
    expect(last).toBeGreaterThan(3);
  });

  test('bad counts are named', () => {
    expect(() => auditPValue(10, 11, 1, 1, 0)).toThrow(InvalidArgumentError);
    expect(() => auditPValue(10, 5, 6, 1, 0)).toThrow(/v/);
    expect(() => epsilonLowerBound(10, 5, 5, 0, 1.5)).toThrow(/confidence/);
  });
});
