/**
 * Per-sample losses.  Each returns the per-sample losses and the gradient of
 * their SUM with respect to the input (never the mean: the DP optimizer
 * divides the noisy sum by the expected batch size itself).
 */
import { Tensor } from './tensor';
import { InvalidArgumentError } from '../errors';
import { requireInstance, requireLength } from '../validate';
import { mseRows } from '../kernels/elementwise';
import { newArray } from './workspace';

/** Result of a per-sample loss. */
export interface LossResult {
  /** Loss of each sample, [batch]. */
  losses: Float32Array;
  /** Sum of the per-sample losses. */
  total: number;
  /** d(sum of losses)/d(input), same shape as the input. */
  grad: Tensor;
}

/**
 * Softmax cross-entropy.  logits `[batch, classes]` with labels `[batch]`, or
 * `[batch, seq, classes]` with labels `[batch * seq]` (a sample's loss is the
 * mean over its tokens whose label is not `ignoreIndex`).
 */
export function crossEntropyLoss(
  logits: Tensor,
  labels: ArrayLike<number>,
  ignoreIndex = -100,
): LossResult {
  requireInstance('logits', logits, Tensor);
  if (labels === null || typeof labels !== 'object' || typeof labels.length !== 'number')
    throw new InvalidArgumentError('labels', 'must be an array of class ids');
  if (logits.shape.length < 2 || logits.shape.length > 3)
    throw new InvalidArgumentError(
      'logits',
      `crossEntropyLoss: logits must be [batch, classes] or [batch, seq, classes], got ${JSON.stringify(logits.shape)}`,
    );
  const batch = logits.shape[0];
  const seq = logits.seq;
  const k = logits.features;
  if (labels.length !== batch * seq)
    throw new InvalidArgumentError(
      'labels',
      `crossEntropyLoss: labels must have ${batch * seq} entries (batch*seq), got ${labels.length}`,
    );
  const losses = new Float32Array(batch);
  const grad = newArray(logits.size);
  const z = logits.data;
  for (let i = 0; i < batch; i++) {
    let count = 0;
    for (let t = 0; t < seq; t++) if (labels[i * seq + t] !== ignoreIndex) count++;
    if (count === 0) continue;
    let li = 0;
    for (let t = 0; t < seq; t++) {
      const lab = labels[i * seq + t];
      if (lab === ignoreIndex) continue;
      if (!Number.isInteger(lab) || lab < 0 || lab >= k)
        throw new InvalidArgumentError(
          'labels',
          `crossEntropyLoss: label ${lab} at sample ${i} is not in [0, ${k})`,
        );
      const o = (i * seq + t) * k;
      let mx = -Infinity;
      for (let j = 0; j < k; j++) if (z[o + j] > mx) mx = z[o + j];
      let s = 0;
      for (let j = 0; j < k; j++) s += Math.exp(z[o + j] - mx);
      const lse = mx + Math.log(s);
      li += lse - z[o + lab];
      for (let j = 0; j < k; j++) grad[o + j] = Math.exp(z[o + j] - lse) / count;
      grad[o + lab] -= 1 / count;
    }
    losses[i] = li / count;
  }
  let total = 0;
  for (const l of losses) total += l;
  return { losses, total, grad: new Tensor(grad, logits.shape) };
}

/** Options of {@link mseLoss}. */
export interface MseLossOptions {
  /**
   * An array of `pred.size` floats to write the gradient into (overwritten whole) instead of a
   * new one: a training loop passes the same array every step to spare a fresh array's page
   * faults.  Must not share memory with `pred` or `target`.
   */
  gradInto?: Float32Array;
}

/**
 * Mean squared error per sample: mean over the sample's elements of (pred - target)^2.
 * `options.gradInto` reuses the caller's array for the gradient ({@link MseLossOptions}).
 */
export function mseLoss(
  pred: Tensor,
  target: Tensor | Float32Array,
  options: MseLossOptions = {},
): LossResult {
  requireInstance('pred', pred, Tensor);
  if (
    !(target instanceof Tensor) &&
    Object.prototype.toString.call(target) !== '[object Float32Array]'
  )
    throw new InvalidArgumentError('target', 'must be a Tensor or a Float32Array');
  const t = target instanceof Tensor ? target.data : target;
  requireLength('target', t, pred.size, 'the elements of pred');
  const batch = pred.shape[0];
  const per = batch > 0 ? pred.size / batch : 0;
  const losses = new Float32Array(batch);
  const into = options.gradInto;
  if (into !== undefined) {
    if (Object.prototype.toString.call(into) !== '[object Float32Array]')
      throw new InvalidArgumentError('options.gradInto', 'must be a Float32Array');
    requireLength('options.gradInto', into, pred.size, 'the elements of pred');
    if (into.buffer === pred.data.buffer || into.buffer === t.buffer)
      throw new InvalidArgumentError(
        'options.gradInto',
        'must not share memory with pred or target',
      );
  }
  const grad = into ?? newArray(pred.size);
  // Native (per ISA, samples split over the pool): the gradient is the plain formula's value
  // exactly; the squares are summed in double in lanes, within a few double ulps of a
  // sequential sum, so each loss is the float of the plain formula's (rarely one ulp apart).
  mseRows(pred.data, t, batch, per, losses, grad);
  let total = 0;
  for (const l of losses) total += l;
  return { losses, total, grad: new Tensor(grad, pred.shape) };
}
