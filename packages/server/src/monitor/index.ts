export {
  createMonitor,
  DEFAULT_PROFILE_NAME,
  installDefaultProfile,
  responsePermissions,
  type Monitor,
  type ResponseActions,
  type MonitorComplianceFacts,
} from './monitor.service.ts';
export { monitorRoutes, type MonitorRoutesDeps } from './monitor.routes.ts';
export { createMetricsRegistry, type MetricSources } from './prometheus.ts';
export { DeviceMeter } from './meter.ts';
export { alertStatuses, type Alert, type AlertStatus } from './alert.service.ts';
export {
  severities,
  builtinDetectors,
  responseActions,
  type Severity,
  type SecurityProfile,
} from './profile.ts';
