/**
 * Renyi DP of the Poisson-subsampled Gaussian mechanism (Mironov, Talwar,
 * Zhang 2019, "Renyi Differential Privacy of the Sampled Gaussian Mechanism",
 * section 3.3), for integer and fractional orders, computed in log space.
 */
import { InvalidArgumentError } from '../errors';
import { SignedLogSum, logAbsBinomial, logAdd, logErfc, logSumExp } from './log_math';
import { requireNumber, requireObject } from '../validate';

/** The default Renyi orders: 1 + x/10 (x = 1..99), 11..63, 128, 256, 512, 1024. */
export const DEFAULT_ORDERS: readonly number[] = Object.freeze([
  ...Array.from({ length: 99 }, (_, i) => Math.round((1 + (i + 1) / 10) * 10) / 10),
  ...Array.from({ length: 53 }, (_, i) => 11 + i),
  128,
  256,
  512,
  1024,
]);

/**
 * log A_alpha for integer alpha:
 * A = sum_k C(alpha,k) (1-q)^(alpha-k) q^k exp((k^2-k)/(2 sigma^2)); all terms positive.
 */
function logAInteger(q: number, sigma: number, alpha: number): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  const inv2s2 = 1 / (2 * sigma * sigma);
  const terms = new Float64Array(alpha + 1);
  for (let k = 0; k <= alpha; k++) {
    terms[k] =
      logAbsBinomial(alpha, k).logAbs + k * logQ + (alpha - k) * log1mQ + (k * k - k) * inv2s2;
  }
  return logSumExp(terms);
}

/**
 * log A_alpha for fractional alpha (MTZ 2019, sec. 3.3): two series over i >= 0
 * with z0 = sigma^2 ln(1/q - 1) + 1/2,
 *   A0 = sum_i C(alpha,i) q^i (1-q)^(alpha-i) e^{(i^2-i)/(2s^2)} erfc((i - z0)/(sqrt2 s))/2
 *   A1 = sum_i C(alpha,i) q^(alpha-i) (1-q)^i e^{(j^2-j)/(2s^2)} erfc((z0 - j)/(sqrt2 s))/2, j = alpha - i,
 * and A = A0 + A1. The generalized binomials alternate in sign once i > alpha;
 * the signs are kept (no absolute values).
 *
 * Tail: past i > alpha the summands c_i = s0(i) + s1(i) alternate in sign with
 * smoothly decaying magnitude f(i). After stopping at n, the remainder
 * sum_{i > n} c_i is estimated by Boole's summation for alternating series,
 * (-1)^N [f(N)/2 - f'(N)/4 + ...] with N = n + 1 and f' by a central
 * difference, which leaves an error of order f'''(N)/48 (tiny), so the loop
 * can stop once the summands are below ~e^-18 instead of ~e^-30.
 */
function logAFractional(q: number, sigma: number, alpha: number): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  const s2 = sigma * sigma;
  const z0 = s2 * Math.log(1 / q - 1) + 0.5;
  const invSqrt2S = 1 / (Math.SQRT2 * sigma);
  const acc = new SignedLogSum();
  // Summands are compared with A - 1 ~ q^2, the part the RDP depends on.
  // Strict threshold: plain truncation of an alternating series with
  // decreasing terms (error below the first omitted term).
  const strict = Math.min(-30, 2 * logQ - 25);
  // Relaxed threshold: used with the Boole tail correction once the summands
  // decay smoothly (power law), past this index where both erfc factors are
  // in their asymptotic regime.
  const relaxed = Math.min(-18, 2 * logQ - 13);
  const smoothFrom = Math.max(alpha, z0, alpha - z0) + 6 * sigma + 3;
  // Binomial by recurrence: |C(a,i)| = |C(a,i-1)| * |a - i + 1| / i; the sign flips when a - i + 1 < 0.
  let logC = 0;
  let sign = 1;
  let i = 0;
  const advance = () => {
    i++;
    const f = alpha - i + 1;
    logC += Math.log(Math.abs(f)) - Math.log(i);
    if (f < 0) sign = -sign;
  };
  // log f(i) = log |c_i| at the current i.
  const logTerm = (): number => {
    const j = alpha - i;
    const logE0 = -Math.LN2 + logErfc((i - z0) * invSqrt2S);
    const logE1 = -Math.LN2 + logErfc((z0 - j) * invSqrt2S);
    const logS0 = logC + i * logQ + j * log1mQ + (i * i - i) / (2 * s2) + logE0;
    const logS1 = logC + j * logQ + i * log1mQ + (j * j - j) / (2 * s2) + logE1;
    return logAdd(logS0, logS1);
  };
  let lastLogF = logTerm();
  acc.add(sign, lastLogF);
  let boole = false;
  for (;;) {
    if (i > alpha + 1 && lastLogF < strict) break;
    if (i > smoothFrom && lastLogF < relaxed) {
      boole = true;
      break;
    }
    if (i > 5_000_000)
      throw new Error(`internal: RDP series did not converge (q=${q}, z=${sigma}, alpha=${alpha})`);
    advance();
    lastLogF = logTerm();
    acc.add(sign, lastLogF);
  }
  if (!boole) {
    if (acc.sign <= 0) throw new Error(`internal: non-positive A_alpha at alpha=${alpha}`);
    return acc.logAbs;
  }
  // Boole correction with N = i + 1: f(N)/2 - (f(N+1) - f(N-1))/8, with the sign of c_N.
  const fPrev = Math.exp(lastLogF);
  advance();
  const signN = sign;
  const fN = Math.exp(logTerm());
  advance();
  const fNext = Math.exp(logTerm());
  const correction = fN / 2 - (fNext - fPrev) / 8;
  if (correction > 0) acc.add(signN, Math.log(correction));
  else if (correction < 0) acc.add(-signN, Math.log(-correction));
  if (acc.sign <= 0) throw new Error(`internal: non-positive A_alpha at alpha=${alpha}`);
  return acc.logAbs;
}

