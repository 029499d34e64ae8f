/** The privacy layer: samplers, DP optimizer, engine, errors (all public: the root re-exports them). */
export { PrivacyBudgetExceededError, PerSampleGradError } from './errors';
export { PoissonSampler, ShuffleSampler } from './samplers';
export type { BatchSampler, SamplerState } from './samplers';
export { DPOptimizer } from './dp_optimizer';
export { GradientSubspace } from './gradient_subspace';
export type { SubspaceFitOptions } from './gradient_subspace';
export type {
  ClippingMode,
  DPOptimizerOptions,
  DPStepHooks,
  DPStepStats,
  PerSampleGradientRows,
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
export type { SeedLike } from './seed';
