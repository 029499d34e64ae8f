/**
 * Public pre-training of a USE-Lite LoRA classifier before a private run ("public warm start"):
 * the adapter and head are first trained NON-privately on a public part only, and the private
 * run then starts from those weights. The public records cost no privacy; no private record is
 * read before the private run, whose sampling, clipping, noise and accounting are unchanged (a
 * different starting point does not enter the accountant).
 */
import { InvalidArgumentError } from '../../errors';
import { UseLiteClassifier } from './classifier';
import { CachedPart, NonPrivateTrainOptions, trainNonPrivateRows } from './finetune';

/** The trained weights of a public warm start: one copy per trainable parameter, in order. */
export interface PublicWarmStart {
  /** Values of `clf.trainableParameters()` after the public training, in the same order. */
  values: Float32Array[];
  /** Public records the warm start trained on. */
  publicRecords: number;
  /** The options it ran with (epochs, batch size, learning rates, schedule, seed). */
  options: Omit<NonPrivateTrainOptions, 'onEpoch'>;
}

/**
 * Trains `clf`'s trainable parameters (LoRA factors and head) without privacy on `publicPart`
 * alone ({@link trainNonPrivateRows}: Adam, mean cross-entropy, shuffled batches, optional
 * schedule and head lr) and returns a copy of the trained weights, to be loaded into the fresh
 * classifiers of private runs with {@link loadPublicWarmStart}. `publicPart` must hold public
 * records only: nothing here spends privacy. `clf` is left trained.
 */
export function publicWarmStart(
  clf: UseLiteClassifier,
  publicPart: CachedPart,
  o: NonPrivateTrainOptions,
): PublicWarmStart {
  if (!(clf instanceof UseLiteClassifier))
    throw new InvalidArgumentError('clf', 'must be a UseLiteClassifier');
  if (!publicPart || !Number.isSafeInteger(publicPart.n) || publicPart.n < 1)
    throw new InvalidArgumentError('publicPart', 'must be a CachedPart with n >= 1 public records');
  if (!Number.isSafeInteger(o.epochs) || o.epochs < 1)
    throw new InvalidArgumentError('epochs', `must be an integer >= 1, got ${o.epochs}`);
  if (!Number.isSafeInteger(o.batchSize) || o.batchSize < 1)
    throw new InvalidArgumentError('batchSize', `must be an integer >= 1, got ${o.batchSize}`);
  if (!(o.lr > 0) || !Number.isFinite(o.lr))
    throw new InvalidArgumentError('lr', `must be a finite number > 0, got ${o.lr}`);
  trainNonPrivateRows(clf, publicPart, o);
  const options = { ...o };
  delete options.onEpoch;
  return {
    values: clf.trainableParameters().map((p) => p.data.slice()),
    publicRecords: publicPart.n,
    options,
  };
}

/**
 * Copies a {@link PublicWarmStart}'s weights into `clf` (a classifier built with the same LoRA
 * settings as the one it was trained on), before a private engine wraps it.
 */
export function loadPublicWarmStart(clf: UseLiteClassifier, ws: PublicWarmStart): void {
  const params = clf.trainableParameters();
  if (
    !ws ||
    !Array.isArray(ws.values) ||
    ws.values.length !== params.length ||
    ws.values.some((v, i) => !(v instanceof Float32Array) || v.length !== params[i].data.length)
  )
    throw new InvalidArgumentError(
      'warmStart',
      `does not match this classifier's ${params.length} trainable parameters (other LoRA settings?)`,
    );
  params.forEach((p, i) => p.data.set(ws.values[i]));
}
