/**
 * Privacy events: what an accountant records. One entry is `steps`
 * repetitions of a Poisson-subsampled (continuous or discrete) Gaussian
 * mechanism. Non-Poisson sampling must be recorded with sampleRate 1.
 */
import { InvalidArgumentError } from '../errors';
import { inContext, requireInt, requireNumber, requireOneOf } from '../validate';

/** Noise distribution of a recorded step. */
export type Mechanism = 'gaussian' | 'discreteGaussian';

/** One history entry: `steps` identical compositions. */
export interface PrivacyEvent {
  /** Noise distribution: continuous or discrete Gaussian. */
  mechanism: Mechanism;
  /** Noise standard deviation divided by the L2 sensitivity (> 0). */
  noiseMultiplier: number;
  /** Poisson sampling rate in (0, 1]; 1 for any sampling that is not Poisson. */
  sampleRate: number;
  /** Number of repetitions (integer >= 1). */
  steps: number;
}

/** Argument of `step()`. */
export interface StepSpec {
  /** Noise standard deviation divided by the L2 sensitivity (> 0). */
  noiseMultiplier: number;
  /** Poisson sampling rate in (0, 1]; 1 for any sampling that is not Poisson. */
  sampleRate: number;
  /** Noise distribution (default `'gaussian'`). */
  mechanism?: Mechanism;
}

/** Throws a RangeError/TypeError naming the offending field of a step spec. */
export function validateStep(spec: StepSpec, count: number, where = 'step'): PrivacyEvent {
  if (spec === null || typeof spec !== 'object')
    throw new InvalidArgumentError(
      where,
      `${where}: expected an object {noiseMultiplier, sampleRate, mechanism?}`,
    );
  const { noiseMultiplier, sampleRate } = spec;
  const mechanism = inContext(where, () => {
    const m = requireOneOf<Mechanism>('mechanism', spec.mechanism ?? 'gaussian', [
      'gaussian',
      'discreteGaussian',
    ]);
    requireNumber('noiseMultiplier', noiseMultiplier, { greaterThan: 0 });
    requireNumber('sampleRate', sampleRate, {
      greaterThan: 0,
      max: 1,
      hint: '(use 1 for non-Poisson sampling)',
    });
    requireInt('count', count, { min: 1, hint: '(the number of steps)' });
    return m;
  });
  return { mechanism, noiseMultiplier, sampleRate, steps: count };
}

/** Appends an event, merging it into the last entry when the mechanism matches exactly. */
export function appendEvent(history: PrivacyEvent[], ev: PrivacyEvent): void {
  const last = history[history.length - 1];
  if (
    last &&
    last.mechanism === ev.mechanism &&
    last.noiseMultiplier === ev.noiseMultiplier &&
    last.sampleRate === ev.sampleRate &&
    Number.isSafeInteger(last.steps + ev.steps)
  ) {
    last.steps += ev.steps;
  } else {
    history.push({ ...ev });
  }
}

/** Groups identical (mechanism, z, q) entries so each is computed once. */
export function groupEvents(history: readonly PrivacyEvent[]): PrivacyEvent[] {
  const map = new Map<string, PrivacyEvent>();
  for (const e of history) {
    const key = `${e.mechanism}|${e.noiseMultiplier}|${e.sampleRate}`;
    const g = map.get(key);
    if (g) g.steps += e.steps;
    else map.set(key, { ...e });
  }
  return [...map.values()];
}
