/*
 * What the detectors (monitor/detectors/) use of other modules, through those modules' doors: the lint
 * rule that keeps imports to a module's index.ts does not let a subfolder name another module's door
 * (`../../events/index.ts`), so they import it from here.
 */
export {
  deviceIdOf,
  eventsIn,
  subjectIdOf,
  subjectOf,
  type AuditEntry,
  type EventData,
  type EventType,
} from '../events/index.ts';
export { addressIn } from '../policy/index.ts';
