/**
 * Compliance (issue 16): the organisation baseline, the automated checks over facts every module states
 * through its door, frameworks as data, runs with evidence, attestations, waivers and reports.
 */
export {
  createCompliance,
  type Compliance,
  type ComplianceDeps,
  type MeasuredLevel,
  type ReportFormat,
  type RunTrigger,
} from './compliance.service.ts';
export { KEEP_RESULTS, type RunSummary } from './runs.store.ts';
export { checkIds, type CheckId, type CheckDefinition, type Evidence } from './checks/types.ts';
export type { ComplianceFacts, ComplianceSources, FactContext, FactSource } from './facts.ts';
export type {
  AttestationView,
  CheckResult,
  ClauseResult,
  Framework,
  FrameworkClause,
  RunResult,
  StandardResult,
  TrendPoint,
  WaiverView,
} from './model.ts';
export {
  createBaselineService,
  describeBaselineErrors,
  frameworkClauses,
  type BaselineChange,
  type BaselineError,
  type BaselineService,
  type CurrentBaseline,
} from './baseline.service.ts';
export { describeChange, renderBaseline, validateBaselineText } from './baseline.document.ts';
export { baselineRoutes } from './baseline.routes.ts';
export {
  complianceRoutes,
  checkCatalogView,
  runsView,
  reportFileName,
  type ComplianceApi,
} from './compliance.routes.ts';
export type { AttestationRecord, AttestationInput } from './attestations.ts';
export type { WaiverRecord, WaiverInput } from './waivers.ts';
export { escapeHtml } from './report.html.ts';
export { zoneTarget } from './checks/index.ts';
