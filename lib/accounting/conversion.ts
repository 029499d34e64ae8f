/**
 * Conversions from Renyi DP and zero-concentrated DP to (epsilon, delta)-DP.
 */
import { checkOrders } from './rdp';
import { goldenSectionMin } from './golden_section';
import { InvalidArgumentError } from '../errors';

/** Which RDP -> (eps, delta) conversion to use. */
export type RdpConversion = 'improved' | 'classic';

/** Result of {@link rdpToEpsilon}. */
export interface RdpEpsilon {
  /** The smallest epsilon over the orders (>= 0; Infinity if no order is finite). */
  epsilon: number;
  /** The order attaining it (NaN when epsilon is Infinity). */
  order: number;
}

/** Throws a RangeError naming `delta` unless 0 < delta < 1. */
export function checkDelta(delta: number, name = 'delta'): void {
  if (typeof delta !== 'number' || !Number.isFinite(delta) || !(delta > 0) || !(delta < 1)) {
    throw new InvalidArgumentError(name, `${name} must be a number in (0, 1), got ${delta}`);
  }
}

/**
 * Epsilon at one order.
 * improved (Balle et al. 2020, Thm 21; Canonne-Kamath-Steinke 2020):
 *   rdp + ln((a-1)/a) - (ln delta + ln a)/(a-1);
 * classic (Mironov 2017): rdp + ln(1/delta)/(a-1).
 */
export function epsilonAtOrder(
  order: number,
  rdp: number,
  delta: number,
  conversion: RdpConversion = 'improved',
): number {
  if (Number.isNaN(rdp)) return Infinity;
  const logDelta = Math.log(delta);
  if (conversion === 'classic') return rdp - logDelta / (order - 1);
  return rdp + Math.log1p(-1 / order) - (logDelta + Math.log(order)) / (order - 1);
}

/**
 * Converts an RDP curve to (epsilon, delta)-DP, minimizing over the orders.
 * @param orders Renyi orders (> 1)
 * @param rdp RDP at each order (same length)
 * @param delta target delta in (0, 1)
 * @param options.conversion 'improved' (default) or 'classic'
 * @returns the epsilon (clamped at 0) and the optimal order
 */
export function rdpToEpsilon(
  orders: readonly number[],
  rdp: ArrayLike<number>,
  delta: number,
  options: { conversion?: RdpConversion } = {},
): RdpEpsilon {
  checkOrders(orders);
  if (!rdp || rdp.length !== orders.length) {
    throw new InvalidArgumentError(
      'rdp',
      `rdp must have one value per order (${orders.length}), got ${rdp ? rdp.length : rdp}`,
    );
  }
  checkDelta(delta);
  const conversion = options.conversion ?? 'improved';
  if (conversion !== 'improved' && conversion !== 'classic') {
    throw new InvalidArgumentError(
      'conversion',
      `conversion must be 'improved' or 'classic', got ${String(conversion)}`,
    );
  }
  let best = Infinity;
  let bestOrder = NaN;
  for (let i = 0; i < orders.length; i++) {
    const r = rdp[i];
    if (!(r >= 0) || r === Infinity) continue;
    const e = epsilonAtOrder(orders[i], r, delta, conversion);
    if (e < best) {
      best = e;
      bestOrder = orders[i];
    }
  }
  return { epsilon: Math.max(0, best), order: bestOrder };
}

function checkRho(rho: number): void {
  if (typeof rho !== 'number' || !Number.isFinite(rho) || !(rho >= 0)) {
    throw new InvalidArgumentError('rho', `rho must be a finite number >= 0, got ${rho}`);
  }
}

/**
 * rho-zCDP to (epsilon, delta): the improved conversion applied to the RDP
 * curve alpha * rho, minimized over all real alpha > 1 (Canonne, Kamath,
 * Steinke 2020).
 */
export function zcdpToEpsilon(rho: number, delta: number): number {
  checkRho(rho);
  checkDelta(delta);
  if (rho === 0) return 0;
  const f = (a: number) => a * rho + Math.log1p(-1 / a) - (Math.log(delta) + Math.log(a)) / (a - 1);
  // The optimum is near 1 + sqrt(ln(1/delta)/rho); search a generous bracket in log(alpha - 1).
  const h = (t: number) => f(1 + Math.exp(t));
  const centre = Math.log(Math.sqrt(Math.log(1 / delta) / rho));
  const r = goldenSectionMin(h, centre - 12, centre + 6, 200, 1e-13);
  return Math.max(0, r.f);
}

/**
 * rho-zCDP to delta at a given epsilon (Canonne, Kamath, Steinke 2020):
 * delta = inf_{alpha > 1} exp((alpha-1)(alpha rho - eps)) / (alpha - 1) * (1 - 1/alpha)^alpha.
 */
export function zcdpToDelta(rho: number, epsilon: number): number {
  checkRho(rho);
  if (typeof epsilon !== 'number' || !Number.isFinite(epsilon) || !(epsilon >= 0)) {
    throw new InvalidArgumentError(
      'epsilon',
      `epsilon must be a finite number >= 0, got ${epsilon}`,
    );
  }
  if (rho === 0) return 0;
  const logDelta = (a: number) =>
    (a - 1) * (a * rho - epsilon) - Math.log(a - 1) + a * Math.log1p(-1 / a);
  const h = (t: number) => logDelta(1 + Math.exp(t));
  const centre = Math.log(Math.max(1e-6, (epsilon + rho) / (2 * rho)));
  const r = goldenSectionMin(h, centre - 20, centre + 6, 200, 1e-13);
  return Math.min(1, Math.exp(r.f));
}
