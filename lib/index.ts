/**
 * dp-lora: differentially private LoRA fine-tuning for Node.js.
 * Every public name is exported from here.
 */
export {
  DpLoraError,
  ErrorCode,
  InvalidArgumentError,
  InvalidStateError,
  NativeError,
} from './errors';
export type { ErrorCodeValue, DpLoraErrorOptions } from './errors';
export { capabilities, setIsa, setThreads, loadAddon, NativeLoadError } from './native';
export type { NativeAddon } from './native_types';
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
  maxStepsWithinBudget,
  adaptiveClippingNoiseMultiplier,
  discreteGaussianDelta,
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
export {
  parseSafetensors,
  readSafetensors,
  serializeSafetensors,
  writeSafetensors,
  SafetensorsError,
} from './io/safetensors';
export type { SafetensorsDtype, StTensor, StTensorInput, SafetensorsFile } from './io/safetensors';
export {
  saveAdapter,
  loadAdapter,
  loadPrivacyReport,
  defaultAdapterConfig,
  encodeAdapter,
  decodeAdapter,
  AdapterFormatError,
} from './io/peft_adapter';
export type { AdapterConfig, AdapterData, LoraTensors, PrivacyReport } from './io/peft_adapter';
export { saveCheckpoint, loadCheckpoint, hasCheckpoint, CheckpointError } from './io/checkpoint';
export type { CheckpointState } from './io/checkpoint';
export { atomicWriteFile, atomicWriteDir } from './io/atomic';
export {
  loadSpamCorpus,
  splitSpamCorpus,
  keyFraction,
  PUBLIC_GROUPS,
  PRIVATE_GROUPS,
} from './data/spam_corpus';
export type { Mail, SpamSplit } from './data/spam_corpus';
export {
  featurize,
  featurizeInto,
  splitMail,
  DEFAULT_FEATURIZER,
  FEATURIZER_VERSION,
} from './data/featurize';
export type { FeaturizerConfig } from './data/featurize';
export {
  loadUserData,
  parseCsv,
  parseCsvData,
  parseJsonl,
  DataFormatError,
} from './data/user_data';
export type { LabelledTexts } from './data/user_data';
export { fixed, fixedClipSum } from './kernels/fixed';
export type { QuantizeResult, FixedClipSumResult, NoiseResult } from './kernels/fixed';
