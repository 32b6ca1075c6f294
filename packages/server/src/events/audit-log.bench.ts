import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { bench, describe } from 'vitest';
import { createSecretBox } from '../secrets/index.ts';
import { isBusy, isUniqueViolation, openStore } from '../store/index.ts';
import { actorOf, createAuditLog, createEventBus, subjectOf, type SecurityEvent } from './index.ts';

// Durable appends on SQLite (WAL, synchronous=FULL): one at a time, and batched by the event bus.
const store = await openStore({
  sqliteFile: path.join(mkdtempSync(path.join(tmpdir(), 'bulwark-bench-')), 'bench.db'),
});
const log = createAuditLog({
  db: store.db,
  mac: createSecretBox(randomBytes(32)),
  now: Date.now,
  isRetryable: (e) => isUniqueViolation(e) || isBusy(e),
});
const bus = createEventBus({ log });
const event: SecurityEvent = {
  type: 'mqtt.publish_denied',
  actor: actorOf.device('bench'),
  subject: subjectOf.device('bench'),
  data: { topic: 'devices/other/x', reason: 'outside_own_subtree' },
};
await log.append(Array.from({ length: 10_000 }, () => event));

describe('audit log', () => {
  bench('append 1 event (one durable transaction)', async () => {
    await log.append([event]);
  });
  bench(
    'emit 1,000 concurrent events (batched by the bus)',
    async () => {
      await Promise.all(Array.from({ length: 1000 }, () => bus.emit(event)));
    },
    { iterations: 5 },
  );
  bench(
    'verify the whole chain (10,000+ entries)',
    async () => {
      await log.verify();
    },
    { iterations: 3 },
  );
});
