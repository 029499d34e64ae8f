/**
 * Log-space arithmetic and special functions for the accountants:
 * log-add, signed log sums, log-gamma, erfc / log erfc and normal tails.
 * Everything here is plain double precision with no dependencies.
 */

const LOG_SQRT_PI = 0.5 * Math.log(Math.PI);
const SQRT1_2 = Math.SQRT1_2;

/** log(e^a + e^b), exact for -Infinity arguments. */
export function logAdd(a: number, b: number): number {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  return a > b ? a + Math.log1p(Math.exp(b - a)) : b + Math.log1p(Math.exp(a - b));
}

/** log(e^a - e^b) for a >= b (returns -Infinity when a == b, NaN when a < b). */
export function logSub(a: number, b: number): number {
  if (b === -Infinity) return a;
  if (a < b) return NaN;
  if (a === b) return -Infinity;
  const d = b - a; // < 0
  // log(1 - e^d): use log(-expm1(d)) near 0 and log1p(-exp(d)) far from it.
  return a + (d > -Math.LN2 ? Math.log(-Math.expm1(d)) : Math.log1p(-Math.exp(d)));
}

/** log(sum_i e^{x_i}) with the usual max shift. */
export function logSumExp(xs: ArrayLike<number>): number {
  let m = -Infinity;
  for (let i = 0; i < xs.length; i++) if (xs[i] > m) m = xs[i];
  if (m === -Infinity || m === Infinity) return m;
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += Math.exp(xs[i] - m);
  return m + Math.log(s);
}

/**
 * A signed number stored as (sign, log|value|), for sums whose terms have
 * both signs and whose magnitudes under- or overflow doubles.
 */
export class SignedLogSum {
  /** +1, -1 or 0 (0 means the value is exactly zero). */
  sign = 0;
  /** log of the absolute value (-Infinity for zero). */
  logAbs = -Infinity;

  /** Adds sign * e^logTerm. */
  add(sign: number, logTerm: number): void {
    if (logTerm === -Infinity || sign === 0) return;
    if (this.sign === 0) {
      this.sign = sign;
      this.logAbs = logTerm;
    } else if (this.sign === sign) {
      this.logAbs = logAdd(this.logAbs, logTerm);
    } else if (this.logAbs > logTerm) {
      this.logAbs = logSub(this.logAbs, logTerm);
    } else if (this.logAbs < logTerm) {
      this.logAbs = logSub(logTerm, this.logAbs);
      this.sign = sign;
    } else {
      this.sign = 0;
      this.logAbs = -Infinity;
    }
  }
}

// Stirling series coefficients B_{2k} / (2k (2k-1)) for k = 1..8.
const STIRLING = [
  1 / 12,
  -1 / 360,
  1 / 1260,
  -1 / 1680,
  1 / 1188,
  -691 / 360360,
  1 / 156,
  -3617 / 122400,
];

/**
 * log|Gamma(x)| for real x (not a non-positive integer). Uses the Stirling
 * series for x >= 15, the recurrence Gamma(x+1) = x Gamma(x) below it, and the
 * reflection formula for x < 0.5.
 */
export function logGamma(x: number): number {
  if (!Number.isFinite(x)) return x === Infinity ? Infinity : NaN;
  if (x < 0.5) {
    if (Number.isInteger(x)) return Infinity;
    // Gamma(x) Gamma(1-x) = pi / sin(pi x)
    return Math.log(Math.PI) - Math.log(Math.abs(sinPi(x))) - logGamma(1 - x);
  }
  let shift = 0;
  let y = x;
  let prod = 1;
  while (y < 15) {
    prod *= y;
    y += 1;
    if (prod > 1e280) {
      shift += Math.log(prod);
      prod = 1;
    }
  }
  shift += Math.log(prod);
  const inv = 1 / y;
  const inv2 = inv * inv;
  let series = 0;
  let p = inv;
  for (let k = 0; k < STIRLING.length; k++) {
    series += STIRLING[k] * p;
    p *= inv2;
  }
  return (y - 0.5) * Math.log(y) - y + 0.5 * Math.log(2 * Math.PI) + series - shift;
}

/** sin(pi x) with exact zeros at integers and good accuracy for large |x|. */
function sinPi(x: number): number {
  const r = x - 2 * Math.round(x / 2); // r in [-1, 1]
  if (r === 0 || r === 1 || r === -1) return 0;
  return Math.sin(Math.PI * r);
}

/** Sign of Gamma(x) for real x that is not a non-positive integer. */
export function gammaSign(x: number): number {
  if (x > 0) return 1;
  return Math.ceil(-x) % 2 === 1 ? -1 : 1;
}

/**
 * Generalized binomial coefficient C(alpha, k) for real alpha > -1 and integer
 * k >= 0, as { sign, logAbs }. Sign is 0 (logAbs -Infinity) for integer alpha < k.
 */
export function logAbsBinomial(alpha: number, k: number): { sign: number; logAbs: number } {
  const r = alpha - k + 1;
  if (r <= 0 && Number.isInteger(r)) return { sign: 0, logAbs: -Infinity };
  return {
    sign: gammaSign(r),
    logAbs: logGamma(alpha + 1) - logGamma(k + 1) - logGamma(r),
  };
}

