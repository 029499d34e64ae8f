/**
 * Noise calibration: the smallest noise multiplier z whose epsilon at the
 * target delta is at most the target epsilon. Bracket, root-find in log z,
 * then verify: the returned z always satisfies eps(z) <= target (as computed
 * by the chosen accountant) and lies within `tolerance` of the smallest such z.
 */
import { PldAccountant, RdpAccountant } from './accountant';
import type { Mechanism, StepSpec } from './events';
import type { AccountantKind } from './ledger';
import { DEFAULT_PLD_PARAMETERS, PldParameters, pldStepGridPoints } from './pld';
import { InvalidArgumentError } from '../errors';
import { OPEN_UNIT, requireInt, requireNumber, requireObject, requireOneOf } from '../validate';

/** Options of {@link getNoiseMultiplier}. */
export interface NoiseMultiplierOptions {
  /** Epsilon budget (> 0). */
  targetEpsilon: number;
  /** Delta of the guarantee, in (0, 1). */
  targetDelta: number;
  /** Poisson sampling rate in (0, 1] (1 for non-Poisson sampling). */
  sampleRate: number;
  /** Number of steps (integer >= 1); give this or `epochs`. */
  steps?: number;
  /** Number of epochs; steps = ceil(epochs / sampleRate). */
  epochs?: number;
  /** 'pld' (default) or 'rdp'. */
  accountant?: AccountantKind;
  /** Noise distribution (default `'gaussian'`). */
  mechanism?: Mechanism;
  /** Relative bracket width at which to stop (default 0.002, i.e. 0.2%). */
  tolerance?: number;
  /** Parameters for the PLD accountant. */
  pldParameters?: Partial<PldParameters>;
  /** Orders for the RDP accountant. */
  orders?: readonly number[];
}

/** Result with diagnostics, from {@link calibrateNoiseMultiplier}. */
export interface NoiseCalibration {
  /** The calibrated noise multiplier. */
  noiseMultiplier: number;
  /** Epsilon at the returned noise multiplier (<= targetEpsilon). */
  epsilon: number;
  /** Number of steps it was calibrated for. */
  steps: number;
  /** The accountant used. */
  accountant: AccountantKind;
  /** Number of epsilon evaluations made. */
  evaluations: number;
  /**
   * Set when PLD was asked for but the answer is accounted with RDP instead (too little noise
   * for the PLD grid): says why. The run must then be accounted with RDP (PrivacyEngine does).
   */
  fallback?: string;
}

/**
 * PLD is used only when one step at the calibrated noise needs at most this fraction of the
 * largest FFT: this bounds the cost of every evaluation (calibration time) and keeps the
 * composition inside the FFT; below that much noise the RDP answer is used, and said.
 */
export const PLD_FEASIBLE_FRACTION = 1 / 8;

const Z_MIN = 1e-3;
const Z_MAX = 1e6;

/** Checks a privacy budget (epsilon > 0, delta in (0, 1)); returns it. */
function checkBudget(targetEpsilon: unknown, targetDelta: unknown): [number, number] {
  return [
    requireNumber('targetEpsilon', targetEpsilon, { greaterThan: 0 }),
    requireNumber('targetDelta', targetDelta, OPEN_UNIT),
  ];
}

/** Resolves `steps` / `epochs` to a step count. */
export function resolveSteps(sampleRate: number, steps?: number, epochs?: number): number {
  if (steps !== undefined && epochs !== undefined)
    throw new InvalidArgumentError('steps', 'give either steps or epochs, not both');
  if (steps !== undefined) return requireInt('steps', steps, { min: 1 });
  if (epochs !== undefined) {
    requireNumber('epochs', epochs, { greaterThan: 0 });
    const s = Math.ceil(epochs / sampleRate - 1e-9);
    if (!Number.isSafeInteger(s))
      throw new InvalidArgumentError('epochs', `epochs / sampleRate is too large (${s} steps)`);
    return Math.max(1, s);
  }
  throw new InvalidArgumentError('steps', 'steps (or epochs) is required');
}