/**
 * Per-step RDP of the Poisson-subsampled Gaussian at one order.
 * @param sampleRate q in [0, 1]
 * @param noiseMultiplier z > 0 (noise std / sensitivity)
 * @param order alpha > 1
 * @param integerOnly true for the discrete Gaussian: fractional orders give Infinity
 */
export function rdpPerStep(
  sampleRate: number,
  noiseMultiplier: number,
  order: number,
  integerOnly = false,
): number {
  const isInt = Number.isInteger(order);
  if (integerOnly && !isInt) return Infinity;
  if (sampleRate === 0) return 0;
  if (noiseMultiplier === Infinity) return 0;
  if (noiseMultiplier === 0) return Infinity;
  if (order === Infinity) return Infinity;
  if (sampleRate === 1) return order / (2 * noiseMultiplier * noiseMultiplier);
  const logA = isInt
    ? logAInteger(sampleRate, noiseMultiplier, order)
    : logAFractional(sampleRate, noiseMultiplier, order);
  return Math.max(0, logA / (order - 1));
}

/** Options of {@link computeRdp}. */
export interface ComputeRdpOptions {
  /** Poisson sampling rate q in [0, 1]. */
  sampleRate: number;
  /** Noise multiplier z (noise std divided by the L2 sensitivity), > 0. */
  noiseMultiplier: number;
  /** Number of compositions (>= 0). */
  steps: number;
  /** Renyi orders (> 1); defaults to {@link DEFAULT_ORDERS}. */
  orders?: readonly number[];
  /** 'discreteGaussian' restricts to integer orders (fractional ones give Infinity). */
  mechanism?: 'gaussian' | 'discreteGaussian';
}

/**
 * RDP of `steps` compositions of the Poisson-subsampled Gaussian mechanism at
 * every order. For the discrete Gaussian only integer orders are finite
 * (there the subsampled discrete and continuous Gaussians agree).
 * @returns a Float64Array aligned with `orders`
 */
export function computeRdp(opts: ComputeRdpOptions): Float64Array {
  requireObject('opts', opts);
  const { sampleRate: q, noiseMultiplier: z, steps } = opts;
  const orders = opts.orders ?? DEFAULT_ORDERS;
  requireNumber('sampleRate', q, { min: 0, max: 1 });
  requireNumber('noiseMultiplier', z, { greaterThan: 0, allowInfinite: true });
  requireNumber('steps', steps, { min: 0 });
  checkOrders(orders);
  const integerOnly = opts.mechanism === 'discreteGaussian';
  const out = new Float64Array(orders.length);
  for (let i = 0; i < orders.length; i++) {
    const r = rdpPerStep(q, z, orders[i], integerOnly);
    out[i] = steps === 0 ? 0 : r * steps;
  }
  return out;
}

/** Largest RDP order accepted (larger orders never give a tighter epsilon in practice). */
export const MAX_RDP_ORDER = 10000;
/** Most orders one call accepts. */
export const MAX_RDP_ORDERS = 4096;

/** Throws an InvalidArgumentError naming `orders` unless every order is a finite number > 1. */
export function checkOrders(orders: readonly number[]): void {
  if (!Array.isArray(orders) && !(orders instanceof Float64Array)) {
    throw new InvalidArgumentError('orders', 'orders must be an array of numbers > 1');
  }
  if (orders.length === 0) throw new InvalidArgumentError('orders', 'orders must not be empty');
  if (orders.length > MAX_RDP_ORDERS)
    throw new InvalidArgumentError(
      'orders',
      `at most ${MAX_RDP_ORDERS} orders, got ${orders.length}`,
    );
  // The cost of an order grows with it (integer orders sum alpha terms): bounded.
  for (const a of orders) requireNumber('orders', a, { greaterThan: 1, max: MAX_RDP_ORDER });
}
