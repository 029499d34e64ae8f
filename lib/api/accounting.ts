/**
 * `dp-lora/accounting`: the accountants' details for the Poisson-subsampled Gaussian: RDP
 * curves and their conversions to (epsilon, delta), zCDP, the privacy loss distribution (PLD)
 * and its composition, adaptive-clipping and discrete-Gaussian calibration, and the ledger
 * format. The accountants themselves and noise calibration are also on the root entry point.
 *
 * @packageDocumentation
 * @module dp-lora/accounting
 */
export * from '../accounting';
export { rdpPerStep } from '../accounting/rdp';
export { epsilonAtOrder } from '../accounting/conversion';
export {
  discretizeSubsampledGaussian,
  composePlds,
  composedDelta,
  composedEpsilon,
} from '../accounting/pld';
export type { Relation, DiscretePld, PldComponent, ComposedPld } from '../accounting/pld';
