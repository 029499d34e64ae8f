/**
 * Privacy loss distributions (PLD) of the Poisson-subsampled Gaussian, their
 * pessimistic discretization on a uniform loss grid, and their composition by
 * FFT.
 *
 * A dominating pair (P, Q) has privacy loss L = ln(dP/dQ) and hockey-stick
 * curve delta(eps) = E_{X~P}[(1 - e^{eps - L(X)})_+] (+ the P-mass where Q = 0).
 * Under add/remove adjacency the subsampled Gaussian has two pairs:
 *   remove: P = (1-q) N(0, s^2) + q N(1, s^2), Q = N(0, s^2)
 *   add:    P = N(0, s^2), Q = (1-q) N(0, s^2) + q N(1, s^2)
 * and the composition of T steps is bounded by the worse of the two T-fold
 * compositions.
 *
 * Discretization ("connect the dots", Doroshenko et al. 2022): on grid points
 * l_0 < ... < l_n (spacing h) we keep delta(l_i) exact and interpolate
 * delta linearly in e^eps in between. As delta is convex in e^eps, the
 * interpolant lies above the true curve everywhere, and it is itself the
 * curve of a discrete pair supported on the grid, so composing the discrete
 * pairs gives an upper bound on the true composed delta. Concretely, the
 * Q-mass of each bin (l_i, l_{i+1}] is split between its two endpoints so that
 * the bin's P-mass is preserved; the P-mass below l_0 moves up to l_0, the
 * Q-mass above l_n sits at l_n and the rest of the P-mass above l_n, which is
 * delta(l_n), becomes mass at +infinity (charged to delta in full).
 *
 * Composition multiplies DFTs (each event's transform raised to its count by
 * repeated squaring) on a cyclic window of N grid points. The window is chosen
 * with Chernoff bounds from the discrete distributions' moment generating
 * functions so that the mass outside it is at most 2 * windowTail; that mass
 * may alias into the window, so it is added to delta in full as well.
 */
import { fft, nextPowerOfTwo } from './fft';
import { logAdd, normalCdf, normalSf } from './log_math';
import { goldenSectionMin } from './golden_section';
import { InvalidArgumentError } from '../errors';

/** The neighbouring relation of a dominating pair. */
export type Relation = 'add' | 'remove';

/** A discrete PLD on the grid l = k * gridStep: P-masses from grid index `offset` on. */
export interface DiscretePld {
  /** Grid index of mass[0]. */
  offset: number;
  /** P-masses at consecutive grid points. */
  mass: Float64Array;
  /** P-mass at +infinity. */
  infMass: number;
}

/** Parameters of the PLD accountant. */
export interface PldParameters {
  /** Spacing of the privacy-loss grid (default 1e-4). */
  gridStep: number;
  /** Per-step Gaussian tail mass beyond the discretized range, each side (default 1e-20). */
  tailMass: number;
  /** Chernoff tail bound for each side of the composition window (default 1e-18). */
  windowTail: number;
  /** Largest FFT length allowed (default 2^22). */
  maxFftLength: number;
}

/** Default PLD parameters. */
export const DEFAULT_PLD_PARAMETERS: Readonly<PldParameters> = Object.freeze({
  gridStep: 1e-4,
  tailMass: 1e-20,
  windowTail: 1e-18,
  maxFftLength: 1 << 22,
});

const pool = new Map<string, Float64Array>();

/**
 * A reusable zero-filled scratch array (one per name), so repeated
 * evaluations (calibration) do not churn the garbage collector with
 * megabyte-sized arrays. Callers must not keep the result.
 */
function scratch(name: string, length: number): Float64Array {
  let buf = pool.get(name);
  if (!buf || buf.length < length || buf.length > 4 * length) {
    buf = new Float64Array(length);
    pool.set(name, buf);
    return buf;
  }
  const view = buf.subarray(0, length);
  view.fill(0);
  return view;
}

