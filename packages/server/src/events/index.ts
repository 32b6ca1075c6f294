export {
  eventTypes,
  type EventType,
  type EventData,
  type SecurityEvent,
  type AuditEntry,
} from './event-types.ts';
export { createAuditLog, type AuditLog, type AnchorMac, type VerifyResult } from './audit-log.ts';
export {
  createEventBus,
  atomicSteps,
  type EventBus,
  type EventHandler,
  type AtomicStep,
} from './event-bus.ts';
export { entryHash, GENESIS_HASH } from './hash-chain.ts';
/** What an erased personal value reads as in the audit log (`user:[erased]`, `"[erased]"`). */
export { ERASED as ERASED_PERSONAL } from './personal.ts';
export { createEventRateLimit, type EventRateLimit } from './rate-limit.ts';
export { auditRoutes, streamEvents, type AuditRoutesDeps } from './audit.routes.ts';
export {
  eventCatalog,
  eventGroups,
  eventsIn,
  isIn,
  isEvent,
  entriesOf,
  personalFieldsOf,
  type EventGroup,
  type EventsIn,
} from './event-types.ts';
export {
  subjectKinds,
  subjectOf,
  actorOf,
  parseSubject,
  parseActor,
  subjectIdOf,
  deviceIdOf,
  type Subject,
  type SubjectKind,
  type SubjectString,
  type Actor,
  type SubjectData,
  type ModuleFacts,
} from './subject.ts';
export type { TxEmit } from './event-bus.ts';
export { auditChainFacts, latestPerSubject, type AuditChainFacts } from './audit.facts.ts';
