/**
 * dp-lora: differentially private LoRA fine-tuning for Node.js.
 * Every public name is exported from here.
 */
export { capabilities, setIsa, setThreads, loadAddon, NativeLoadError } from './native';
export type { Capabilities } from './native';
export { Rng, chacha20Block, sigmaSqRational } from './kernels/rng';
export type { RngOptions, RngState, RationalSigmaSq } from './kernels/rng';
export { fixed, fixedClipSum } from './kernels/fixed';
export type { QuantizeResult, FixedClipSumResult, NoiseResult } from './kernels/fixed';
