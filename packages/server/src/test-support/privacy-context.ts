import { randomBytes } from 'node:crypto';
import {
  createAuditLog,
  createEventBus,
  subjectOf,
  type AuditLog,
  type EventBus,
  type Subject,
  type SubjectData,
} from '../events/index.ts';
import {
  createPrivacyService,
  type PrivacyApp,
  type PrivacyDeps,
  type PrivacyService,
  type PrivacySources,
} from '../privacy/index.ts';
import { createSecretBox } from '../secrets/index.ts';
import { isBusy, isUniqueViolation } from '../store/index.ts';
import { createTelemetryService, type TelemetryService } from '../telemetry/index.ts';
import { createTestStore, type TestStore } from './dialects.ts';

/**
 * The privacy service over a real store (audit log, event bus, data keys, the telemetry store) with small
 * stand-ins for what other modules hold (device and user records, apps), for the tests of privacy's use
 * cases without a whole platform.
 */
export interface PrivacyTestContext {
  t: TestStore;
  privacy: PrivacyService;
  deps: PrivacyDeps;
  log: AuditLog;
  bus: EventBus;
  telemetry: TelemetryService;
  /** Set the clock (epoch ms). */
  clock: { now: number };
  /** Records the stand-in modules hold, by subject string (`user:alice`, `device:pump-1`). */
  held: { users: Map<string, Record<string, unknown>[]>; devices: Map<string, Record<string, unknown>[]> };
  apps: PrivacyApp[];
  errors: unknown[];
  /** Stores a message as the telemetry stage keeps it: its payload (kept form), schema and subject. */
  keep(m: StoredMessage): Promise<void>;
  close(): Promise<void>;
}

export interface StoredMessage {
  subject: string | null;
  payload: unknown;
  /** Default pump-1. */
  device?: string;
  /** Default now. */
  at?: number;
  /** Default room-sensor. */
  schema?: string;
}

/** A module holding records by subject; erasing emits `user.updated` (as the users module does). */
function standIn(
  module: string,
  records: Map<string, Record<string, unknown>[]>,
  bus: EventBus,
): SubjectData {
  const key = (s: Subject) => `${s.kind}:${s.id ?? ''}`;
  return {
    module,
    exportSubject: (s) => Promise.resolve(records.get(key(s)) ?? []),
    async eraseSubject(s, actor) {
      const held = records.get(key(s)) ?? [];
      records.delete(key(s));
      if (held.length > 0 && s.kind === 'user')
        await bus.atomically((_tx, emit) => {
          emit({
            type: 'user.updated',
            actor,
            subject: subjectOf.user(s.id),
            data: { changes: { erased: true } },
          });
          return Promise.resolve();
        });
      return { erased: held.length };
    },
  };
}

export async function createPrivacyTestContext(
  dialect: TestStore['location']['dialect'],
  settings: { requestDeadlineDays?: number } = {},
): Promise<PrivacyTestContext> {
  const t = await createTestStore(dialect);
  const box = createSecretBox(randomBytes(32));
  const clock = { now: 1_800_000_000_000 };
  const now = () => clock.now;
  const log = createAuditLog({
    db: t.store.db,
    mac: box,
    now,
    isRetryable: (e) => isUniqueViolation(e) || isBusy(e),
  });
  await log.ensureAnchor();
  const errors: unknown[] = [];
  const bus = createEventBus({ log, db: t.store.db, onError: (err) => errors.push(err) });
  const telemetry = createTelemetryService({ db: t.store.db, events: bus, now });
  const held: PrivacyTestContext['held'] = { users: new Map(), devices: new Map() };
  const apps: PrivacyApp[] = [];
  const sources: PrivacySources = {
    telemetry: { ...telemetry.privacySource },
    devices: standIn('devices', held.devices, bus),
    users: standIn('users', held.users, bus),
    apps: { list: () => Promise.resolve(apps) },
    audit: { query: log.query, erasePersonal: log.erasePersonal },
    telemetryRows: (q: Parameters<TelemetryService['rowsForSchema']>[0]) => telemetry.rowsForSchema(q),
  };
  const deps: PrivacyDeps = {
    db: t.store.db,
    events: bus,
    now,
    box,
    settings: {
      pseudonymKeyPeriodMs: 86_400_000,
      pseudonymKeysKept: 2,
      requestDeadlineDays: settings.requestDeadlineDays ?? 30,
      retentionIntervalMs: 3_600_000,
      requestCheckIntervalMs: 3_600_000,
      controller: { name: 'Example GmbH', contact: 'dpo@example.com' },
    },
    sources: () => sources,
    onError: (err) => errors.push(err),
  };
  const privacy = createPrivacyService(deps);
  let seq = 0;
  await privacy.start();
  return {
    t,
    privacy,
    deps,
    log,
    bus,
    telemetry,
    clock,
    held,
    apps,
    errors,
    async keep(m) {
      const payload = Buffer.from(JSON.stringify(m.payload));
      const at = m.at ?? clock.now;
      const device = m.device ?? 'pump-1';
      seq++;
      await t.store.db
        .insertInto('telemetry_messages')
        .values({
          id: `${String(at).padStart(16, '0')}-${String(seq).padStart(6, '0')}`,
          device_id: device,
          topic: `devices/${device}/telemetry`,
          pattern: 'devices/+/telemetry',
          received_at: at,
          payload: payload.toString('base64'),
          bytes: payload.length,
          subject_id: m.subject,
          data_schema: m.schema ?? 'room-sensor',
        })
        .execute();
    },
    async close() {
      await privacy.stop();
      await telemetry.stop();
      await bus.close();
      await t.cleanup();
    },
  };
}
