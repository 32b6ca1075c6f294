import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSecretBox } from '../secrets/index.ts';
import { isBusy, isUniqueViolation, type Store } from '../store/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import {
  createAuditLog,
  createEventBus,
  type AuditEntry,
  type EventBus,
  type SecurityEvent,
} from './index.ts';
import { insertOutbox } from './outbox.ts';

const box = createSecretBox(randomBytes(32));
const auditOn = (store: Store) =>
  createAuditLog({
    db: store.db,
    mac: box,
    now: Date.now,
    isRetryable: (e) => isUniqueViolation(e) || isBusy(e),
  });
const added = (id: string): SecurityEvent<'device.added'> => ({
  type: 'device.added',
  actor: 'test',
  subject: `device:${id}`,
  data: { group: null },
});
const metaRow = (name: string) => ({ name, value: 'x', created_at: Date.now() });

describe.each(testDialects)('the outbox: a change and its events commit together (%s)', (dialect) => {
  let t: TestStore;
  let buses: EventBus[] = [];
  const busOn = (store: Store) => {
    const bus = createEventBus({ log: auditOn(store) });
    buses.push(bus);
    return bus;
  };
  beforeEach(async () => {
    t = await createTestStore(dialect);
    buses = [];
  });
  afterEach(async () => {
    for (const bus of buses) await bus.close();
    await t.cleanup();
  });

  const logged = async () =>
    (await auditOn(t.store).readAfter(0, 10_000)).map((e) => `${e.type} ${e.subject ?? ''}`);
  const outboxSize = async () => (await t.store.db.selectFrom('event_outbox').select('id').execute()).length;

  it('commits the change and its events, relays them into the log in order and delivers them once', async () => {
    const bus = busOn(t.store);
    const seen: AuditEntry[] = [];
    bus.on('device.added', (e) => seen.push(e));
    const result = await bus.atomically(async (tx, emit) => {
      await tx.insertInto('store_meta').values(metaRow('a')).execute();
      emit(added('a1'));
      emit(added('a2'));
      return 'done';
    });
    expect(result).toBe('done');
    expect(await logged()).toEqual(['device.added device:a1', 'device.added device:a2']);
    expect(seen.map((e) => e.subject)).toEqual(['device:a1', 'device:a2']);
    expect(await outboxSize()).toBe(0);
    expect((await auditOn(t.store).verify()).ok).toBe(true);
  });

  it('commits neither the change nor its events when the work fails', async () => {
    const bus = busOn(t.store);
    await expect(
      bus.atomically(async (tx, emit) => {
        await tx.insertInto('store_meta').values(metaRow('b')).execute();
        emit(added('b'));
        throw new Error('refused halfway');
      }),
    ).rejects.toThrow('refused halfway');
    expect(await t.store.db.selectFrom('store_meta').selectAll().where('name', '=', 'b').execute()).toEqual(
      [],
    );
    expect(await logged()).toEqual([]);
    expect(await outboxSize()).toBe(0);
  });

  it('appends events a crash left in the outbox when the next bus starts', async () => {
    await t.store.db.transaction().execute((tx) => insertOutbox(tx, [added('left1'), added('left2')]));
    const bus = busOn(t.store);
    await bus.flush();
    expect(await logged()).toEqual(['device.added device:left1', 'device.added device:left2']);
    expect(await outboxSize()).toBe(0);
  });

  it('keeps plain emits and atomic events in one chain, in the order they were made', async () => {
    const bus = busOn(t.store);
    await bus.emit(added('p1'));
    await bus.atomically((_tx, emit) => Promise.resolve(emit(added('x1'))));
    await bus.emit(added('p2'));
    expect(await logged()).toEqual([
      'device.added device:p1',
      'device.added device:x1',
      'device.added device:p2',
    ]);
  });

  // Several nodes share PostgreSQL. SQLite serves one node: its driver is synchronous, so two connections of
  // one test process would block each other's event loop rather than take turns.
  it.runIf(dialect === 'postgres')(
    'appends every row exactly once when several nodes change and relay at the same time',
    async () => {
      const nodes = [busOn(t.store), busOn(await t.openAnother()), busOn(await t.openAnother())];
      await Promise.all(
        nodes.flatMap((bus, n) =>
          Array.from({ length: 15 }, (_, i) =>
            bus.atomically(async (tx, emit) => {
              await tx
                .insertInto('store_meta')
                .values(metaRow(`n${n}-${i}`))
                .execute();
              emit(added(`n${n}-${i}`));
            }),
          ),
        ),
      );
      const subjects = (await auditOn(t.store).readAfter(0, 10_000)).map((e) => e.subject);
      expect(subjects).toHaveLength(45);
      expect(new Set(subjects).size).toBe(45);
      expect(await outboxSize()).toBe(0);
      expect((await auditOn(t.store).verify()).ok).toBe(true);
    },
    60_000,
  );
});
