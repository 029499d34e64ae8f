/** Optimizers and learning-rate schedules, privacy-agnostic (all public: the root re-exports them). */
export { Optimizer } from './optimizer';
export type { OptimizerState } from './optimizer';
export { SGD } from './sgd';
export type { SGDOptions } from './sgd';
export { Adam, AdamW } from './adam';
export type { AdamOptions } from './adam';
export {
  constantSchedule,
  linearSchedule,
  cosineSchedule,
  namedSchedule,
  LRScheduler,
} from './schedules';
export type { Schedule, ScheduleName } from './schedules';
export { WeightAverage } from './weight_average';
export type { WeightAverageOptions } from './weight_average';
