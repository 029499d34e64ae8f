/** One-run empirical privacy audit (Steinke, Nasr, Jagielski 2023). */
export { auditPValue, epsilonLowerBound } from './bound';
export { runAudit, builtinAuditData } from './one_run';
export type { AuditOptions, AuditResult, AuditData, AuditPlant, CanaryKind } from './one_run';