/** Gaussian quantile c with P(N(0,1) > c) = tail (bisection; tail in (0, 0.5)). */
function upperQuantile(tail: number): number {
  let lo = 0;
  let hi = 40;
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2;
    if (normalSf(mid) > tail) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** ln(1 - q + q e^u), stable for large u and q = 1. */
function logMixtureRatio(q: number, u: number): number {
  return logAdd(Math.log1p(-q), Math.log(q) + u);
}

/**
 * Tails (P(L > l), Q(L > l)) of the subsampled Gaussian pair, written into
 * pt[i], qt[i] for l = (k0 + i) h, i = 0..n.
 */
function tails(
  q: number,
  s: number,
  rel: Relation,
  k0: number,
  n: number,
  h: number,
  pt: Float64Array,
  qt: Float64Array,
): void {
  const s2 = s * s;
  for (let i = 0; i <= n; i++) {
    const l = (k0 + i) * h;
    if (rel === 'remove') {
      // L(x) = ln(1-q + q e^{(2x-1)/(2 s^2)}) increasing; L > l <=> x > x_l.
      const arg = Math.expm1(l) / q; // (e^l - (1-q))/q - 1
      if (!(arg > -1)) {
        pt[i] = 1;
        qt[i] = 1;
        continue;
      }
      const x = s2 * Math.log1p(arg) + 0.5;
      const q0 = normalSf(x / s);
      pt[i] = (1 - q) * q0 + q * normalSf((x - 1) / s);
      qt[i] = q0;
    } else {
      // L(x) = -ln(1-q + q e^{(2x-1)/(2 s^2)}) decreasing; L > l <=> x < x_l.
      const arg = Math.expm1(-l) / q;
      if (!(arg > -1)) {
        pt[i] = 0;
        qt[i] = 0;
        continue;
      }
      const x = s2 * Math.log1p(arg) + 0.5;
      const p0 = normalCdf(x / s);
      pt[i] = p0;
      qt[i] = (1 - q) * p0 + q * normalCdf((x - 1) / s);
    }
  }
}

/**
 * Grid points one step of the Poisson-subsampled Gaussian (rate q, noise multiplier s) needs on
 * the grid of `params` (the larger of the two relations), computed without allocating: a cheap
 * test of whether PLD accounting at this noise is feasible.
 */
export function pldStepGridPoints(q: number, s: number, params: PldParameters): number {
  const h = params.gridStep;
  const c = upperQuantile(params.tailMass);
  const u = (x: number) => (2 * x - 1) / (2 * s * s);
  const a = logMixtureRatio(q, u(-c * s));
  const b = logMixtureRatio(q, u(1 + c * s));
  const width = Math.max(b - a, Math.abs(-a - -b));
  return Math.ceil(width / h) + 2;
}

/**
 * Pessimistic ("connect the dots") discretization of one step of the
 * Poisson-subsampled Gaussian with sampling rate q and noise multiplier s.
 */
export function discretizeSubsampledGaussian(
  q: number,
  s: number,
  rel: Relation,
  params: PldParameters,
): DiscretePld {
  const h = params.gridStep;
  const c = upperQuantile(params.tailMass);
  const u = (x: number) => (2 * x - 1) / (2 * s * s);
  const xLo = -c * s;
  const xHi = 1 + c * s;
  let lLo: number;
  let lHi: number;
  if (rel === 'remove') {
    lLo = logMixtureRatio(q, u(xLo));
    lHi = logMixtureRatio(q, u(xHi));
  } else {
    lLo = -logMixtureRatio(q, u(xHi));
    lHi = -logMixtureRatio(q, u(xLo));
  }
  const k0 = Math.floor(lLo / h);
  const k1 = Math.max(k0 + 1, Math.ceil(lHi / h));
  const n = k1 - k0;
  if (n + 1 > params.maxFftLength) {
    throw new InvalidArgumentError(
      'gridStep',
      `gridStep ${h} is too fine for noiseMultiplier ${s}: one step needs ${n + 1} grid points (more than ${params.maxFftLength}); use a larger gridStep or the RDP accountant`,
    );
  }
  const pt = scratch('pt', n + 1);
  const qt = scratch('qt', n + 1);
  tails(q, s, rel, k0, n, h, pt, qt);
  const qm = scratch('qm', n + 1); // Q-mass at each grid point
  const ys = scratch('y', n + 1); // e^{l_i}
  for (let i = 0; i <= n; i++) ys[i] = Math.exp((k0 + i) * h);
  const em1h = Math.expm1(h);
  for (let i = 0; i < n; i++) {
    const pb = Math.max(0, pt[i] - pt[i + 1]);
    const qb = Math.max(0, qt[i] - qt[i + 1]);
    if (pb === 0 && qb === 0) continue;
    const y = ys[i];
    const dy = y * em1h;
    if (qb === 0) {
      // Only rounding can produce this; keep it pessimistic: all at the upper endpoint.
      qm[i + 1] += pb / (y + dy);
      continue;
    }
    let theta = (pb - y * qb) / (dy * qb);
    theta = theta < 0 ? 0 : theta > 1 ? 1 : theta;
    qm[i] += (1 - theta) * qb;
    qm[i + 1] += theta * qb;
  }
  qm[n] += qt[n];
  const mass = new Float64Array(n + 1);
  for (let i = 0; i <= n; i++) mass[i] = ys[i] * qm[i];
  mass[0] += Math.max(0, 1 - pt[0]);
  const yTop = Math.exp(k1 * h);
  const infMass = Math.max(0, pt[n] - yTop * qt[n]);
  return trimZeros({ offset: k0, mass, infMass });
}

function trimZeros(p: DiscretePld): DiscretePld {
  let a = 0;
  let b = p.mass.length;
  while (a < b - 1 && p.mass[a] === 0) a++;
  while (b > a + 1 && p.mass[b - 1] === 0) b--;
  if (a === 0 && b === p.mass.length) return p;
  return { offset: p.offset + a, mass: p.mass.slice(a, b), infMass: p.infMass };
}

/**
 * ln sum_i m_i e^{lambda (l0 + i step)}, by a Horner recurrence with
 * rescaling (no exp per element, no overflow).
 */
function logMgfGrid(m: Float64Array, l0: number, step: number, lambda: number): number {
  const n = m.length;
  const r = Math.exp(Math.abs(lambda) * step);
  let s = 0;
  let invScale = 1;
  let logScale = 0;
  if (lambda >= 0) {
    // s = sum_i m_i r^i (weights grow with i): Horner from the top.
    for (let i = n - 1; i >= 0; i--) {
      s = s * r + m[i] * invScale;
      if (s > 1e200) {
        s *= 1e-200;
        invScale *= 1e-200;
        logScale += 200 * Math.LN10;
      }
    }
    return Math.log(s) + logScale + lambda * l0;
  }
  // s = sum_i m_i r^(n-1-i) = sum_i m_i e^{lambda step (i - (n-1))}: Horner from the bottom.
  for (let i = 0; i < n; i++) {
    s = s * r + m[i] * invScale;
    if (s > 1e200) {
      s *= 1e-200;
      invScale *= 1e-200;
      logScale += 200 * Math.LN10;
    }
  }
  return Math.log(s) + logScale + lambda * (l0 + (n - 1) * step);
}

/**
 * A coarse copy of a PLD for Chernoff bounds: blocks of `factor` grid points,
 * each block's mass placed at its upper end (side +1, for lambda > 0) or lower
 * end (side -1, for lambda < 0). Moving mass that way can only increase
 * E[e^{lambda L}], so tail bounds computed from the copy remain valid.
 */
function coarsen(
  p: DiscretePld,
  h: number,
  factor: number,
  side: 1 | -1,
): { m: Float64Array; l0: number; step: number } {
  const nb = Math.ceil(p.mass.length / factor);
  const m = new Float64Array(nb);
  for (let i = 0; i < p.mass.length; i++) m[Math.floor(i / factor)] += p.mass[i];
  const l0 = (p.offset + (side > 0 ? factor - 1 : 0)) * h;
  return { m, l0, step: factor * h };
}

/** One component of a composition: a per-step PLD and how often it is applied. */
export interface PldComponent {
  /** The per-step PLD. */
  pld: DiscretePld;
  /** How many times it is composed. */
  count: number;
}

/** The composed PLD: masses at grid indices start .. start + N - 1, plus delta charges. */
export interface ComposedPld {
  /** Spacing of the privacy-loss grid. */
  gridStep: number;
  /** Grid index of mass[0]. */
  start: number;
  /** P-masses at consecutive grid points. */
  mass: Float64Array;
  /** P-mass at +infinity of the composition. */
  infMass: number;
  /** Bound on the mass that fell outside the cyclic window. */
  aliasMass: number;
  /** Allowance for floating-point rounding in the FFT. */
  roundingAllowance: number;
}

/** Chernoff window [A, A + N) (grid indices) of one channel, before rounding N up. */
function chernoffWindow(
  components: readonly PldComponent[],
  params: PldParameters,
): { A: number; B: number; minSum: number; maxSum: number } {
  const h = params.gridStep;
  const logTau = Math.log(params.windowTail);
  // Coarse copies make each bound evaluation cheaper. Moving every step's mass
  // up (down) by less than `factor` grid points shifts the composed bound by
  // at most count * factor * h, so the factor is kept to a 1/8 of a standard
  // deviation of the composition.
  const factorOf = (c: PldComponent) => {
    let m1 = 0;
    let m2 = 0;
    const { mass, offset } = c.pld;
    for (let i = 0; i < mass.length; i++) {
      const l = (offset + i) * h;
      m1 += mass[i] * l;
      m2 += mass[i] * l * l;
    }
    const sd = Math.sqrt(Math.max(0, m2 - m1 * m1) * c.count);
    return Math.max(
      1,
      Math.min(Math.floor(mass.length / 256), Math.floor((0.125 * sd) / (c.count * h))),
    );
  };
  const factors = components.map(factorOf);
  const up = components.map((c, i) => coarsen(c.pld, h, factors[i], 1));
  const down = components.map((c, i) => coarsen(c.pld, h, factors[i], -1));
  const K = (lambda: number) => {
    const cs = lambda >= 0 ? up : down;
    let s = 0;
    for (let i = 0; i < components.length; i++)
      s += components[i].count * logMgfGrid(cs[i].m, cs[i].l0, cs[i].step, lambda);
    return s;
  };
  let minSum = 0;
  let maxSum = 0;
  for (const c of components) {
    minSum += c.count * c.pld.offset;
    maxSum += c.count * (c.pld.offset + c.pld.mass.length - 1);
  }
  // Upper edge b: P(S >= b) <= exp(K(lam) - lam b) = tau  =>  b = (K(lam) - ln tau)/lam.
  // Lower edge a: P(S <= a) <= exp(K(-lam) + lam a) = tau  =>  a = (ln tau - K(-lam))/lam.
  // Any lam gives a valid bound; golden-section search in ln(lam) finds a good one.
  const lo = Math.log(1e-3);
  const hi = Math.log(1e4);
  const bHi = goldenSectionMin((t) => (K(Math.exp(t)) - logTau) / Math.exp(t), lo, hi, 16).f;
  const aLo = -goldenSectionMin((t) => -(logTau - K(-Math.exp(t))) / Math.exp(t), lo, hi, 16).f;
  const A = Math.max(minSum, Math.floor(aLo / h));
  const B = Math.min(maxSum, Math.max(A, Math.ceil(bHi / h)));
  return { A, B, minSum, maxSum };
}

/**
 * FFT length the composition of `channels` needs on their grid (a power of two; compare it with
 * params.maxFftLength before composing), from the same Chernoff window {@link composePlds} uses.
 */
export function composedWindowLength(
  channels: readonly (readonly PldComponent[])[],
  params: PldParameters,
): number {
  let N = 2;
  for (const ch of channels) {
    const w = chernoffWindow(ch, params);
    N = Math.max(N, nextPowerOfTwo(w.B - w.A + 1));
  }
  return N;
}

/** Writes the masses of `pld` into `out` at positions (grid index mod N). */
function placeCyclic(pld: DiscretePld, out: Float64Array): void {
  const N = out.length;
  const { offset, mass } = pld;
  let k = ((offset % N) + N) % N;
  for (let i = 0; i < mass.length; i++) {
    out[k] += mass[i];
    k = k + 1 === N ? 0 : k + 1;
  }
}

/**
 * Multiplies `re[k] + i im[k]` in place by `(br + i bi)^count` (count >= 1), raising by
 * repeated squaring.
 */
function mulComplexPow(
  re: Float64Array,
  im: Float64Array,
  k: number,
  br: number,
  bi: number,
  count: number,
): void {
  let pr = re[k];
  let pi = im[k];
  for (let e = count; ;) {
    if (e % 2 === 1) {
      const t = pr * br - pi * bi;
      pi = pr * bi + pi * br;
      pr = t;
    }
    e = Math.floor(e / 2);
    if (e === 0) break;
    const t = br * br - bi * bi;
    bi = 2 * br * bi;
    br = t;
  }
  re[k] = pr;
  im[k] = pi;
}

/**
 * Rounding of one radix-2 butterfly level relative to the magnitudes it combines: a complex
 * multiply by a rounded twiddle (about 2.83 u + u) and an add (u), with a margin.
 */
const FFT_ETA = 8 * 2 ** -53;

/**
 * About the rounding allowance one composed step adds to delta in a composition by FFTs of up to
 * `maxFftLength` points (half the zero-frequency term of the bound charged by composePlds, whose
 * magnitude is about 1): a cheap test of whether a very long composition can be certified.
 */
export function pldRoundingPerStep(maxFftLength: number): number {
  return 2 * FFT_ETA * (Math.log2(Math.max(2, maxFftLength)) + 2) * 0.5;
}

/**
 * Updates the rounding bound of one frequency of a running product when it is multiplied by a
 * computed base of magnitude `a` (true magnitude within `gamma` of it and at most 1) raised to
 * `count`. `logBound[k]` is the log of a bound B on the magnitudes of both the computed and the
 * true running product; `errRel[k]` bounds |computed - true| / B. For x, y with |x - y| <= gamma
 * and both of magnitude at most m: |x^n - y^n| <= n gamma m^(n-1), and repeated squaring adds a
 * relative rounding of about 4 n u; a product adds the relative errors of its factors.
 */
function accumulatePowerError(
  errRel: Float64Array,
  logBound: Float64Array,
  k: number,
  a: number,
  count: number,
  gamma: number,
): void {
  const m = Math.max(a, Math.min(1, a + gamma));
  const U = 2 ** -53;
  // n gamma m^(n-1) relative to m^n, plus the squaring and product rounding.
  const rel = m > 0 ? (count * gamma) / m + 4 * (count + 2) * U : 0;
  const lb = m > 0 ? count * Math.log(m) : -Infinity;
  // Relative errors add to first order; (1 + e1)(1 + e2) - 1 keeps the product term.
  errRel[k] = errRel[k] + rel + errRel[k] * rel;
  logBound[k] += lb;
}

/**
 * Composes one or two channels of per-step PLDs (channel c, component g
 * applied channels[c][g].count times) by FFT. Two real channels share each
 * complex transform (one in the real part, one in the imaginary part), so the
 * add and remove relations cost one forward transform per component and one
 * inverse transform in all.
 * @throws RangeError when the window would exceed params.maxFftLength
 */
export function composePlds(
  channels: readonly (readonly PldComponent[])[],
  params: PldParameters,
): ComposedPld[] {
  if (channels.length < 1 || channels.length > 2)
    throw new InvalidArgumentError('channels', 'composePlds takes one or two channels');
  const h = params.gridStep;
  const windows = channels.map((ch) => chernoffWindow(ch, params));
  let N = 2;
  for (const w of windows) N = Math.max(N, nextPowerOfTwo(w.B - w.A + 1));
  if (N > params.maxFftLength) {
    throw new InvalidArgumentError(
      'gridStep',
      `the composed privacy loss needs an FFT of length ${N} (more than ${params.maxFftLength}); use a larger gridStep or the RDP accountant`,
    );
  }
  const G = channels[0].length;
  for (const ch of channels) {
    if (ch.length !== G)
      throw new InvalidArgumentError(
        'channels',
        'composePlds: channels must have the same components',
      );
  }
  const half = N >> 1;
  // Half spectra (k = 0..N/2) of the running products, per channel.
  const accRe = channels.map((_, c) => scratch(`accRe${c}`, half + 1).fill(1));
  const accIm = channels.map((_, c) => scratch(`accIm${c}`, half + 1));
  // Rounding bound of the spectral powers, per channel and frequency (see spectralError).
  const errRel = channels.map((_, c) => scratch(`errRel${c}`, half + 1));
  const logBound = channels.map((_, c) => scratch(`logBound${c}`, half + 1));
  // Componentwise error of one forward transform of unit-mass inputs: every output is reached
  // through log2 N butterfly levels whose nodes partition the input, each level adding at most
  // ETA times the l1 norm of the input (at most 2: two packed channels); +2 levels for the split
  // of the packed spectrum and the placement.
  const gamma = 2 * FFT_ETA * (Math.log2(N) + 2);
  const re = scratch('re', N);
  const im = scratch('im', N);
  for (let g = 0; g < G; g++) {
    re.fill(0);
    im.fill(0);
    placeCyclic(channels[0][g].pld, re);
    if (channels.length === 2) {
      if (channels[1][g].count !== channels[0][g].count)
        throw new InvalidArgumentError('channels', 'composePlds: channel counts differ');
      placeCyclic(channels[1][g].pld, im);
    }
    fft(re, im, false);
    const count = channels[0][g].count;
    const xr = accRe[0];
    const xi = accIm[0];
    const yr = accRe[channels.length - 1];
    const yi = accIm[channels.length - 1];
    const two = channels.length === 2;
    for (let k = 0; k <= half; k++) {
      const nk = k === 0 ? 0 : N - k;
      const a = re[k];
      const b = im[k];
      const c = re[nk];
      const d = im[nk];
      // X = FFT of the real part, Y = FFT of the imaginary part; raise each
      // to `count` by repeated squaring and multiply into the running products.
      const x0 = (a + c) / 2;
      const x1 = (b - d) / 2;
      mulComplexPow(xr, xi, k, x0, x1, count);
      accumulatePowerError(errRel[0], logBound[0], k, Math.hypot(x0, x1), count, gamma);
      if (two) {
        const y0 = (b + d) / 2;
        const y1 = (c - a) / 2;
        mulComplexPow(yr, yi, k, y0, y1, count);
        accumulatePowerError(errRel[1], logBound[1], k, Math.hypot(y0, y1), count, gamma);
      }
    }
  }
  // 2-norms over the full spectrum (both halves) of the composed spectra's error bounds and of
  // bounds on the spectra themselves, summed over the channels packed into one transform.
  let spectralError = 0;
  let spectrumNorm = 0;
  for (let c = 0; c < channels.length; c++) {
    let e2 = 0;
    let b2 = 0;
    for (let k = 0; k <= half; k++) {
      const w = k === 0 || k === half ? 1 : 2;
      const bound = Math.exp(logBound[c][k]);
      const err = errRel[c][k] * bound;
      e2 += w * err * err;
      b2 += w * bound * bound;
    }
    spectralError += Math.sqrt(e2);
    spectrumNorm += Math.sqrt(b2);
  }
  // W = X + i Y on the full spectrum, using X_{N-k} = conj(X_k).
  const two = channels.length === 2;
  for (let k = 0; k < N; k++) {
    const src = k <= half ? k : N - k;
    const sg = k <= half ? 1 : -1;
    const xr = accRe[0][src];
    const xi = sg * accIm[0][src];
    const yr = two ? accRe[1][src] : 0;
    const yi = two ? sg * accIm[1][src] : 0;
    re[k] = xr - yi;
    im[k] = xi + yr;
  }
  fft(re, im, true);
  const out: ComposedPld[] = [];
  channels.forEach((ch, c) => {
    const src = c === 0 ? re : im;
    const { A, minSum, maxSum } = windows[c];
    // Only losses > 0 matter for delta(eps) at eps >= 0: keep t >= t0.
    const t0 = Math.min(N - 1, Math.max(0, 1 - A));
    const mass = new Float64Array(N - t0);
    let negative = 0;
    let j = ((A % N) + N) % N;
    for (let t = 0; t < N; t++) {
      const v = src[j];
      if (v < 0) negative -= v;
      if (t >= t0) mass[t - t0] = v > 0 ? v : 0;
      j = j + 1 === N ? 0 : j + 1;
    }
    const aliasMass =
      (A > minSum ? params.windowTail : 0) + (A + N - 1 < maxSum ? params.windowTail : 0);
    let logNoInf = 0;
    for (const comp of ch) logNoInf += comp.count * Math.log1p(-comp.pld.infMass);
    // Rounding allowance: the FFT's absolute error per entry is of the order of
    // u log2(N) times a small fraction (inputs have unit mass); the clipped
    // negative entries show its actual size and are charged as well.
    // On top of that heuristic, a worst-case bound on the l1 error of the N window masses (which
    // bounds the error of every delta(eps)): the exact inverse transform of the spectral error E
    // has l1 norm <= sqrt(N) * |E|_2 / sqrt(N) = |E|_2, and the inverse transform's own rounding
    // adds at most log2 N * ETA * |X|_2 (normwise FFT error bound, Higham). Raising a transform
    // to a power `count` multiplies its rounding by about `count`: this term is what makes very
    // long compositions untrustworthy, and it is charged in full (delta grows, never shrinks).
    const roundingAllowance =
      N * Math.log2(N) * 2 ** -52 * 1e-2 +
      negative +
      spectralError +
      (Math.log2(N) + 2) * FFT_ETA * spectrumNorm;
    out.push({
      gridStep: h,
      start: A + t0,
      mass,
      infMass: -Math.expm1(logNoInf),
      aliasMass,
      roundingAllowance,
    });
  });
  return out;
}

/** Total delta charged outside the finite grid masses. */
function extraDelta(c: ComposedPld): number {
  const x = c.infMass + c.aliasMass + c.roundingAllowance;
  return x <= 1 ? x : 1; // NaN (an unbounded error) counts as 1
}

/** The delta a composed PLD charges outside its grid masses (truncation, aliasing, rounding). */
export function composedExtraDelta(c: ComposedPld): number {
  return extraDelta(c);
}

/** delta(eps) of a composed discrete PLD (an upper bound for the true pair). */
export function composedDelta(c: ComposedPld, epsilon: number): number {
  const h = c.gridStep;
  let d = 0;
  for (let t = c.mass.length - 1; t >= 0; t--) {
    const l = (c.start + t) * h;
    if (l <= epsilon) break;
    d += c.mass[t] * -Math.expm1(epsilon - l);
  }
  return Math.min(1, d + extraDelta(c));
}

/**
 * Smallest eps >= 0 with delta(eps) <= delta (Infinity if none).
 *
 * For eps between two grid points, delta(eps) = s1 - e^eps * s2 with s1 the mass above eps and
 * s2 = sum m e^{-l} over the same points. The losses of a long composition reach hundreds or
 * thousands (e^{-l} underflows, e^eps overflows), so s2 is kept as e^{-ref} * s2s with `ref` a
 * recent grid loss (every term e^{ref - l} is at most e^{REBASE}) and eps is solved relative to it.
 */
export function composedEpsilon(c: ComposedPld, delta: number): number {
  const target = delta - extraDelta(c);
  if (!(target > 0)) return Infinity;
  const h = c.gridStep;
  const REBASE = 600;
  let s1 = 0; // sum of masses strictly above the current eps
  let s2s = 0; // e^{ref} * sum of mass * e^{-l} over the same points
  let ref = NaN;
  for (let t = c.mass.length - 1; t >= 0; t--) {
    const l = (c.start + t) * h;
    const m = c.mass[t];
    if (m === 0 && s1 === 0) continue;
    if (Number.isNaN(ref)) ref = l;
    if (ref - l > REBASE) {
      s2s *= Math.exp(l - ref);
      ref = l;
    }
    s1 += m;
    s2s += m * Math.exp(ref - l);
    const lBelow = (c.start + t - 1) * h;
    const floor = Math.max(0, lBelow);
    // For eps in [floor, l): delta(eps) = s1 - e^{eps - ref} s2s.
    if (s1 - Math.exp(floor - ref) * s2s > target) {
      return Math.max(0, ref + Math.log((s1 - target) / s2s));
    }
    if (lBelow <= 0) return 0;
  }
  // No mass below the window: delta(eps) = s1 - e^{eps - ref} s2s for every eps >= 0 below it.
  if (!(s1 > target) || !(s2s > 0)) return 0;
  return Math.max(0, ref + Math.log((s1 - target) / s2s));
}
