/**
 * An exponential moving average of parameters (Polyak-style iterate averaging).
 *
 * It reads only the parameters' values after each optimizer step, so under DP it is
 * post-processing: no privacy cost, nothing for the accountant. It averages out part of the
 * noise that private steps leave in the last iterate.
 */
import { Parameter } from '../nn/tensor';
import { InvalidArgumentError } from '../errors';
import { requireBoolean, requireInt, requireNumber, requireObject } from '../validate';
import { requireParameterList } from './optimizer';

/** Options of {@link WeightAverage}. */
export interface WeightAverageOptions {
  /** Decay per update, in [0, 1): average = decay * average + (1 - decay) * value. */
  decay: number;
  /**
   * Ramp the decay in as min(decay, (1 + t) / (10 + t)) at update t (t from 0), so that the
   * starting values are forgotten quickly early on (default true).
   */
  warmup?: boolean;
}

/**
 * An exponential moving average of a list of parameters. Call {@link WeightAverage.update}
 * after every optimizer step; evaluate with {@link WeightAverage.withAverage}, or keep the
 * average with {@link WeightAverage.copyTo}.
 *
 * @example
 * ```ts
 * const avg = new WeightAverage(model.trainableParameters(), { decay: 0.99 });
 * // after each optimizer.step():
 * avg.update();
 * const acc = avg.withAverage(() => evaluate(model)); // the model's values come back after
 * ```
 */
export class WeightAverage {
  /** The averaged parameters, in constructor order. */
  readonly params: Parameter[];
  /** Decay per update. */
  readonly decay: number;
  /** Whether the decay is ramped in. */
  readonly warmup: boolean;
  private avg: Float32Array[];
  private count = 0;

  constructor(params: Parameter[], options: WeightAverageOptions) {
    this.params = requireParameterList(params, 'WeightAverage');
    requireObject('options', options);
    for (const k of Object.keys(options))
      if (k !== 'decay' && k !== 'warmup')
        throw new InvalidArgumentError(
          `options.${k}`,
          'is not a WeightAverage option (decay, warmup)',
        );
    this.decay = requireNumber('decay', options.decay, { min: 0, lessThan: 1 });
    this.warmup = requireBoolean('warmup', options.warmup ?? true);
    this.avg = params.map((p) => Float32Array.from(p.data));
  }

  /** Number of updates so far. */
  get updates(): number {
    return this.count;
  }

  /** The decay the next update uses (the ramped one while it is below `decay`). */
  get currentDecay(): number {
    return this.warmup ? Math.min(this.decay, (1 + this.count) / (10 + this.count)) : this.decay;
  }

  /** Folds the parameters' current values into the average. */
  update(): void {
    this.checkSizes();
    const d = this.currentDecay;
    for (let i = 0; i < this.params.length; i++) {
      const w = this.params[i].data;
      const a = this.avg[i];
      for (let j = 0; j < a.length; j++) a[j] = d * a[j] + (1 - d) * w[j];
    }
    this.count++;
  }

  /** Throws before anything is written if a parameter no longer has its first size. */
  private checkSizes(): void {
    this.params.forEach((p, i) => {
      if (p.data.length !== this.avg[i].length)
        throw new InvalidArgumentError(`params[${i}]`, 'WeightAverage: a parameter changed size');
    });
  }

  /** A copy of the average of parameter i. */
  average(i: number): Float32Array {
    requireInt('i', i, { min: 0, max: this.params.length - 1 });
    return Float32Array.from(this.avg[i]);
  }

  /** The number of updates and a copy of the averages (to checkpoint a run that averages). */
  stateDict(): {
    /** Updates folded in so far (the ramp depends on it). */
    updates: number;
    /** The averages, one per parameter in constructor order. */
    averages: Float32Array[];
  } {
    return { updates: this.count, averages: this.avg.map((a) => Float32Array.from(a)) };
  }

  /**
   * Restores {@link WeightAverage.stateDict}'s output (on the same parameters); checked whole
   * before anything is written.
   */
  loadStateDict(state: { updates: number; averages: Float32Array[] }): void {
    requireObject('state', state);
    const updates = requireInt('state.updates', state.updates, { min: 0 });
    const a = state.averages;
    if (!Array.isArray(a) || a.length !== this.params.length)
      throw new InvalidArgumentError(
        'state.averages',
        `must hold ${this.params.length} Float32Arrays, one per parameter`,
      );
    a.forEach((v, i) => {
      if (!(v instanceof Float32Array) || v.length !== this.params[i].data.length)
        throw new InvalidArgumentError(
          `state.averages[${i}]`,
          `must be a Float32Array of ${this.params[i].data.length} values`,
        );
      for (let j = 0; j < v.length; j++)
        if (!Number.isFinite(v[j]))
          throw new InvalidArgumentError(`state.averages[${i}]`, `holds ${v[j]} at ${j}`);
    });
    this.avg = a.map((v) => Float32Array.from(v));
    this.count = updates;
  }

  /** Writes the average into the parameters (their current values are lost). */
  copyTo(): void {
    this.checkSizes();
    this.load(this.avg);
  }

  /** Writes `values[i]` into parameter i and tells its derived copies. */
  private load(values: Float32Array[]): void {
    this.params.forEach((p, i) => {
      p.data.set(values[i]);
      p.markChanged();
    });
  }

  /**
   * Runs `fn` with the averaged values loaded into the parameters, then puts the current
   * values back (also when `fn` throws), and returns what `fn` returned.
   */
  withAverage<T>(fn: () => T): T {
    this.checkSizes();
    const saved = this.params.map((p) => Float32Array.from(p.data));
    this.load(this.avg);
    try {
      return fn();
    } finally {
      this.load(saved);
    }
  }
}
