/**
 * The hard privacy budget, kept apart from the engine: it asks the accountant's own
 * {@link maxStepsWithinBudget} how many more steps fit, hands them out one by one, and asks again
 * when they are used up. A step it does not hand out is refused before any update.
 */
import { maxStepsWithinBudget } from '../accounting/calibrate';
import type { StepSpec } from '../accounting/events';
import type { PrivacyLedger } from '../accounting/privacy_ledger';

/** How far ahead one verification looks when the run has no planned length. */
export const DEFAULT_GUARD_HORIZON = 1024;
/**
 * The farthest one verification looks (steps); more are verified when these are used. Not a
 * correctness limit (PLD is a valid bound, or falls back to RDP, for any length since issue 10):
 * it keeps one verification cheap (a PLD probe of 2^16 steps costs well under a second) and
 * exact, as maxStepsWithinBudget searches answers above 2^16 steps only to 0.1%.
 */
export const MAX_GUARD_HORIZON = 2 ** 16;

/** Hands out steps verified (by the accountant) to keep epsilon within the target. */
export class BudgetGuard {
  private verified = 0;

  /**
   * @param budget - the target epsilon at delta
   * @param spec - the step every future step will be (noise multiplier, sampling rate)
   * @param horizon - how many more steps the run plans (a verification never looks further)
   */
  constructor(
    private readonly budget: { targetEpsilon: number; targetDelta: number },
    private readonly spec: StepSpec,
    private readonly horizon: () => number,
  ) {}

  /**
   * Steps verified to fit after what `ledger` already records (a lower bound: when they are used
   * up, the next call verifies again, so more may fit). 0 means the next step is refused.
   */
  remaining(ledger: PrivacyLedger): number {
    if (this.verified >= 1) return this.verified;
    let h = Math.max(1, Math.min(MAX_GUARD_HORIZON, Math.floor(this.horizon())));
    for (;;) {
      try {
        this.verified = maxStepsWithinBudget(ledger.accountant(), this.spec, this.budget, h);
        return this.verified;
      } catch (e) {
        // Defensive: the accountants answer for any length (PLD falls back to RDP), but should
        // one throw on a long look-ahead, look less far; a single step must evaluate.
        if (h === 1) throw e;
        h = Math.max(1, Math.floor(h / 8));
      }
    }
  }

  /** Takes one verified step (call only after {@link remaining} returned >= 1). */
  consume(): void {
    if (this.verified > 0) this.verified--;
  }

  /** Forgets what was verified (the ledger was replaced). */
  reset(): void {
    this.verified = 0;
  }
}
