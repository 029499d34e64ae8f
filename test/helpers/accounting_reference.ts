/**
 * Independent plain-TypeScript references for the accounting tests: they
 * share no code with lib/accounting and use different methods (direct sums in
 * ordinary arithmetic and numerical quadrature instead of log-space series).
 */

/** Composite Simpson rule on [a, b] with n (even) intervals. */
export function simpson(f: (x: number) => number, a: number, b: number, n: number): number {
  const h = (b - a) / n;
  let s = f(a) + f(b);
  for (let i = 1; i < n; i++) s += (i % 2 ? 4 : 2) * f(a + i * h);
  return (s * h) / 3;
}

/** P(N(0,1) > x) by quadrature of the density on [x, x + 14] (x >= -8). */
export function normalTail(x: number, intervals = 6000): number {
  if (x < 0) return 1 - normalTail(-x, intervals);
  return simpson((t) => Math.exp(-0.5 * t * t) / Math.sqrt(2 * Math.PI), x, x + 14, intervals);
}

/** Integer-order A_alpha = sum_k C(a,k)(1-q)^(a-k) q^k e^{(k^2-k)/(2 z^2)} in plain arithmetic. */
export function integerA(q: number, z: number, alpha: number): number {
  let s = 0;
  let binom = 1;
  for (let k = 0; k <= alpha; k++) {
    if (k > 0) binom = (binom * (alpha - k + 1)) / k;
    s += binom * (1 - q) ** (alpha - k) * q ** k * Math.exp((k * k - k) / (2 * z * z));
  }
  return s;
}

/**
 * A_alpha = E_{x ~ N(0, z^2)} [(1 - q + q e^{(2x - 1)/(2 z^2)})^alpha] by
 * quadrature, valid for any real alpha > 1 (returns A - 1 to keep precision).
 */
export function quadratureAminus1(q: number, z: number, alpha: number): number {
  const f = (x: number) => {
    const ratio = 1 - q + q * Math.exp((2 * x - 1) / (2 * z * z));
    // (ratio^alpha - 1) computed stably
    const v = Math.expm1(alpha * Math.log(ratio));
    return (v * Math.exp((-x * x) / (2 * z * z))) / (z * Math.sqrt(2 * Math.PI));
  };
  const lo = -14 * z;
  const hi = alpha + 14 * z;
  return simpson(f, lo, hi, 40000);
}

/** RDP per step from the quadrature reference. */
export function quadratureRdp(q: number, z: number, alpha: number): number {
  return Math.log1p(quadratureAminus1(q, z, alpha)) / (alpha - 1);
}

/**
 * Exact delta(eps) of the Gaussian mechanism with mu = sensitivity / sigma
 * (Balle and Wang 2018): Phi(-eps/mu + mu/2) - e^eps Phi(-eps/mu - mu/2).
 */
export function gaussianDelta(mu: number, eps: number): number {
  return normalTail(eps / mu - mu / 2) - Math.exp(eps) * normalTail(eps / mu + mu / 2);
}

/** Exact eps(delta) of the Gaussian mechanism by bisection on gaussianDelta. */
export function gaussianEpsilon(mu: number, delta: number): number {
  let lo = 0;
  let hi = 1;
  while (gaussianDelta(mu, hi) > delta) hi *= 2;
  if (gaussianDelta(mu, 0) <= delta) return 0;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (gaussianDelta(mu, mid) > delta) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** Naive O(n^2) DFT (forward: e^{-2 pi i jk/n}). */
export function naiveDft(re: number[], im: number[]): { re: number[]; im: number[] } {
  const n = re.length;
  const or: number[] = [];
  const oi: number[] = [];
  for (let k = 0; k < n; k++) {
    let sr = 0;
    let si = 0;
    for (let j = 0; j < n; j++) {
      const a = (-2 * Math.PI * ((j * k) % n)) / n;
      sr += re[j] * Math.cos(a) - im[j] * Math.sin(a);
      si += re[j] * Math.sin(a) + im[j] * Math.cos(a);
    }
    or.push(sr);
    oi.push(si);
  }
  return { re: or, im: oi };
}

/** Deterministic xorshift32: uint32 words for test inputs (not for noise). */
export function xorshift32(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/** Deterministic xorshift32 uniform numbers in [0, 1) for test inputs. */
export function seededUniform(seed: number): () => number {
  const next = xorshift32(seed);
  return () => next() / 2 ** 32;
}