/** Like {@link getNoiseMultiplier}, with diagnostics. */
export function calibrateNoiseMultiplier(opts: NoiseMultiplierOptions): NoiseCalibration {
  requireObject('opts', opts);
  const [eps, delta] = checkBudget(opts.targetEpsilon, opts.targetDelta);
  const q = requireNumber('sampleRate', opts.sampleRate, { greaterThan: 0, max: 1 });
  const steps = resolveSteps(q, opts.steps, opts.epochs);
  const kind = requireOneOf('accountant', opts.accountant ?? 'pld', ['pld', 'rdp']);
  const tol = requireNumber('tolerance', opts.tolerance ?? 0.002, { greaterThan: 0, max: 0.1 });
  const mechanism = opts.mechanism ?? 'gaussian';
  let evaluations = 0;

  const fineParams = { ...DEFAULT_PLD_PARAMETERS, ...(opts.pldParameters ?? {}) };
  // The search runs on a grid 10x coarser (nested in the fine one, so its
  // upper bound is never tighter); only the last steps use the fine grid.
  const coarseParams = { ...fineParams, gridStep: fineParams.gridStep * 10 };
  const epsilonOf = (k: 'pld' | 'rdp' | 'pldCoarse', z: number): number => {
    evaluations++;
    const acc =
      k === 'rdp'
        ? new RdpAccountant({ orders: opts.orders })
        : new PldAccountant(k === 'pld' ? fineParams : coarseParams);
    acc.step({ noiseMultiplier: z, sampleRate: q, mechanism }, steps);
    try {
      return acc.getEpsilon(delta);
    } catch (e) {
      // Grid too fine for a very small z: treat as "does not meet the target".
      if (e instanceof InvalidArgumentError && e.argument === 'gridStep') return Infinity;
      throw e;
    }
  };

  /** Bisection/Illinois in t = ln z on f(t) = ln eps - ln target; lo fails, hi meets. */
  const solve = (
    k: 'pld' | 'rdp' | 'pldCoarse',
    zLo: number,
    fLo: number,
    zHi: number,
    fHi: number,
    relTol = tol,
  ) => {
    let tLo = Math.log(zLo);
    let tHi = Math.log(zHi);
    let gLo = fLo === Infinity ? Infinity : Math.log(fLo / eps);
    let gHi = fHi > 0 ? Math.log(fHi / eps) : -Infinity;
    let epsHi = fHi;
    let side = 0;
    for (let it = 0; it < 100 && tHi - tLo > Math.log1p(relTol); it++) {
      let t: number;
      if (Number.isFinite(gLo) && Number.isFinite(gHi) && gLo > 0 && gHi <= 0 && gLo - gHi > 0) {
        t = tLo + (gLo * (tHi - tLo)) / (gLo - gHi);
        // Stay strictly inside and make progress on both ends.
        const w = tHi - tLo;
        t = Math.min(tHi - 0.02 * w, Math.max(tLo + 0.02 * w, t));
      } else {
        t = (tLo + tHi) / 2;
      }
      const e = epsilonOf(k, Math.exp(t));
      const g = e === Infinity ? Infinity : e > 0 ? Math.log(e / eps) : -Infinity;
      if (e <= eps) {
        tHi = t;
        gHi = g;
        epsHi = e;
        if (side === 1) gLo /= 2; // Illinois step
        side = 1;
      } else {
        tLo = t;
        gLo = g;
        if (side === -1) gHi /= 2;
        side = -1;
      }
    }
    // d ln(eps) / d ln(z) from the final bracket (about -1 in the usual regime).
    const slope =
      Number.isFinite(gLo) && Number.isFinite(gHi) && tHi > tLo ? (gHi - gLo) / (tHi - tLo) : -1;
    return { z: Math.exp(tHi), epsilon: epsHi, slope: slope < 0 ? slope : -1 };
  };

  /**
   * Brackets the answer with the given accountant from z0 (epsilon e0): returns
   * zLo failing the target and zHi meeting it, zHi / zLo = factor. zLo is NaN
   * when even Z_MIN meets the target.
   */
  const bracket = (k: 'pld' | 'rdp' | 'pldCoarse', z0: number, e0: number, factor: number) => {
    if (e0 > eps) {
      let zLo = z0;
      let eLo = e0;
      for (;;) {
        const z = zLo * factor;
        if (z > Z_MAX) {
          throw new InvalidArgumentError(
            'targetEpsilon',
            `targetEpsilon ${eps} at targetDelta ${delta} cannot be reached with ${steps} steps at sampleRate ${q} by any noiseMultiplier up to ${Z_MAX} (the ${k.toUpperCase()} accountant certifies at best ${eLo}); raise targetEpsilon or targetDelta, or use fewer steps`,
          );
        }
        const e = epsilonOf(k, z);
        if (e <= eps) return { zLo, eLo, zHi: z, eHi: e };
        zLo = z;
        eLo = e;
      }
    }
    let zHi = z0;
    let eHi = e0;
    for (;;) {
      const z = zHi / factor;
      if (z < Z_MIN) return { zLo: NaN, eLo: NaN, zHi, eHi };
      const e = epsilonOf(k, z);
      if (e > eps) return { zLo: z, eLo: e, zHi, eHi };
      zHi = z;
      eHi = e;
    }
  };

  // RDP first (cheap); it also brackets the PLD answer from above.
  const rdpStart = 1;
  const rb = bracket('rdp', rdpStart, epsilonOf('rdp', rdpStart), 2);
  if (Number.isNaN(rb.zLo)) {
    const r = finish(rb.zHi, rb.eHi, 'rdp');
    if (kind === 'pld')
      r.fallback = `the target is met by the smallest noise multiplier considered (${Z_MIN}); it is accounted with RDP`;
    return r;
  }
  const rdp = solve('rdp', rb.zLo, rb.eLo, rb.zHi, rb.eHi);
  if (kind === 'rdp') return finish(rdp.z, rdp.epsilon, 'rdp');
  // The PLD answer lies below the RDP one (by well under 30% in practice): if PLD at
  // 0.7 times the RDP noise would need too large a grid, account with RDP, loudly.
  const points = pldStepGridPoints(q, rdp.z * 0.7, fineParams);
  if (!(points <= fineParams.maxFftLength * PLD_FEASIBLE_FRACTION)) {
    const r = finish(rdp.z, rdp.epsilon, 'rdp');
    r.fallback = `noise multiplier ${rdp.z.toPrecision(4)} is too small for the PLD accountant (one step needs ${points} grid points at gridStep ${fineParams.gridStep}); the RDP accountant is used instead (a looser, valid bound)`;
    return r;
  }

  // PLD: eps_PLD <= eps_RDP, so the RDP answer meets the target; search below
  // it on the coarse grid first (to 1%), then on the fine grid just below the
  // coarse answer, which meets the target on the fine grid as well.
  const coarseOk = fineParams.gridStep * 10 < 0.05;
  let zStart = NaN;
  let eStart = NaN;
  if (coarseOk) {
    const cb = bracket('pldCoarse', rdp.z, epsilonOf('pldCoarse', rdp.z), 1.25);
    const coarse = Number.isNaN(cb.zLo)
      ? { z: cb.zHi, slope: -1 }
      : solve('pldCoarse', cb.zLo, cb.eLo, cb.zHi, cb.eHi, 0.01);
    const e = epsilonOf('pld', coarse.z);
    if (e <= eps) {
      // Predict where the fine curve crosses the target from the coarse slope
      // and probe just below the prediction, so the bracket starts narrow.
      const tPred = Math.log(coarse.z) - Math.log(e / eps) / coarse.slope;
      const zProbe = Math.exp(tPred - 0.001);
      const eProbe = zProbe < coarse.z ? epsilonOf('pld', zProbe) : e;
      if (zProbe < coarse.z && eProbe > eps) {
        const fine = solve('pld', zProbe, eProbe, coarse.z, e);
        return finish(fine.z, fine.epsilon, 'pld');
      }
      zStart = zProbe < coarse.z ? zProbe : coarse.z;
      eStart = zProbe < coarse.z ? eProbe : e;
    }
  }
  if (Number.isNaN(zStart)) {
    zStart = rdp.z;
    eStart = epsilonOf('pld', zStart);
  }
  const pb = bracket('pld', zStart, eStart, coarseOk ? 1.01 : 1.25);
  if (Number.isNaN(pb.zLo)) return finish(pb.zHi, pb.eHi, 'pld');
  const pld = solve('pld', pb.zLo, pb.eLo, pb.zHi, pb.eHi);
  return finish(pld.z, pld.epsilon, 'pld');

  function finish(z: number, e: number, k: AccountantKind): NoiseCalibration {
    // Verify: e was computed by the chosen accountant at exactly this z.
    if (!(e <= eps))
      throw new Error(`internal: calibrated noise multiplier ${z} gives epsilon ${e} > ${eps}`);
    return { noiseMultiplier: z, epsilon: e, steps, accountant: k, evaluations };
  }
}

