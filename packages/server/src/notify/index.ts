export {
  createNotifyService,
  notifyNodeId,
  retryDelay,
  type NotifyService,
  type NotifySettings,
  type ChannelInput,
  type ChannelPatch,
  type TestResult,
} from './notify.service.ts';
export { notifyRoutes } from './notify.routes.ts';
export { deliversAuditLog, type ExporterFact } from './notify.facts.ts';
export {
  channelKinds,
  channelFormats,
  syslogTransports,
  severities,
  defaultFilter,
  type Channel,
  type ChannelFilter,
  type ChannelKind,
  type ChannelFormat,
  type ChannelStats,
  type NotificationEntry,
} from './channel.types.ts';
export { formatRfc5424, frameOctetCounted, SD_ID } from './rfc5424.ts';
export { formatCef } from './cef.ts';
export { webhookId } from './webhook.ts';
