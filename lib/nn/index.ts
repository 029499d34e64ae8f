/** Neural-network layers with per-sample gradient support (all public: the root re-exports them). */
export { Tensor, Parameter } from './tensor';
export type { GradSource } from './tensor';
export { Module, isPerSampleModule } from './module';
export type { GradMode, PerSampleModule, ClippedSink } from './module';
export { Linear } from './linear';
export type { LinearOptions } from './linear';
export { LoraLinear } from './lora_linear';
export type { LoraOptions, LoraMethod } from './lora_linear';
export { ReLU, GELU, Tanh } from './activations';
export { LayerNorm } from './layer_norm';
export type { LayerNormOptions } from './layer_norm';
export { Dropout } from './dropout';
export { Sequential } from './sequential';
export { crossEntropyLoss, mseLoss } from './losses';
export type { LossResult } from './losses';
export { loraModules, trainableParameters } from './lora_modules';
