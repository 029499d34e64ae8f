/**
 * Fixed-point DP-SGD (algorithms.md section 4): gradients are quantized
 * once (the only floating-point step), then clipped, summed and noised with
 * the exact discrete Gaussian entirely in integers, so the floating-point
 * attacks on Gaussian samplers do not apply.
 *
 * Typical use: `clipInt = fixed.clipIntFor(C, f)`; `q = fixed.quantize(g, f)`;
 * `s = fixed.clipSum(q.values, batch, dim, clipInt).sum`;
 * `fixed.addDiscreteGaussianNoise(s, (z * clipInt) ** 2, rng)`;
 * `update = fixed.dequantize(s, f)` divided by the expected batch size.
 */
import { loadAddon } from '../native';
import { MAX_ELEMENTS } from '../validate';
import { Rng, RationalSigmaSq, sigmaSqRational } from './rng';
import { InvalidArgumentError } from '../errors';
import { IntegerLora, planIntegerLora, quantizeInput } from './fixed_lora';

export {
  IntegerLora,
  planIntegerLora,
  quantizeInput,
  noiseCovers,
  parameterCount,
  configFingerprint,
} from './fixed_lora';
export type {
  IntegerLoraConfig,
  IntegerLoraState,
  IntegerLoraPlan,
  IntegerLoraPlanOptions,
  IntegerLoraAccounting,
  IntegerLoraCheckpoint,
} from './fixed_lora';

const addon = loadAddon;
const tag = (v: unknown): string => Object.prototype.toString.call(v);

/** Largest fracBits accepted. */
export const MAX_FRAC_BITS = 30;
/** Largest |value| the quantizer produces (the range is symmetric). */
export const QMAX = 2147483647;
/** batch * clipInt must not exceed this (2^62): the int64 sum keeps 2^62 of headroom for the noise. */
export const SUM_BOUND = 2n ** 62n;

/** Result of {@link quantize}. */
export interface QuantizeResult {
  /** round-half-even(x * 2^fracBits), clamped to [-QMAX, QMAX]. */
  values: Int32Array;
  /** Values clamped (out of range or infinite). */
  saturated: number;
  /** NaN values, stored as 0. */
  nan: number;
}

/** Result of {@link fixedClipSum}. */
export interface FixedClipSumResult {
  /** Sum over samples of the clipped rows, exact int64, length dim. */
  sum: BigInt64Array;
  /** Samples whose squared norm exceeded clipInt^2 and were scaled. */
  clipped: number;
}

/** Result of {@link addDiscreteGaussianNoise}. */
export interface NoiseResult {
  /** The noisy sum (the input array, noised in place). */
  sum: BigInt64Array;
  /** Elements whose noisy value left the int64 range and was saturated. */
  saturated: number;
}

function checkFracBits(fracBits: unknown): number {
  if (typeof fracBits !== 'number')
    throw new InvalidArgumentError('fracBits', 'fracBits must be a number');
  if (!Number.isInteger(fracBits) || fracBits < 0 || fracBits > MAX_FRAC_BITS) {
    throw new InvalidArgumentError(
      'fracBits',
      `fracBits must be an integer in [0, ${MAX_FRAC_BITS}]`,
    );
  }
  return fracBits;
}

/**
 * Quantizes x to fixed point with `fracBits` fractional bits: round to
 * nearest (ties to even), saturating at +-QMAX; NaN becomes 0. Both are
 * counted. This is the only floating-point step of the fixed-point mode.
 */
export function quantize(x: Float32Array, fracBits: number, out?: Int32Array): QuantizeResult {
  if (tag(x) !== '[object Float32Array]')
    throw new InvalidArgumentError('x', 'x must be a Float32Array');
  checkFracBits(fracBits);
  if (out === undefined) out = new Int32Array(x.length);
  else if (tag(out) !== '[object Int32Array]')
    throw new InvalidArgumentError('out', 'out must be an Int32Array');
  const r = addon().fixedQuantize(x, fracBits, out);
  return { values: out, saturated: r.saturated, nan: r.nan };
}

/** q * 2^-fracBits: Int32Array -> Float32Array, BigInt64Array -> Float64Array. */
export function dequantize(q: Int32Array, fracBits: number, out?: Float32Array): Float32Array;
export function dequantize(q: BigInt64Array, fracBits: number, out?: Float64Array): Float64Array;
export function dequantize(
  q: Int32Array | BigInt64Array,
  fracBits: number,
  out?: Float32Array | Float64Array,
): Float32Array | Float64Array {
  checkFracBits(fracBits);
  if (tag(q) === '[object Int32Array]') {
    return addon().fixedDequantize(
      q as Int32Array,
      fracBits,
      (out as Float32Array | undefined) ?? new Float32Array(q.length),
    );
  }
  if (tag(q) === '[object BigInt64Array]') {
    return addon().fixedDequantize(
      q as BigInt64Array,
      fracBits,
      (out as Float64Array | undefined) ?? new Float64Array(q.length),
    );
  }
  throw new InvalidArgumentError('q', 'q must be an Int32Array or BigInt64Array');
}

