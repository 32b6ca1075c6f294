import { eventsIn } from '../events/index.ts';
import type { NotificationEntry } from './channel.types.ts';

/** Refusals, denials and failures: worth a warning even when nothing rates them (the catalog's group). */
const WARNING: ReadonlySet<string> = eventsIn('warning');

/** RFC 5424 §6.2.1 Table 2 severities for an entry: rated events by their rating, refusals 4, the rest 6. */
export function syslogSeverity(entry: Pick<NotificationEntry, 'type' | 'data'>): number {
  switch (entry.data.severity) {
    case 'critical':
      return 2; // Critical
    case 'high':
      return 3; // Error
    case 'medium':
      return 4; // Warning
    case 'low':
      return 5; // Notice
  }
  return WARNING.has(entry.type) ? 4 : 6; // Warning : Informational
}

/** CEF severity 0-10 (ArcSight: 0-3 low, 4-6 medium, 7-8 high, 9-10 very high). */
export function cefSeverity(entry: Pick<NotificationEntry, 'type' | 'data'>): number {
  switch (entry.data.severity) {
    case 'critical':
      return 10;
    case 'high':
      return 8;
    case 'medium':
      return 5;
    case 'low':
      return 3;
  }
  return WARNING.has(entry.type) ? 4 : 1;
}
