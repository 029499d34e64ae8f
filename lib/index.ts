/**
 * dp-lora: differentially private LoRA fine-tuning for Node.js.
 * Every public name is exported from here.
 */
export { capabilities, setIsa, setThreads, loadAddon, NativeLoadError } from './native';
export type { Capabilities } from './native';
