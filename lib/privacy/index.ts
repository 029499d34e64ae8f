/** The privacy layer: samplers, DP optimizer, engine, errors. */
export { PrivacyBudgetExceededError, PerSampleGradError } from './errors';
export { PoissonSampler, ShuffleSampler, splitMicroBatches } from './samplers';
export type { BatchSampler, SamplerState } from './samplers';
export { DPOptimizer, trackModules } from './dp_optimizer';
export type {
  ClippingMode,
  DPOptimizerOptions,
  DPStepHooks,
  DPStepStats,
  TrackedModule,
} from './dp_optimizer';
export { PrivacyEngine, LedgerMismatchError } from './privacy_engine';
export type {
  MakePrivateOptions,
  MakePrivateWithEpsilonOptions,
  PrivateTraining,
  LogicalBatch,
  PrivacyConfig,
  PrivacyEngineState,
} from './privacy_engine';
export { seedToKey } from './seed';
export type { SeedLike } from './seed';
