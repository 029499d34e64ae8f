/**
 * Inverted dropout: in training, zeroes each element with probability p and
 * scales the rest by 1/(1-p); identity in eval mode.  Masks use public
 * (non-cryptographic) randomness: they are part of each sample's own function.
 */
import { InitRandom } from './init';
import { Module, checkGradShape, noForward } from './module';
import { Tensor } from './tensor';
import { InvalidArgumentError } from '../errors';

/** Dropout layer. */
export class Dropout extends Module {
  /** Drop probability in [0, 1). */
  readonly p: number;
  private rnd: InitRandom;
  private mask: Float32Array | null = null;
  private shape: number[] | null = null;

  constructor(p: number, seed?: number) {
    super();
    if (!(p >= 0 && p < 1))
      throw new InvalidArgumentError('p', `Dropout: p must be in [0, 1), got ${p}`);
    this.p = p;
    this.rnd = new InitRandom(seed);
  }

  forward(x: Tensor): Tensor {
    this.shape = x.shape;
    if (!this.training || this.p === 0) {
      this.mask = null;
      return x;
    }
    const keep = 1 / (1 - this.p);
    const m = new Float32Array(x.size);
    const y = new Float32Array(x.size);
    for (let i = 0; i < m.length; i++) {
      m[i] = this.rnd.next() >= this.p ? keep : 0;
      y[i] = x.data[i] * m[i];
    }
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
