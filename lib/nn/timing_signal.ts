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
import { addInPlace } from '../kernels/elementwise';

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
  /**
   * The dim/2 inverse timescales w_i (angular frequency per position); the signal is cached in
   * a table (extended when a longer sequence arrives), so set them before the first forward.
   */
  readonly invTimescales: Float32Array;
  private mask: SequenceMask | null = null;
  private savedShape: number[] | null = null;
  /** The signal of positions [0, rows) ([rows, dim]), computed once and grown on demand. */
  private table = new Float32Array(0);

  /** The signal rows of positions [0, seq). */
  private signal(seq: number): Float32Array {
    const d = this.dim;
    const have = this.table.length / d;
    if (have < seq) {
      const rows = Math.max(seq, 2 * have);
      const t = new Float32Array(rows * d);
      const n = d / 2;
      for (let p = 0; p < rows; p++) {
        for (let i = 0; i < n; i++) {
          // float32 product as in the graph, then sin/cos
          const a = Math.fround(p * this.invTimescales[i]);
          t[p * d + i] = Math.sin(a);
          t[p * d + n + i] = Math.cos(a);
        }
      }
      this.table = t;
    }
    return this.table;
  }

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
    const d = this.dim;
    const y = scratch(x.size);
    y.set(x.data);
    const sig = this.signal(seq);
    const valid = this.mask ? this.mask.valid : null;
    for (let b = 0; b < batch; b++) {
      // The real tokens of a sequence are usually a prefix [0, n): one native add of the
      // signal rows [0, n); otherwise row by row.
      let n = 0;
      while (n < seq && (!valid || valid[b * seq + n])) n++;
      if (n > 0) addInPlace(y.subarray(b * seq * d, (b * seq + n) * d), sig.subarray(0, n * d));
      for (let t = n + 1; t < seq; t++) {
        if (!valid || !valid[b * seq + t]) continue;
        const o = (b * seq + t) * d;
        const so = t * d;
        for (let j = 0; j < d; j++) y[o + j] += sig[so + j];
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
