import { deviceIdOf, type AuditEntry, type EventBus } from '../events/index.ts';
import type { Db, DbOrTx } from '../store/index.ts';
import * as store from './device.store.ts';

/** The events that keep a device's operational state (online, last seen, certificate expiry) current. */
const followed = [
  'mqtt.connected',
  'mqtt.disconnected',
  'mqtt.session_dropped',
  'certificate.issued',
] as const;
type Followed = AuditEntry<(typeof followed)[number]>;

async function onEntry(q: DbOrTx, entry: Followed): Promise<void> {
  const id = deviceIdOf(entry.subject);
  if (!id) return;
  if (entry.type === 'mqtt.connected') await store.recordConnected(q, id, entry.ts);
  else if (entry.type === 'certificate.issued') await store.recordCertificate(q, id, entry.data.notAfter);
  else await store.recordDisconnected(q, id, entry.ts);
}

/**
 * In the server: follows session and certificate events so the device's last-seen time, online flag and
 * certificate expiry can be read by any process (the CLI has no broker). Counts left by a crash are cleared
 * first: nothing is connected before the broker listens. One broker node per store.
 */
export async function follow(
  db: Db,
  bus: Pick<EventBus, 'on'>,
  onError: (err: unknown) => void,
): Promise<() => void> {
  await store.clearSessions(db);
  // In order (a disconnect never overtakes the connect before it), and in batches: what arrives while one
  // transaction commits goes into the next, so a connection storm costs a few durable commits, not one per
  // connection on the broker's event loop.
  let pending: Followed[] = [];
  let draining = false;
  const drain = async () => {
    draining = true;
    while (pending.length > 0) {
      const batch = pending;
      pending = [];
      try {
        await db.transaction().execute(async (trx) => {
          for (const entry of batch) await onEntry(trx, entry);
        });
      } catch (err) {
        onError(err);
      }
    }
    draining = false;
  };
  return bus.on(followed, (entry) => {
    pending.push(entry);
    if (draining) return;
    // After this turn of the event loop: the entries of one audit batch arrive one by one, all in this turn.
    draining = true;
    setImmediate(() => void drain());
  });
}
