/**
 * Privacy accounting for the Poisson-subsampled Gaussian: RDP and PLD
 * accountants, conversions, noise calibration and the privacy ledger.
 */
export { DEFAULT_ORDERS, computeRdp } from './rdp';
export type { ComputeRdpOptions } from './rdp';
export { rdpToEpsilon, zcdpToEpsilon, zcdpToDelta } from './conversion';
export type { RdpConversion, RdpEpsilon } from './conversion';
export {
  RdpAccountant,
  PldAccountant,
  accountantFromJSON,
  createAccountant,
  INTEGER_ORDERS,
} from './accountant';
export type { Accountant, RdpAccountantOptions, PldEpsilonDetails } from './accountant';
export { DEFAULT_PLD_PARAMETERS } from './pld';
export type { PldParameters } from './pld';
export type { PrivacyEvent, StepSpec, Mechanism } from './events';
export { LedgerFormatError, LEDGER_FORMAT_VERSION } from './ledger';
export type { LedgerJson, AccountantKind } from './ledger';
export { getNoiseMultiplier, calibrateNoiseMultiplier, maxStepsWithinBudget } from './calibrate';
export type { NoiseMultiplierOptions, NoiseCalibration } from './calibrate';
export { adaptiveClippingNoiseMultiplier } from './adaptive';
export { discreteGaussianDelta } from './discrete_gaussian';
export { PrivacyLedger, canonicalJson, LEDGER_CHAIN_TYPE } from './privacy_ledger';
export type {
  LedgerRecord,
  LedgerEntry,
  LedgerChainJson,
  LedgerReport,
  KeySource,
  GenesisRecord,
  StepRecord,
  NoiselessRecord,
  KeyRecord,
  RecordBase,
} from './privacy_ledger';
