/**
 * Which positions of a `[batch, seq, ...]` tensor hold real tokens.  Sequence
 * blocks (attention, feed-forward with padding, pooling, timing signal) read
 * it; a container sets it on its children before the forward pass.
 */
import { requireInt } from '../validate';
import { InvalidArgumentError } from '../errors';
import { Module, bsf } from './module';
import type { Tensor } from './tensor';

/** Per-position validity: `valid[b * seq + t]` is 1 for a real token, 0 for padding. */
export interface SequenceMask {
  /** Number of sequences (B). */
  batch: number;
  /** Padded sequence length (T). */
  seq: number;
  /** Validity flags, [batch, seq] flattened row-major (length batch * seq): 1 real, 0 padding. */
  valid: Uint8Array;
}

/** A module whose forward pass depends on the padding mask. */
export interface MaskedModule extends Module {
  /** Sets the mask used by the next forward (and its backward). */
  setMask(mask: SequenceMask | null): void;
}

/** True if `m` reads a padding mask. */
export function isMaskedModule(m: Module): m is MaskedModule {
  return typeof (m as Partial<MaskedModule>).setMask === 'function';
}

/**
 * The mask of sequences of the given lengths padded to `seq` (a real token at
 * t < lengths[b]).
 *
 * @param lengths - tokens of each sequence, each in [0, seq]
 * @param seq - the padded length
 */
export function maskFromLengths(lengths: ArrayLike<number>, seq: number): SequenceMask {
  const batch = lengths.length;
  const valid = new Uint8Array(batch * seq);
  for (let b = 0; b < batch; b++) {
    const n = requireInt(`lengths[${b}]`, lengths[b], { min: 0, max: seq });
    valid.fill(1, b * seq, b * seq + n);
  }
  return { batch, seq, valid };
}

/** Checks that `mask` fits a tensor of `batch` x `seq` positions. */
export function checkMask(mask: SequenceMask, batch: number, seq: number, who: string): void {
  if (mask.batch !== batch || mask.seq !== seq || mask.valid.length !== batch * seq)
    throw new InvalidArgumentError(
      'mask',
      `${who}: the mask is ${mask.batch}x${mask.seq} but the input has ${batch}x${seq} positions`,
    );
}

/**
 * The dimensions of a sequence layer's input `x`, which must be [batch, seq, features] (with
 * `features` columns when given), checked against the padding `mask` when there is one.
 */
export function sequenceInput(
  x: Tensor,
  mask: SequenceMask | null,
  who: string,
  features?: number,
): { batch: number; seq: number; feat: number } {
  if (x.shape.length !== 3)
    throw new InvalidArgumentError(
      'x',
      `${who}: x must be [batch, seq, ${features ?? 'features'}], got ${JSON.stringify(x.shape)}`,
    );
  const dims = bsf(x, who, features);
  if (mask) checkMask(mask, dims.batch, dims.seq, who);
  return dims;
}

/** Zeroes the feature rows of padding positions in place (`x`: [batch*seq, feat]). */
export function zeroPadding(x: Float32Array, mask: SequenceMask | null, feat: number): void {
  if (!mask) return;
  const v = mask.valid;
  for (let r = 0; r < v.length; r++) if (!v[r]) x.fill(0, r * feat, (r + 1) * feat);
}
