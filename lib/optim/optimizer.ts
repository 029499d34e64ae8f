/**
 * Optimizer base class.  Optimizers know nothing of privacy: they read
 * `Parameter.grad` and update `Parameter.data`.
 */
import { Parameter } from '../nn/tensor';
import {
  requireArray,
  requireFloat32Array,
  requireInstance,
  requireInt,
  requireNumber,
  requireObject,
} from '../validate';
import { InvalidArgumentError } from '../errors';

/**
 * Largest learning rate (the float32 range): a larger one turns any non-zero update into an
 * infinity in the float32 parameters.
 */
export const MAX_LR = 3.4028234663852886e38;

/**
 * Serializable optimizer state: `slots[i]` holds the named state buffers of
 * `params[i]` (e.g. `{ momentum }` or `{ m, v }`), in constructor order.
 */
export interface OptimizerState {
  /** The optimizer's {@link Optimizer.kind} (`'sgd'`, `'adam'`, `'adamw'`). */
  kind: string;
  /** Learning rate at the time of saving. */
  lr: number;
  /**
   * Hyperparameters (momentum, betas, eps, weight decay, ...), for the record: a load keeps the
   * optimizer's own.
   */
  hyper: Record<string, number | boolean>;
  /** Number of steps taken. */
  step: number;
  /** Per-parameter state buffers, in constructor order. */
  slots: Array<Record<string, Float32Array>>;
}

/**
 * Checks that `params` is an array of distinct {@link Parameter}s (typed errors naming `params`
 * or `params[i]`; `owner` prefixes the duplicates message). Shared by the optimizers and
 * `WeightAverage`.
 */
export function requireParameterList(params: unknown, owner: string): Parameter[] {
  const list = requireArray('params', params);
  list.forEach((p, i) => requireInstance(`params[${i}]`, p, Parameter));
  if (new Set(list).size !== list.length)
    throw new InvalidArgumentError('params', `${owner}: params contains duplicates`);
  return list as Parameter[];
}

/** Common machinery of SGD, Adam and AdamW. */
export abstract class Optimizer {
  /** The parameters this optimizer updates, in constructor order. */
  readonly params: Parameter[];
  /** Current learning rate (schedules set it). */
  lr: number;
  /** Number of steps taken. */
  stepCount = 0;
  protected slots: Array<Record<string, Float32Array>>;
  /** Which optimizer this is (`'sgd'`, `'adam'`, `'adamw'`). */
  abstract readonly kind: string;

  constructor(params: Parameter[], lr: number) {
    requireParameterList(params, 'Optimizer');
    requireNumber('lr', lr, { min: 0, max: MAX_LR });
    this.params = params;
    this.lr = lr;
    this.slots = params.map(() => ({}));
  }

  /** Whether `x` can be a value of the state buffer `slot` (checked by {@link loadStateDict}). */
  protected validSlotValue(slot: string, x: number): boolean {
    return Number.isFinite(x);
  }

  /** Hyperparameters recorded in the state. */
  protected abstract hyper(): Record<string, number | boolean>;
  /** Updates one parameter given its gradient. */
  protected abstract update(i: number, p: Parameter, g: Float32Array): void;

  /** Applies one update to every parameter that has a gradient. */
  step(): void {
    this.stepCount++;
    for (let i = 0; i < this.params.length; i++) {
      const p = this.params[i];
      if (!p.requiresGrad || !p.grad) continue;
      this.update(i, p, p.grad);
    }
  }

  /** Drops every parameter's gradient. */
  zeroGrad(): void {
    for (const p of this.params) p.zeroGrad();
  }

  protected slot(i: number, name: string): Float32Array {
    let s = this.slots[i][name];
    if (!s) {
      s = new Float32Array(this.params[i].size);
      this.slots[i][name] = s;
    }
    return s;
  }

  /** A deep copy of the state. */
  stateDict(): OptimizerState {
    return {
      kind: this.kind,
      lr: this.lr,
      hyper: this.hyper(),
      step: this.stepCount,
      slots: this.slots.map((s) =>
        Object.fromEntries(Object.entries(s).map(([k, v]) => [k, v.slice()])),
      ),
    };
  }

  /** Restores a state from {@link stateDict} (same kind and parameter sizes). */
  loadStateDict(state: OptimizerState): void {
    if (!state || state.kind !== this.kind)
      throw new InvalidArgumentError(
        'state',
        `${this.kind}.loadStateDict: state is for '${state?.kind}', not '${this.kind}'`,
      );
    if (!Array.isArray(state.slots) || state.slots.length !== this.params.length) {
      throw new InvalidArgumentError(
        'state',
        `${this.kind}.loadStateDict: state has ${state.slots?.length} parameter slots, optimizer has ${this.params.length}`,
      );
    }
    const lr = requireNumber('state.lr', state.lr, { min: 0, max: MAX_LR });
    const step = requireInt('state.step', state.step, { min: 0 });
    const slots = state.slots.map((s, i) =>
      Object.fromEntries(
        Object.entries(requireObject(`state.slots[${i}]`, s)).map(([k, v]) => {
          const name = `state.slots[${i}].${k}`;
          const slot = requireFloat32Array(name, v, this.params[i].size);
          // A NaN or an infinity (or, for Adam, a negative second moment) would make every
          // later update of the parameter NaN.
          const bad = slot.findIndex((x) => !this.validSlotValue(k, x));
          if (bad >= 0)
            throw new InvalidArgumentError(
              name,
              `holds ${slot[bad]} at index ${bad}, not a value this optimizer's state can have`,
            );
          return [k, slot.slice()];
        }),
      ),
    );
    this.slots = slots;
    this.lr = lr;
    this.stepCount = step;
  }
}
