/**
 * One noise-free private step of a USE-Lite classifier over a whole cached part (q = 1: every
 * record in the batch), for tests that compare clipped sums.
 */
import { UseLiteClassifier } from '../../lib/models/use_lite/classifier';
import { CachedPart, privateStep } from '../../lib/models/use_lite/finetune';
import { PrivacyEngine } from '../../lib/privacy';
import { quiet } from './dp_setup';
import { RecordingSGD } from './param_gradients';

/**
 * The private gradient (clipped sum / expected batch, no noise) of one step of `clf` on every
 * record of `d`, clipped at `maxGradNorm`, in micro-batches of `physical`.
 */
export function noiseFreePrivateGradient(
  clf: UseLiteClassifier,
  d: CachedPart,
  o: { maxGradNorm: number; physical: number; seed: number },
): Float64Array {
  const opt = new RecordingSGD(clf.trainableParameters(), { lr: 1 });
  const engine = new PrivacyEngine();
  const { optimizer } = engine.makePrivate({
    model: clf,
    optimizer: opt,
    dataset: d.n,
    batchSize: d.n, // q = 1: every record in the batch
    noiseMultiplier: 0,
    maxGradNorm: o.maxGradNorm,
    maxPhysicalBatchSize: o.physical,
    seed: o.seed,
    ...quiet(),
  });
  clf.train();
  clf.setGradMode('perSample');
  privateStep(clf, d, engine, optimizer, o.physical);
  return opt.last!;
}