/** The integer clipping norm floor(maxGradNorm * 2^fracBits), checked to be in [1, QMAX]. */
export function clipIntFor(maxGradNorm: number, fracBits: number): number {
  checkFracBits(fracBits);
  if (typeof maxGradNorm !== 'number')
    throw new InvalidArgumentError('maxGradNorm', 'maxGradNorm must be a number');
  if (!Number.isFinite(maxGradNorm) || !(maxGradNorm > 0))
    throw new InvalidArgumentError('maxGradNorm', 'maxGradNorm must be finite and > 0');
  const c = Math.floor(maxGradNorm * 2 ** fracBits);
  if (c < 1 || c > QMAX)
    throw new InvalidArgumentError(
      'maxGradNorm',
      `maxGradNorm * 2^fracBits must be in [1, 2^31 - 1] (got ${c})`,
    );
  return c;
}

/**
 * Per-sample clipping and summation in integers. grads is [batch, dim]
 * row-major; a row with n2 = sum g^2 > clipInt^2 is scaled by
 * k / 2^32, k = floor(clipInt * 2^32 / ceil_isqrt(n2)), magnitudes
 * truncated toward zero, so every clipped row has sum v^2 <= clipInt^2.
 * Refuses (RangeError) batch * clipInt > 2^62, which keeps |sum| <= 2^62.
 */
export function fixedClipSum(
  grads: Int32Array,
  batch: number,
  dim: number,
  clipInt: number,
  out?: BigInt64Array,
): FixedClipSumResult {
  if (tag(grads) !== '[object Int32Array]')
    throw new InvalidArgumentError('grads', 'grads must be an Int32Array');
  if (out === undefined) {
    if (typeof dim !== 'number' || !Number.isInteger(dim) || dim < 0)
      throw new InvalidArgumentError('dim', 'dim must be a non-negative integer');
    if (dim > MAX_ELEMENTS)
      throw new InvalidArgumentError('dim', `dim must be <= ${MAX_ELEMENTS}, got ${dim}`);
    if (
      typeof batch === 'number' &&
      Number.isInteger(batch) &&
      batch > 0 &&
      batch * dim !== grads.length
    ) {
      throw new InvalidArgumentError(
        'grads',
        `grads has length ${grads.length} but the shape needs ${batch * dim}`,
      );
    }
    out = new BigInt64Array(dim);
  } else if (tag(out) !== '[object BigInt64Array]') {
    throw new InvalidArgumentError('out', 'out must be a BigInt64Array');
  }
  const clipped = addon().fixedClipSum(grads, batch, dim, clipInt, out);
  return { sum: out, clipped };
}

/**
 * Adds exact discrete Gaussian noise N_Z(0, sigmaSq) to each element of the
 * integer sum in place (for DP-SGD sigmaSq = (z * clipInt)^2). The addition
 * is exact and then saturated to the int64 range (counted). Draws from `rng`.
 */
export function addDiscreteGaussianNoise(
  sum: BigInt64Array,
  sigmaSq: number | RationalSigmaSq,
  rng: Rng,
): NoiseResult {
  if (tag(sum) !== '[object BigInt64Array]')
    throw new InvalidArgumentError('sum', 'sum must be a BigInt64Array');
  const { num, den } = sigmaSqRational(sigmaSq);
  if (!(rng instanceof Rng)) throw new InvalidArgumentError('rng', 'rng must be an Rng');
  const saturated = Rng.useStream(rng, (key, nonce, position) => {
    const r = addon().fixedAddDiscreteGaussian(key, nonce, position, sum, num, den);
    return { result: r.saturated, next: r.position };
  });
  return { sum, saturated };
}

/** The fixed-point mode as one namespace object. */
export const fixed = {
  MAX_FRAC_BITS,
  QMAX,
  SUM_BOUND,
  /** {@inheritDoc quantize} */
  quantize,
  /** Converts fixed-point integers back to floats (see {@link dequantize}). */
  dequantize,
  /** {@inheritDoc clipIntFor} */
  clipIntFor,
  /** {@inheritDoc fixedClipSum} */
  clipSum: fixedClipSum,
  /** {@inheritDoc addDiscreteGaussianNoise} */
  addDiscreteGaussianNoise,
  /** Plans an integer-only private LoRA run for an FPU-less device (see {@link planIntegerLora}). */
  planIntegerLora,
  /** The integer-only private LoRA step on the host (see {@link IntegerLora}). */
  IntegerLora,
  /** Features to the device int8 input (see {@link quantizeInput}). */
  quantizeInput,
};
