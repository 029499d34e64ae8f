/**
 * Learning-rate schedules: a schedule maps the step number (0-based) to a
 * multiplier of the base learning rate; {@link LRScheduler} applies it.
 */
import { Optimizer } from './optimizer';
import { InvalidArgumentError } from '../errors';
import { requireInstance, requireInt, requireObject } from '../validate';

/** Step (0-based) -> multiplier of the base learning rate. */
export type Schedule = (step: number) => number;

/** Multiplier 1 throughout. */
export function constantSchedule(): Schedule {
  return () => 1;
}

function checkSteps(warmupSteps: number, totalSteps: number, who: string): void {
  requireInt('warmupSteps', warmupSteps, { min: 0 });
  requireInt('totalSteps', totalSteps, { min: 1 });
  if (warmupSteps > totalSteps)
    throw new InvalidArgumentError(
      'warmupSteps',
      `${who}: warmupSteps (${warmupSteps}) exceeds totalSteps (${totalSteps})`,
    );
}

/** Linear warmup from 0 over `warmupSteps`, then linear decay to `finalFraction` at `totalSteps`. */
export function linearSchedule(o: {
  warmupSteps?: number;
  totalSteps: number;
  finalFraction?: number;
}): Schedule {
  const w = o.warmupSteps ?? 0;
  const f = o.finalFraction ?? 0;
  checkSteps(w, o.totalSteps, 'linearSchedule');
  return (step) => {
    if (step < w) return (step + 1) / w;
    if (step >= o.totalSteps) return f;
    const span = o.totalSteps - w;
    return span === 0 ? f : 1 - (1 - f) * ((step - w) / span);
  };
}

/** Linear warmup, then cosine decay from 1 to `minFraction` at `totalSteps`. */
export function cosineSchedule(o: {
  warmupSteps?: number;
  totalSteps: number;
  minFraction?: number;
}): Schedule {
  const w = o.warmupSteps ?? 0;
  const mn = o.minFraction ?? 0;
  checkSteps(w, o.totalSteps, 'cosineSchedule');
  return (step) => {
    if (step < w) return (step + 1) / w;
    if (step >= o.totalSteps) return mn;
    const span = o.totalSteps - w;
    const p = span === 0 ? 1 : (step - w) / span;
    return mn + (1 - mn) * 0.5 * (1 + Math.cos(Math.PI * p));
  };
}

/** Names of the standard learning-rate schedules (see {@link namedSchedule}). */
export type ScheduleName = 'constant' | 'linear' | 'cosine';

/** The {@link ScheduleName}s, for option parsers and checks. */
export const SCHEDULE_NAMES: readonly ScheduleName[] = ['constant', 'linear', 'cosine'];

/** Whether `v` is a {@link ScheduleName}. */
export function isScheduleName(v: unknown): v is ScheduleName {
  return (SCHEDULE_NAMES as readonly unknown[]).includes(v);
}

/**
 * The learning-rate multiplier of a run of `totalSteps` steps, by name: a linear warmup from 0
 * over `round(warmupFraction * totalSteps)` steps, then 'constant' (1), 'linear' (decay to 0 at
 * `totalSteps`) or 'cosine' (to 0); built from {@link linearSchedule} and
 * {@link cosineSchedule}. A schedule depends on the step only (it is public).
 */
export function namedSchedule(
  name: ScheduleName,
  warmupFraction: number,
  totalSteps: number,
): Schedule {
  if (!isScheduleName(name))
    throw new InvalidArgumentError(
      'schedule',
      `must be constant, linear or cosine, got ${String(name)}`,
    );
  if (!(typeof warmupFraction === 'number' && warmupFraction >= 0 && warmupFraction <= 1))
    throw new InvalidArgumentError(
      'warmup',
      `must be a fraction in [0, 1], got ${String(warmupFraction)}`,
    );
  const warmupSteps = Math.round(warmupFraction * totalSteps);
  if (name === 'cosine') return cosineSchedule({ warmupSteps, totalSteps });
  // 'constant' is the linear schedule that "decays" to 1.
  return linearSchedule({ warmupSteps, totalSteps, finalFraction: name === 'linear' ? 0 : 1 });
}

/** Sets `optimizer.lr = baseLr * schedule(step)`; call {@link step} after each optimizer step. */
export class LRScheduler {
  /** The optimizer's learning rate when the scheduler was made; the schedule multiplies it. */
  readonly baseLr: number;
  private stepNum = 0;

  constructor(
    /** The optimizer whose learning rate is set. */
    readonly optimizer: Optimizer,
    /** Learning-rate multiplier as a function of the step. */
    readonly schedule: Schedule,
  ) {
    requireInstance('optimizer', optimizer, Optimizer, 'an Optimizer');
    if (typeof schedule !== 'function')
      throw new InvalidArgumentError(
        'schedule',
        'LRScheduler: schedule must be a function of the step',
      );
    this.baseLr = optimizer.lr;
    optimizer.lr = this.baseLr * schedule(0);
  }

  /** Advances one step and sets the optimizer's learning rate. */
  step(): void {
    this.stepNum++;
    this.optimizer.lr = this.baseLr * this.schedule(this.stepNum);
  }

  /** Steps taken. */
  get stepCount(): number {
    return this.stepNum;
  }

  /** State for checkpoints. */
  stateDict(): {
    /** Steps taken. */
    step: number;
    /** The base learning rate. */
    baseLr: number;
  } {
    return { step: this.stepNum, baseLr: this.baseLr };
  }

  /** Restores the step (and the optimizer's lr) from {@link stateDict}. */
  loadStateDict(s: { step: number }): void {
    requireInt('step', requireObject('state', s).step, { min: 0 });
    this.stepNum = s.step;
    this.optimizer.lr = this.baseLr * this.schedule(this.stepNum);
  }
}
