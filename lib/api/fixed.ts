/**
 * `dp-lora/fixed`: the integer-only (fixed-point) mode. Gradients are quantized once, then
 * clipped, summed and noised with the exact discrete Gaussian entirely in integer arithmetic.
 *
 * @packageDocumentation
 * @module dp-lora/fixed
 */
export {
  fixed,
  quantize,
  dequantize,
  clipIntFor,
  fixedClipSum,
  addDiscreteGaussianNoise,
  MAX_FRAC_BITS,
  QMAX,
  SUM_BOUND,
  planIntegerLora,
  IntegerLora,
  quantizeInput,
  noiseCovers,
  parameterCount,
  configFingerprint,
} from '../kernels/fixed';
export type {
  QuantizeResult,
  FixedClipSumResult,
  NoiseResult,
  IntegerLoraConfig,
  IntegerLoraState,
  IntegerLoraPlan,
  IntegerLoraPlanOptions,
  IntegerLoraAccounting,
  IntegerLoraCheckpoint,
} from '../kernels/fixed';