/**
 * The smallest noise multiplier (within 0.2% by default, always erring
 * towards more noise) for which the accountant certifies (targetEpsilon,
 * targetDelta)-DP after `steps` (or `epochs / sampleRate`, rounded up) steps
 * of the Poisson-subsampled Gaussian.
 * @throws RangeError naming the argument for invalid or unreachable targets
 */
export function getNoiseMultiplier(opts: NoiseMultiplierOptions): number {
  return calibrateNoiseMultiplier(opts).noiseMultiplier;
}

/**
 * The largest number of further steps `spec` that `accountant` can record
 * while its epsilon at `targetDelta` stays <= `targetEpsilon` (0 if not even
 * one fits). Exponential then binary search on the step count, each probe on
 * a clone, so the accountant itself is not modified. Lets a training loop
 * check its budget once instead of composing the history after every step.
 * @param maxSteps search cap (default 1e9)
 * @throws RangeError naming the argument for invalid input
 */
export function maxStepsWithinBudget(
  accountant: PldAccountant | RdpAccountant,
  spec: StepSpec,
  budget: { targetEpsilon: number; targetDelta: number },
  maxSteps = 1e9,
): number {
  requireObject('budget', budget);
  const [eps, delta] = checkBudget(budget.targetEpsilon, budget.targetDelta);
  requireInt('maxSteps', maxSteps, { min: 1 });
  const fits = (k: number) => accountant.clone().step(spec, k).getEpsilon(delta) <= eps;
  if (accountant.getEpsilon(delta) > eps || !fits(1)) return 0;
  // A short horizon that fits whole costs one evaluation (very long compositions are left to
  // the search below).
  if (maxSteps <= 2 ** 16 && fits(maxSteps)) return maxSteps;
  let lo = 1; // fits
  let hi = 2;
  while (hi <= maxSteps && fits(hi)) {
    lo = hi;
    hi *= 2;
  }
  if (hi > maxSteps) {
    if (fits(maxSteps)) return maxSteps;
    hi = maxSteps;
  }
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}