// erf(x) = 2/sqrt(pi) * x e^{-x^2} * sum_n (2x^2)^n / (1*3*...*(2n+1)): positive terms.
function erfSeries(x: number): number {
  const x2 = x * x;
  const twoX2 = 2 * x2;
  let term = 1;
  let sum = 1;
  for (let n = 1; n < 200; n++) {
    term *= twoX2 / (2 * n + 1);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return (2 / Math.sqrt(Math.PI)) * x * Math.exp(-x2) * sum;
}

/**
 * The continued fraction value f(x) with erfc(x) = e^{-x^2} / (sqrt(pi) f(x)),
 * f = x + (1/2)/(x + 1/(x + (3/2)/(x + ...))), evaluated by Lentz's method (x > 0).
 */
function erfcFraction(x: number): number {
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let k = 1; k < 5000; k++) {
    const a = k / 2;
    d = x + a * d;
    d = d === 0 ? tiny : d;
    c = x + a / c;
    c = c === 0 ? tiny : c;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return f;
}

/**
 * log erfc(x) - (-x^2 - log(x sqrt(pi))) for large x, by the asymptotic series
 * erfc(x) ~ e^{-x^2}/(x sqrt(pi)) * sum_n (-1)^n (2n-1)!! / (2x^2)^n.
 */
function logErfcAsymptoticCorrection(x: number): number {
  const u = 1 / (2 * x * x);
  let term = 1;
  let sum = 1;
  for (let n = 1; n < 40; n++) {
    const next = -term * (2 * n - 1) * u;
    if (Math.abs(next) >= Math.abs(term)) break; // the series has started to diverge
    term = next;
    sum += term;
    if (Math.abs(term) < 1e-17) break;
  }
  return Math.log(sum);
}

const ERFC_SERIES_MAX = 0.5;
const ERFC_ASYMPTOTIC_MIN = 20;
const CHEB_LO = 0.5;
const CHEB_HI = 8.5;
const CHEB_WIDTH = 0.5;
const CHEB_DEGREE = 14;

/**
 * Slow reference for erfc on x >= 0: the positive-term erf series below 1.5,
 * the continued fraction above (relative accuracy ~1e-15 throughout).
 */
export function erfcReference(x: number): number {
  if (x < 0) return 2 - erfcReference(-x);
  if (x < 1.5) return 1 - erfSeries(x);
  if (x > 27.3) return 0;
  return Math.exp(-x * x) / (Math.sqrt(Math.PI) * erfcFraction(x));
}

/**
 * Chebyshev interpolants of erfcx(x) = e^{x^2} erfc(x) on consecutive
 * intervals of width 0.5 covering [0.5, 8.5), fitted once at load time from
 * the reference above.
 */
const chebCoefs: Float64Array = (() => {
  const out: number[] = [];
  const m = CHEB_DEGREE + 1;
  for (let a = CHEB_LO; a < CHEB_HI - 1e-12; a += CHEB_WIDTH) {
    const f = new Float64Array(m);
    for (let j = 0; j < m; j++) {
      const t = Math.cos((Math.PI * (j + 0.5)) / m);
      const x = a + (t + 1) * 0.5 * CHEB_WIDTH;
      // erfcx via the reference, in a form that avoids underflow.
      f[j] =
        x < 1.5 ? Math.exp(x * x) * erfcReference(x) : 1 / (Math.sqrt(Math.PI) * erfcFraction(x));
    }
    const c = new Float64Array(m);
    for (let k = 0; k < m; k++) {
      let s = 0;
      for (let j = 0; j < m; j++) s += f[j] * Math.cos((Math.PI * k * (j + 0.5)) / m);
      c[k] = (2 / m) * s;
    }
    out.push(...c);
  }
  return Float64Array.from(out);
})();

/** erfcx(x) = e^{x^2} erfc(x) for x in [0.5, 8.5) by Clenshaw evaluation. */
function erfcxCheb(x: number): number {
  const idx = Math.floor((x - CHEB_LO) / CHEB_WIDTH);
  const base = idx * (CHEB_DEGREE + 1);
  const a = CHEB_LO + idx * CHEB_WIDTH;
  const t = (2 * (x - a)) / CHEB_WIDTH - 1;
  const t2 = 2 * t;
  let b1 = 0;
  let b2 = 0;
  for (let k = CHEB_DEGREE; k >= 1; k--) {
    const b0 = t2 * b1 - b2 + chebCoefs[base + k];
    b2 = b1;
    b1 = b0;
  }
  return t * b1 - b2 + 0.5 * chebCoefs[base];
}

/** Complementary error function erfc(x) = 1 - erf(x), accurate to ~1e-14 relative. */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return 2 - erfc(-x);
  if (x < ERFC_SERIES_MAX) return 1 - erfSeries(x);
  if (x < CHEB_HI) return Math.exp(-x * x) * erfcxCheb(x);
  if (x > 27.3) return 0; // below the smallest subnormal
  return Math.exp(-x * x) / (Math.sqrt(Math.PI) * erfcFraction(x));
}

/** log(erfc(x)) for any real x, without underflow for large x. */
export function logErfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) {
    if (x === -Infinity) return Math.LN2;
    return Math.LN2 + Math.log1p(-0.5 * erfc(-x));
  }
  if (x < ERFC_SERIES_MAX) return Math.log(erfc(x));
  if (x < CHEB_HI) return -x * x + Math.log(erfcxCheb(x));
  if (x === Infinity) return -Infinity;
  if (x >= ERFC_ASYMPTOTIC_MIN)
    return -x * x - Math.log(x) - LOG_SQRT_PI + logErfcAsymptoticCorrection(x);
  return -x * x - LOG_SQRT_PI - Math.log(erfcFraction(x));
}

/** Standard normal upper tail P(N(0,1) > t). */
export function normalSf(t: number): number {
  return 0.5 * erfc(t * SQRT1_2);
}

/** Standard normal CDF P(N(0,1) <= t). */
export function normalCdf(t: number): number {
  return 0.5 * erfc(-t * SQRT1_2);
}
