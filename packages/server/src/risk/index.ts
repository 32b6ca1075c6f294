export { createRisk, type Risk, type RiskDeps, type VulnerabilityComplianceFacts } from './risk.service.ts';
export { riskRoutes, type RiskRoutesDeps } from './risk.routes.ts';
export type {
  VulnerabilityService,
  ReleaseVulnerability,
  DeviceExposure,
  ImportResult,
  FirmwareReads,
} from './vulnerability.service.ts';
export {
  advisorySeverities,
  advisoryRank,
  parseAdvisorySeverity,
  type AdvisorySeverity,
} from './severity.ts';
export { parseAdvisories, type Advisory } from './osv.ts';
export { scoreCvss, scoreCvssBatch, type CvssScore, type CvssVersion } from './cvss.ts';
export {
  feasibilityFromAttackPotential,
  feasibilityFromAttackVector,
  feasibilityFromCvss,
  impactOf,
  riskValue,
  attackPotentialFactors,
  feasibilityLevels,
  impactCategories,
  impactLevels,
  treatments,
  type AttackPotentialFactor,
  type AttackPotentialRating,
  type Feasibility,
  type ImpactCategory,
  type ImpactLevel,
  type Treatment,
} from './tara-method.ts';
export {
  evaluateTara,
  taraDocument,
  type TaraDocument,
  type TaraResult,
  type TaraPathResult,
} from './tara.ts';
export { taraHtml, TARA_REPORT_CSP } from './tara.html.ts';
export { registerHtml, REGISTER_REPORT_CSP, type RegisterReport } from './register.html.ts';
export { registerReport } from './register.report.ts';
export { registerRoutes } from './register.routes.ts';
export type { Register, RiskComplianceFacts, ZoneLevel, TaraSummary } from './register.service.ts';
export type { Asset, RiskInventory } from './assets.ts';
export type { RegisterRisk } from './register.store.ts';
