export {
  createTelemetryService,
  EXPORT_LIMIT,
  type LivePatterns,
  type RetentionResult,
  type SchemaRow,
  type TelemetryDeps,
  type TelemetryPattern,
  type TelemetryService,
} from './telemetry.service.ts';
export type { TelemetryMessage, TelemetryPage, TelemetryQuery } from './telemetry.query.ts';
export { compilePatterns, patternProblem, type PatternMatcher } from './telemetry.patterns.ts';
export {
  createTelemetryStage,
  type TelemetryStageCounters,
  type TelemetryStageDeps,
} from './telemetry.stage.ts';
export { defaultWriterSettings, type TelemetryWriter, type WriterSettings } from './telemetry.writer.ts';
export { telemetryRoutes, type TelemetryRoutesDeps } from './telemetry.routes.ts';
