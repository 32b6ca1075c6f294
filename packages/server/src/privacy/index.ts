export {
  createPrivacyService,
  type PrivacyService,
  type PrivacyDeps,
  type PrivacyComplianceFacts,
} from './privacy.service.ts';
export type {
  AuditFilter,
  ClassifiedStore,
  PrivacyApp,
  PrivacyContext,
  PrivacySettings,
  PrivacySources,
  TelemetryRow,
} from './privacy.context.ts';
export type { PrivacyLive } from './privacy.live.ts';
export type { DataSchemaView, SchemaTest, SchemaTestResult } from './privacy.schemas.ts';
export type { SubjectDetail, SubjectSummary } from './privacy.subjects.ts';
export type { PrivacyKeys, DataKey, PseudonymKey } from './keys.ts';
export type { CompiledSchema, Consumer, ClassifiedMessage } from './transforms.ts';
export type { FieldPlan } from './data-schema.ts';
export { describeTransform, parseDataSchema } from './data-schema.ts';
export {
  createPrivacyStages,
  type PrivacyStageCounters,
  type PrivacyStageDeps,
  type RetainedClassification,
} from './privacy.stage.ts';
export { privacyRoutes, type PrivacyRoutesService } from './privacy.routes.ts';
