/**
 * Sinusoidal timing signal (tensor2tensor's add_timing_signal_1d): adds
 * `[sin(t * w_0..w_{n-1}), cos(t * w_0..w_{n-1})]` to each real token at
 * position t, with `w_i = exp(-i * ln(maxTimescale/minTimescale) / (n-1)) / minTimescale`.
 * Padding positions are left unchanged.  No parameters; backward is the identity.
 */
import { requireInt, requireLength } from '../validate';
import { InvalidArgumentError } from '../errors';
import { Module, checkGradShape, noForward } from './module';
import { SequenceMask, sequenceInput } from './sequence_mask';
import { Tensor } from './tensor';
import { scratch } from './workspace';

/** Options of {@link TimingSignal}. */
export interface TimingSignalOptions {
  /** Explicit inverse timescales (length dim/2), e.g. read from a checkpoint. */
  invTimescales?: Float32Array;
  /** Default 1. */
  minTimescale?: number;
  /** Default 1e4. */
  maxTimescale?: number;
}

/** Adds the timing signal to `[batch, seq, dim]` inputs. */
export class TimingSignal extends Module {
  /** Feature width of the inputs (even): dim/2 sine channels, then dim/2 cosine channels. */
  readonly dim: number;
  /** The dim/2 inverse timescales w_i (angular frequency per position). */
  readonly invTimescales: Float32Array;
  private mask: SequenceMask | null = null;
  private savedShape: number[] | null = null;

  constructor(dim: number, options: TimingSignalOptions = {}) {
    super();
    requireInt('dim', dim, { min: 2 });
    if (dim % 2 !== 0) throw new InvalidArgumentError('dim', `must be even, got ${dim}`);
    this.dim = dim;
    const n = dim / 2;
    if (options.invTimescales) {
      requireLength('invTimescales', options.invTimescales, n);
      this.invTimescales = Float32Array.from(options.invTimescales);
    } else {
      const lo = options.minTimescale ?? 1;
      const hi = options.maxTimescale ?? 1e4;
      const inc = n > 1 ? Math.log(hi / lo) / (n - 1) : 0;
      this.invTimescales = new Float32Array(n);
      for (let i = 0; i < n; i++) this.invTimescales[i] = Math.exp(-i * inc) / lo;
    }
  }

  /** Sets the padding mask (padding positions get no signal). */
  setMask(mask: SequenceMask | null): void {
    this.mask = mask;
  }

  forward(x: Tensor): Tensor {
    const { batch, seq } = sequenceInput(x, this.mask, 'TimingSignal.forward', this.dim);
    const n = this.dim / 2;
    const y = scratch(x.size);
    y.set(x.data);
    const sig = new Float32Array(this.dim);
    for (let t = 0; t < seq; t++) {
      for (let i = 0; i < n; i++) {
        // float32 product as in the graph, then sin/cos
        const a = Math.fround(t * this.invTimescales[i]);
        sig[i] = Math.sin(a);
        sig[n + i] = Math.cos(a);
      }
      for (let b = 0; b < batch; b++) {
        if (this.mask && !this.mask.valid[b * seq + t]) continue;
        const o = (b * seq + t) * this.dim;
        for (let j = 0; j < this.dim; j++) y[o + j] += sig[j];
      }
    }
    this.savedShape = this.training ? x.shape : null;
    return new Tensor(y, x.shape);
  }

  backward(gradOut: Tensor): Tensor {
    if (!this.savedShape) throw noForward('TimingSignal.backward');
    checkGradShape(gradOut, this.savedShape, 'TimingSignal.backward');
    this.savedShape = null;
    return gradOut.clone();
  }
}
