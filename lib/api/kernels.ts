/**
 * `dp-lora/kernels`: the native kernels (per-sample gradient norms, clipping, clipped sums,
 * SGEMM), the ChaCha20-based cryptographic RNG with Gaussian and exact discrete Gaussian
 * sampling, and control of the addon's ISA path and threads.
 *
 * @packageDocumentation
 * @module dp-lora/kernels
 */
export { capabilities, setIsa, setThreads } from '../native';
export type { Capabilities } from '../native';
export {
  perSampleGradNormSq,
  perSampleGradNormSqAsync,
  clippedSum,
  clippedSumAsync,
  sgemm,
  sgemmAsync,
  clipFactors,
  clipRows,
  PackedMatrix,
} from '../kernels/linalg';
export type {
  NormMethod,
  GradShape,
  SgemmOptions,
  ClipResult,
  PackOptions,
  BaseDtype,
  PackedGemmOptions,
  PackedInit,
} from '../kernels/linalg';
export { Rng } from '../kernels/rng';
export type { RngOptions, RngState, RationalSigmaSq } from '../kernels/rng';
