/**
 * dp-lora: differentially private LoRA fine-tuning for Node.js.
 *
 * The root entry point (`import ... from 'dp-lora'`) holds what a user fine-tuning a model
 * needs: layers and models with LoRA, optimizers, the privacy engine, accountants and noise
 * calibration, adapters, checkpoints and safetensors files, user data loading and the errors.
 * Specialist layers have their own entry points: `dp-lora/kernels` (native kernels, RNG, ISA and
 * thread control), `dp-lora/fixed` (integer-only mode) and `dp-lora/accounting` (the
 * accountants' details). Nothing else is public: the package's `exports` map forbids deep
 * imports, and test/api_report.test.ts fails when a public name appears or disappears.
 *
 * @packageDocumentation
 * @module dp-lora
 */

// Errors: one hierarchy with stable codes, plus the module-specific classes.
export * from './errors';
export { NativeLoadError } from './native';
export { LedgerFormatError } from './accounting/ledger';
export { PrivacyBudgetExceededError, PerSampleGradError } from './privacy/errors';
export { SafetensorsError } from './io/safetensors';
export { AdapterFormatError } from './io/peft_adapter';
export { CheckpointError } from './io/checkpoint';
export { DataFormatError } from './data/user_data';

// Layers and models with per-sample gradient support.
export { Tensor, Parameter } from './nn/tensor';
export type { GradSource } from './nn/tensor';
export { Module, isPerSampleModule } from './nn/module';
export type { GradMode, PerSampleModule, ClippedSink } from './nn/module';
export { Linear } from './nn/linear';
export type { LinearOptions } from './nn/linear';
export { LoraLinear } from './nn/lora_linear';
export type { LoraOptions, LoraMethod } from './nn/lora_linear';
export { ReLU, GELU, Tanh } from './nn/activations';
export { LayerNorm } from './nn/layer_norm';
export type { LayerNormOptions } from './nn/layer_norm';
export { Dropout } from './nn/dropout';
export { Sequential } from './nn/sequential';
export { crossEntropyLoss, mseLoss } from './nn/losses';
export type { LossResult } from './nn/losses';
export { loraModules, trainableParameters } from './nn/lora_modules';

// Optimizers and learning-rate schedules.
export { Optimizer } from './optim/optimizer';
export type { OptimizerState } from './optim/optimizer';
export { SGD } from './optim/sgd';
export type { SGDOptions } from './optim/sgd';
export { Adam, AdamW } from './optim/adam';
export type { AdamOptions } from './optim/adam';
export { constantSchedule, linearSchedule, cosineSchedule, LRScheduler } from './optim/schedules';
export type { Schedule } from './optim/schedules';

// The private training engine.
export { PoissonSampler, ShuffleSampler } from './privacy/samplers';
export type { BatchSampler, SamplerState } from './privacy/samplers';
export { DPOptimizer } from './privacy/dp_optimizer';
export type {
  ClippingMode,
  DPOptimizerOptions,
  DPStepHooks,
  DPStepStats,
  TrackedModule,
} from './privacy/dp_optimizer';
export { PrivacyEngine } from './privacy/privacy_engine';
export type {
  MakePrivateOptions,
  MakePrivateWithEpsilonOptions,
  PrivateTraining,
  LogicalBatch,
  PrivacyConfig,
  PrivacyEngineState,
} from './privacy/privacy_engine';
export type { SeedLike } from './privacy/seed';

// Accountants and noise calibration (details: dp-lora/accounting).
export {
  RdpAccountant,
  PldAccountant,
  accountantFromJSON,
  createAccountant,
} from './accounting/accountant';
export type { Accountant, RdpAccountantOptions } from './accounting/accountant';
export type { PldParameters } from './accounting/pld';
export type { PrivacyEvent, StepSpec, Mechanism } from './accounting/events';
export type { LedgerJson, AccountantKind } from './accounting/ledger';
export {
  getNoiseMultiplier,
  calibrateNoiseMultiplier,
  maxStepsWithinBudget,
} from './accounting/calibrate';
export type { NoiseMultiplierOptions, NoiseCalibration } from './accounting/calibrate';

// Adapters, checkpoints and safetensors files.
export {
  parseSafetensors,
  readSafetensors,
  serializeSafetensors,
  writeSafetensors,
} from './io/safetensors';
export type { SafetensorsDtype, StTensor, StTensorInput, SafetensorsFile } from './io/safetensors';
export {
  saveAdapter,
  loadAdapter,
  loadPrivacyReport,
  defaultAdapterConfig,
} from './io/peft_adapter';
export type { AdapterConfig, AdapterData, LoraTensors, PrivacyReport } from './io/peft_adapter';
export { saveCheckpoint, loadCheckpoint, hasCheckpoint } from './io/checkpoint';
export type { CheckpointState } from './io/checkpoint';

// Loading and featurizing the user's own data (CSV / JSONL).
export { loadUserData, parseCsv, parseCsvData, parseJsonl } from './data/user_data';
export type { LabelledTexts } from './data/user_data';
export { featurize, DEFAULT_FEATURIZER, FEATURIZER_VERSION } from './data/featurize';
export type { FeaturizerConfig } from './data/featurize';
