/** Errors of the privacy layer. */

/** Thrown BEFORE a step (or batch draw) that would take epsilon past the target. */
export class PrivacyBudgetExceededError extends Error {
  /** Epsilon spent so far (at `delta`). */
  readonly epsilonSpent: number;
  /** The budget. */
  readonly targetEpsilon: number;
  /** The delta at which epsilon is reported. */
  readonly delta: number;
  /** Steps taken before the refusal. */
  readonly stepsTaken: number;

  constructor(o: {
    epsilonSpent: number;
    targetEpsilon: number;
    delta: number;
    stepsTaken: number;
  }) {
    super(
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
export class PerSampleGradError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PerSampleGradError';
  }
}
