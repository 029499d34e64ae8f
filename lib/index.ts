/**
 * dp-lora: differentially private LoRA fine-tuning for Node.js.
 * Every public name is exported from here.
 */
export { capabilities, setIsa, setThreads, loadAddon, NativeLoadError } from './native';
export type { Capabilities } from './native';
export {
  perSampleGradNormSq,
  perSampleGradNormSqAsync,
  clippedSum,
  clippedSumAsync,
  sgemm,
  sgemmAsync,
  clipFactors,
  clipRows,
} from './kernels/linalg';
export type { NormMethod, GradShape, SgemmOptions, ClipResult } from './kernels/linalg';
export { Rng, chacha20Block, sigmaSqRational } from './kernels/rng';
export type { RngOptions, RngState, RationalSigmaSq } from './kernels/rng';
export {
  RdpAccountant,
  PldAccountant,
  accountantFromJSON,
  createAccountant,
  computeRdp,
  rdpToEpsilon,
  zcdpToEpsilon,
  zcdpToDelta,
  getNoiseMultiplier,
  calibrateNoiseMultiplier,
  adaptiveClippingNoiseMultiplier,
  LedgerFormatError,
  DEFAULT_ORDERS,
  DEFAULT_PLD_PARAMETERS,
} from './accounting';
export type {
  Accountant,
  AccountantKind,
  ComputeRdpOptions,
  LedgerJson,
  Mechanism,
  NoiseCalibration,
  NoiseMultiplierOptions,
  PldParameters,
  PrivacyEvent,
  RdpConversion,
  StepSpec,
} from './accounting';
// Training core: layers with per-sample support, optimizers, the privacy engine.
export * from './nn';
export * from './optim';
export * from './privacy';
