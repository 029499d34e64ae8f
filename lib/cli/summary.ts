/**
 * The closing summary that `dp-lora train` prints, shared by every model: percentages, aligned
 * two-column tables, and the privacy rows (all read from the engine, whose ledger is the run's
 * single privacy record).
 */
import type { PrivacyEngine } from '../privacy/privacy_engine';

/** A fraction as a percentage with one decimal, or `n/a`. */
export function fmtPct(x: number | null): string {
  return x === null || Number.isNaN(x) ? 'n/a' : `${(100 * x).toFixed(1)}%`;
}

/** Rows of `[label, value]` as an indented table with aligned values. */
export function table(rows: Array<[string, string]>): string {
  const w = Math.max(...rows.map((r) => r[0].length));
  return rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join('\n');
}

/** The privacy section of the summary (epsilon, noise, clipping, sampling, steps, randomness). */
export function privacyRows(o: {
  engine: PrivacyEngine;
  epsilon: number;
  targetEpsilon: number;
  delta: number;
  /** Size of the private training set. */
  n: number;
  plannedSteps: number;
  stoppedByBudget: boolean;
  /** Whether a run that stopped early can be continued with --resume. */
  resumable: boolean;
}): Array<[string, string]> {
  const { engine } = o;
  const pc = engine.config;
  const stopped = o.stoppedByBudget
    ? ' (stopped: budget exhausted)'
    : o.resumable && engine.steps < o.plannedSteps
      ? ' (stopped early; continue with --resume)'
      : '';
  return [
    [
      'epsilon spent / target',
      `${o.epsilon.toFixed(3)} / ${o.targetEpsilon} at delta ${o.delta.toExponential(2)} (${pc.accountant.toUpperCase()} accountant)`,
    ],
    ['noise multiplier', pc.noiseMultiplier.toPrecision(4)],
    ['clipping norm', String(pc.maxGradNorm)],
    [
      'sampling',
      `Poisson, q = ${pc.sampleRate.toPrecision(4)} (expected batch ${pc.expectedBatchSize} of ${o.n})`,
    ],
    ['steps', `${engine.steps} of ${o.plannedSteps}${stopped}`],
    [
      'randomness',
      engine.reproducible
        ? 'FIXED SEED (reproducible, not secure if the seed is known)'
        : 'OS entropy (secure)',
    ],
  ];
}
