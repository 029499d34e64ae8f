/**
 * Inverted dropout: in training, zeroes each element with probability p and
 * scales the rest by 1/(1-p); identity in eval mode.  Masks use public
 * (non-cryptographic) randomness: they are part of each sample's own function.
 * With a record context ({@link Module.setRecordContext}) each record's mask
 * is keyed by (run key, step, record index, layer); without one (only allowed
 * outside private training) masks come from the layer's own seeded stream.
 */
import { InitRandom } from './init';
import { InvalidStateError } from '../errors';
import { Module, checkGradShape, noForward } from './module';
import { recordDropoutMask } from './record_random';
import { Tensor } from './tensor';
import { requireNumber } from '../validate';

/** Dropout layer. */
export class Dropout extends Module {
  /** Drop probability in [0, 1). */
  readonly p: number;
  private rnd: InitRandom;
  private mask: Float32Array | null = null;
  private shape: number[] | null = null;

  constructor(p: number, seed?: number) {
    super();
    this.p = requireNumber('p', p, { min: 0, lessThan: 1 });
    this.rnd = new InitRandom(seed);
  }

  forward(x: Tensor): Tensor {
    this.shape = x.shape;
    if (!this.training || this.p === 0) {
      this.mask = null;
      return x;
    }
    const m = dropoutMask(this, x, this.p, this.rnd, 'Dropout');
    const y = new Float32Array(x.size);
    for (let i = 0; i < m.length; i++) y[i] = x.data[i] * m[i];
    this.mask = m;
    return new Tensor(y, x.shape);
  }

  backward(gradOut: Tensor): Tensor {
    if (!this.shape) throw noForward('Dropout.backward');
    checkGradShape(gradOut, this.shape, 'Dropout.backward');
    const m = this.mask;
    this.shape = null;
    if (!m) return gradOut;
    const gi = new Float32Array(m.length);
    for (let i = 0; i < m.length; i++) gi[i] = gradOut.data[i] * m[i];
    this.mask = null;
    return new Tensor(gi, gradOut.shape);
  }
}

/**
 * The inverted-dropout mask of `x` for `layer`: per record from its record
 * context when one is set; otherwise from `rnd` in row order, which private
 * training ('perSample' mode) refuses.
 */
export function dropoutMask(
  layer: Module,
  x: Tensor,
  p: number,
  rnd: InitRandom,
  who: string,
): Float32Array {
  const batch = x.shape[0];
  const ctx = layer.recordContext;
  if (ctx) return recordDropoutMask(ctx, batch, batch > 0 ? x.size / batch : 0, p);
  if (layer.gradMode === 'perSample')
    throw new InvalidStateError(
      `${who}: dropout in private training needs the batch's record indices (model.setRecordContext before each forward pass), so that each record's mask is keyed by the record, not its position`,
    );
  const keep = 1 / (1 - p);
  const m = new Float32Array(x.size);
  for (let i = 0; i < m.length; i++) m[i] = rnd.next() >= p ? keep : 0;
  return m;
}
