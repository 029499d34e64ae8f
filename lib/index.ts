/**
 * dp-lora: differentially private LoRA fine-tuning for Node.js.
 * Every public name is exported from here.
 */
export { capabilities, setIsa, setThreads, loadAddon, NativeLoadError } from './native';
export type { Capabilities } from './native';
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
