/** Errors of the privacy layer. */
import { DpLoraError, ErrorCode } from '../errors';

/** Thrown BEFORE a step (or batch draw) that would take epsilon past the target. */
export class PrivacyBudgetExceededError extends DpLoraError {
  /** Epsilon spent so far (at `delta`). */
  readonly epsilonSpent: number;
  /** The budget. */
  readonly targetEpsilon: number;
  /** The delta at which epsilon is reported. */
  readonly delta: number;
  /** Steps taken before the refusal. */
  readonly stepsTaken: number;

  /** @param o - what was spent, the budget and the steps taken */
  constructor(o: {
    epsilonSpent: number;
    targetEpsilon: number;
    delta: number;
    stepsTaken: number;
  }) {
    super(
      ErrorCode.BudgetExceeded,
      `privacy budget exhausted: another step would take epsilon past the target ${o.targetEpsilon} ` +
        `(delta ${o.delta}); spent ${o.epsilonSpent.toPrecision(6)} in ${o.stepsTaken} steps. ` +
        'Stop training, or start a new run with a larger budget (the ledger cannot be reset).',
    );
    this.name = 'PrivacyBudgetExceededError';
    this.epsilonSpent = o.epsilonSpent;
    this.targetEpsilon = o.targetEpsilon;
    this.delta = o.delta;
    this.stepsTaken = o.stepsTaken;
  }
}

/** Thrown when a trainable parameter lacks per-sample gradient support or information. */
export class PerSampleGradError extends DpLoraError {
  /** @param message - which parameter lacks what */
  constructor(message: string) {
    super(ErrorCode.PerSampleGrad, message);
    this.name = 'PerSampleGradError';
  }
}
