// Appends to the audit log in a tight loop from a process of its own until it is killed: the other writer
// of store.test.ts's verification-under-load test. Arguments: the SQLite file or PostgreSQL URL, and the
// master key as hex.
import { createAuditLog, type SecurityEvent } from '../events/index.ts';
import { createSecretBox } from '../secrets/index.ts';
import { isBusy, isUniqueViolation, openStore } from '../store/index.ts';

const [location = '', keyHex = ''] = process.argv.slice(2);
const store = await openStore(
  location.startsWith('postgres') ? { databaseUrl: location } : { sqliteFile: location },
);
const log = createAuditLog({
  db: store.db,
  mac: createSecretBox(Buffer.from(keyHex, 'hex')),
  now: Date.now,
  isRetryable: (e) => isUniqueViolation(e) || isBusy(e),
});
process.stdout.write('ready\n');
for (let n = 0; ; n++) {
  const batch: SecurityEvent[] = Array.from({ length: 1 + (n % 5) }, (_, i) => ({
    type: 'device.added',
    actor: 'flood',
    subject: `device:f${n}-${i}`,
    data: { group: null },
  }));
  await log.append(batch);
}
