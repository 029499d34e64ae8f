/**
 * Shared pieces of the `dp-lora train --model use-lite` tests: a small run's arguments and the
 * held-out predictions of a saved adapter on the built-in task.
 */
import * as path from 'path';
import { mailText } from '../../lib/cli/train_use_lite';
import { predictWithAdapter } from '../../lib/cli/predict';
import { splitSpamCorpus } from '../../lib/data/spam_corpus';

/** A small use-lite run: ~100 private mails, 16 tokens, batches of 8, no reference training. */
export const SMALL_USE_LITE = [
  '--model',
  'use-lite',
  '--limit',
  '160',
  '--max-tokens',
  '16',
  '--batch-size',
  '8',
  '--physical-batch-size',
  '4',
  '--no-baseline',
  '--accountant',
  'rdp',
  '--no-progress',
];

/**
 * `dp-lora predict` with the adapter saved in `out` on the held-out mails of the built-in task
 * cut to 160 mails: the predictions and their accuracy.
 */
export function heldoutPredictions(out: string) {
  const held = splitSpamCorpus(undefined, { limit: 160 }).heldout;
  const preds = predictWithAdapter(
    path.join(out, 'adapter'),
    held.map((m) => mailText(m.text)),
  );
  const acc =
    preds.filter((p, i) => p.label === ['ham', 'spam'][held[i].label]).length / held.length;
  return { acc, preds };
}
