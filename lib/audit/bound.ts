/**
 * The statistical bound of the one-run privacy audit of Steinke, Nasr and
 * Jagielski (2023), "Privacy Auditing with One (1) Training Run".
 *
 * m canaries are each included independently with probability 1/2; after
 * training, the auditor guesses "in" or "out" for r of them and gets v right.
 * If the mechanism is (eps, delta)-DP, the number of correct guesses is
 * dominated by Binomial(r, q), q = e^eps / (1 + e^eps), up to a delta term:
 *
 *   P[correct >= v] <= beta + 2 m delta alpha,
 *   beta  = P[Binomial(r, q) >= v],
 *   alpha = max_{1 <= i <= v} P[v - i <= Binomial(r, q) < v] / i.
 *
 * The audit's epsilon lower bound at confidence 1 - p is the largest eps whose
 * p-value is still below p: a mechanism that were (eps, delta)-DP would show v
 * or more correct guesses with probability below p.
 */
import { OPEN_UNIT, requireInt, requireNumber } from '../validate';

function checkCounts(m: number, r: number, v: number): void {
  requireInt('m', m, { min: 0 });
  requireInt('r', r, { min: 0, max: m, hint: '(at most m)' });
  requireInt('v', v, { min: 0, max: r, hint: '(at most r)' });
}

/** log(k!) for k = 0..n. */
function logFactorials(n: number): Float64Array {
  const lf = new Float64Array(n + 1);
  for (let k = 2; k <= n; k++) lf[k] = lf[k - 1] + Math.log(k);
  return lf;
}

/**
 * The p-value of v or more correct guesses out of r (m canaries) under the
 * null hypothesis that the mechanism is (eps, delta)-DP.
 *
 * @param m - canaries (each included with probability 1/2)
 * @param r - guesses made (abstentions excluded)
 * @param v - correct guesses
 * @param eps - epsilon of the null hypothesis (>= 0)
 * @param delta - delta of the null hypothesis, in [0, 1]
 */
export function auditPValue(m: number, r: number, v: number, eps: number, delta: number): number {
  checkCounts(m, r, v);
  requireNumber('eps', eps, { min: 0 });
  requireNumber('delta', delta, { min: 0, max: 1 });
  if (v === 0) return 1;
  const lf = logFactorials(r);
  const logQ = -Math.log1p(Math.exp(-eps)); // log(e^eps / (1 + e^eps))
  const log1mQ = -eps + logQ; // log(1 / (1 + e^eps))
  const pmf = (k: number) => Math.exp(lf[r] - lf[k] - lf[r - k] + k * logQ + (r - k) * log1mQ);
  let beta = 0;
  for (let k = r; k >= v; k--) beta += pmf(k); // small terms first
  let alpha = 0;
  let window = 0;
  for (let i = 1; i <= v; i++) {
    window += pmf(v - i);
    alpha = Math.max(alpha, window / i);
  }
  return Math.min(1, beta + 2 * m * delta * alpha);
}

/**
 * The largest epsilon the audit certifies at confidence `confidence`: the
 * supremum of the eps whose {@link auditPValue} is below `1 - confidence`
 * (0 when even eps = 0 is not rejected), found by bisection to 1e-9.
 *
 * @param m - canaries
 * @param r - guesses made
 * @param v - correct guesses
 * @param delta - delta of the claim being audited
 * @param confidence - default 0.95
 */
export function epsilonLowerBound(
  m: number,
  r: number,
  v: number,
  delta: number,
  confidence = 0.95,
): number {
  checkCounts(m, r, v);
  requireNumber('confidence', confidence, OPEN_UNIT);
  const p = 1 - confidence;
  const rejects = (eps: number) => auditPValue(m, r, v, eps, delta) < p;
  if (!rejects(0)) return 0;
  let lo = 0;
  let hi = 1;
  while (rejects(hi)) {
    lo = hi;
    hi *= 2;
    if (hi > 1e4) return Infinity;
  }
  while (hi - lo > 1e-9) {
    const mid = (lo + hi) / 2;
    if (rejects(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}
