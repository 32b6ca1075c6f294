import type { AuditEntry, EventBus, SecurityEvent } from '../events/index.ts';
import type { Db } from '../store/index.ts';

/**
 * For tests: an event bus that records what is emitted in `events`; `atomically` runs the work in a
 * transaction of `db` and records its events once it committed (none when it threw).
 */
export function recordingEvents(db: Db, events: SecurityEvent[]): Pick<EventBus, 'emit' | 'atomically'> {
  return {
    emit: (e) => {
      events.push(e);
      return Promise.resolve({} as AuditEntry);
    },
    async atomically(work) {
      const batch: SecurityEvent[] = [];
      const result = await db.transaction().execute((tx) => work(tx, (e) => void batch.push(e)));
      events.push(...batch);
      return result;
    },
  };
}
