import { eventTypes, type AuditLog } from '../events/index.ts';
import type { Db } from '../store/index.ts';
import { channelStore, type ChannelRow } from './channel.store.ts';
import type { ChannelFilter } from './channel.types.ts';
import { compileFilter } from './filter.ts';

/** A channel that exports the audit log, as the compliance checks read it (the consumer's `exporters`). */
export interface ExporterFact {
  name: string;
  kind: string;
  enabled: boolean;
  /** Audit entries after the channel's cursor: not delivered yet. */
  lag: number;
  /** Consecutive failed attempts at the entry the channel is stuck on (stored: every process sees them). */
  failures: number;
  lastDeliveredAt: number | null;
}

/**
 * A channel exports the audit log when its filter lets every event type through, whatever its severity
 * (IEC 62443-4-2 CR 6.1, NIST SP 800-82 audit export); one filtered to alerts is a notification, not an export.
 */
export function deliversAuditLog(filter: ChannelFilter): boolean {
  if (filter.minSeverity !== undefined) return false;
  const passes = compileFilter({ types: filter.types });
  return eventTypes.every((type) =>
    passes({ seq: 0, ts: 0, type, actor: 'system', subject: null, data: {}, hash: '' }),
  );
}

const filterOf = (row: ChannelRow) => JSON.parse(row.filter) as ChannelFilter;

/** The channels that export the whole audit log, enabled or not, with how far behind they are. */
export async function exporterFacts(deps: {
  db: Db;
  audit: Pick<AuditLog, 'head'>;
}): Promise<ExporterFact[]> {
  const [rows, head] = await Promise.all([channelStore.list(deps.db), deps.audit.head()]);
  return rows
    .filter((row) => deliversAuditLog(filterOf(row)))
    .map((row) => ({
      name: row.name,
      kind: row.kind,
      enabled: row.enabled === 1,
      lag: Math.max(0, head.seq - row.cursor),
      failures: row.attempts,
      lastDeliveredAt: row.last_delivered_at,
    }));
}
