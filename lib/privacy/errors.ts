/** Errors of the privacy layer (defined with the rest of the hierarchy in lib/errors.ts). */
export { PrivacyBudgetExceededError, PerSampleGradError } from '../errors';
