import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql, type KyselyPlugin } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BulwarkError } from '@bulwark/protocol';
import { createDeviceService } from '../devices/index.ts';
import { createAuditLog, createEventBus, type AuditLog, type SecurityEvent } from '../events/index.ts';
import { createSecretBox } from '../secrets/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { isBusy, isUniqueViolation, migrate, type Store } from './index.ts';

const appendLoop = path.join(import.meta.dirname, '..', 'test-support', 'audit-append-loop.ts');
const masterKey = randomBytes(32);
const box = createSecretBox(masterKey);
const retryable = (e: unknown) => isUniqueViolation(e) || isBusy(e);
const auditOn = (store: Store, now = Date.now, headFile?: string) =>
  createAuditLog({ db: store.db, mac: box, now, isRetryable: retryable, headFile });
const event = (n: number): SecurityEvent => ({
  type: 'device.added',
  actor: 'test',
  subject: `device:d${n}`,
  data: { group: null },
});

describe.each(testDialects)('store on %s', (dialect) => {
  let t: TestStore;
  let audit: AuditLog;
  beforeEach(async () => {
    t = await createTestStore(dialect);
    audit = auditOn(t.store);
  });
  afterEach(async () => t.cleanup());

  it('runs migrations idempotently', async () => {
    await migrate(t.store.db);
    await migrate(t.store.db);
    const tables = await t.store.db.introspection.getTables();
    expect(tables.map((x) => x.name)).toEqual(
      expect.arrayContaining([
        'devices',
        'enrollment_tokens',
        'certificates',
        'audit_log',
        'audit_anchor',
        'pki_material',
      ]),
    );
  });

  it('appends a contiguous hash chain that verifies', async () => {
    await audit.append([event(1), event(2)]);
    await audit.append([event(3)]);
    const entries = await audit.readAfter(0);
    expect(entries.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(entries[1]?.prevHash).toBe(entries[0]?.hash);
    expect(await audit.verify()).toEqual({ ok: true, entries: 3, headSeq: 3 });
  });

  it('detects an edited row and names it', async () => {
    await audit.append([event(1), event(2), event(3), event(4)]);
    await t.store.db.updateTable('audit_log').set({ actor: 'mallory' }).where('seq', '=', 3).execute();
    const result = await audit.verify();
    expect(result.ok).toBe(false);
    expect(result.badSeq).toBe(3);
    expect(result.reason).toMatch(/entry 3 .*edited/);
  });

  it('verifies rows whose data is stored in another serialization of the same JSON (older rows)', async () => {
    await audit.append([event(1), event(2), event(3)]);
    const row = await t.store.db
      .selectFrom('audit_log')
      .select('data')
      .where('seq', '=', 2)
      .executeTakeFirstOrThrow();
    const pretty = JSON.stringify(JSON.parse(row.data), null, 2);
    expect(pretty).not.toBe(row.data);
    await t.store.db.updateTable('audit_log').set({ data: pretty }).where('seq', '=', 2).execute();
    expect((await audit.verify()).ok).toBe(true);
    await t.store.db.updateTable('audit_log').set({ data: '{"edited":true}' }).where('seq', '=', 2).execute();
    expect(await audit.verify()).toMatchObject({ ok: false, badSeq: 2 });
  });

  it('detects an edited row whose hash was recomputed', async () => {
    await audit.append([event(1), event(2), event(3)]);
    const { entryHash } = await import('../events/index.ts');
    const row = (await audit.readAfter(1, 1))[0]!;
    const hash = entryHash({ ...row, actor: 'mallory', data: row.data });
    await t.store.db.updateTable('audit_log').set({ actor: 'mallory', hash }).where('seq', '=', 2).execute();
    const result = await audit.verify();
    expect(result).toMatchObject({ ok: false, badSeq: 2 });
    expect(result.reason).toMatch(/no valid MAC/);
  });

  it('detects a deleted row in the middle and at the end', async () => {
    await audit.append([event(1), event(2), event(3), event(4)]);
    await t.store.db.deleteFrom('audit_log').where('seq', '=', 2).execute();
    expect(await audit.verify()).toMatchObject({ ok: false, badSeq: 2 });
    await t.store.db.deleteFrom('audit_log').where('seq', '>', 1).execute();
    const tail = await audit.verify();
    expect(tail).toMatchObject({ ok: false, badSeq: 2 });
    expect(tail.reason).toMatch(/removed from the end/);
  });

  it('detects an inserted row, even one with a correctly computed hash', async () => {
    await audit.append([event(1), event(2)]);
    const { entryHash } = await import('../events/index.ts');
    const head = await audit.head();
    const forged = {
      seq: 3,
      ts: Date.now(),
      type: 'device.added',
      actor: 'mallory',
      subject: null,
      data: {},
      prevHash: head.hash,
    };
    await t.store.db
      .insertInto('audit_log')
      .values({
        seq: 3,
        ts: forged.ts,
        type: forged.type,
        actor: forged.actor,
        subject: null,
        prev_hash: forged.prevHash,
        data: '{}',
        hash: entryHash(forged),
        mac: '00'.repeat(32),
      })
      .execute();
    const result = await audit.verify();
    expect(result).toMatchObject({ ok: false, badSeq: 3 });
    expect(result.reason).toMatch(/inserted/);
    // Even when Bulwark later appends on top of the forged row, the forged row stays flagged.
    await audit.append([event(4)]);
    expect(await audit.verify()).toMatchObject({ ok: false, badSeq: 3 });
  });

  it('fails when everything, anchor included, was deleted', async () => {
    await audit.ensureAnchor();
    expect(await audit.verify()).toEqual({ ok: true, entries: 0, headSeq: 0 });
    await audit.append([event(1), event(2)]);
    await t.store.db.deleteFrom('audit_log').execute();
    await t.store.db.deleteFrom('audit_anchor').execute();
    const result = await audit.verify();
    expect(result.ok).toBe(false);
    expect(result.reason).toMatch(/anchor is missing/);
  });

  it('catches a cut-off tail with an older anchor restored, through the head recorded outside the database', async () => {
    const headFile = path.join(mkdtempSync(path.join(tmpdir(), 'bulwark-head-')), 'audit-head.json');
    const log = auditOn(t.store, Date.now, headFile);
    await log.append([event(1), event(2), event(3)]);
    const oldAnchor = await t.store.db.selectFrom('audit_anchor').selectAll().executeTakeFirstOrThrow();
    await log.append([event(4), event(5)]);
    await t.store.db.deleteFrom('audit_log').where('seq', '>', 3).execute();
    await t.store.db
      .updateTable('audit_anchor')
      .set({ seq: oldAnchor.seq, hash: oldAnchor.hash, mac: oldAnchor.mac })
      .execute();
    expect(await audit.verify()).toMatchObject({ ok: true }); // the database alone cannot tell…
    const result = await log.verify(); // …the node's own record can
    expect(result).toMatchObject({ ok: false, badSeq: 4 });
    expect(result.reason).toMatch(/saw the log reach entry 5/);
  });

  it('keeps one valid chain when two writers (processes) append concurrently', async () => {
    const other = auditOn(await t.openAnother());
    await Promise.all([
      ...Array.from({ length: 10 }, (_, i) => audit.append([event(i), event(i + 100)])),
      ...Array.from({ length: 10 }, (_, i) => other.append([event(i + 200)])),
    ]);
    expect(await audit.verify()).toEqual({ ok: true, entries: 30, headSeq: 30 });
  });

  it('verifies without a false alarm when another writer appends between reading the rows and the anchor', async () => {
    await audit.append([event(1), event(2), event(3)]);
    const writer = auditOn(await t.openAnother());
    // A hook on the verifier's connection: after each read of audit rows, another process appends (and
    // commits) before the verifier goes on. The append lands exactly where the race put it.
    let appended = 0;
    const interleave: KyselyPlugin = {
      transformQuery: (args) => args.node,
      async transformResult(args) {
        if (args.result.rows.some((r) => 'prev_hash' in r)) {
          await writer.append([event(100 + appended)]);
          appended += 1;
        }
        return args.result;
      },
    };
    const verifier = createAuditLog({
      db: t.store.db.withPlugin(interleave),
      mac: box,
      now: Date.now,
      isRetryable: retryable,
    });
    for (let run = 1; run <= 20; run++) {
      const result = await verifier.verify();
      expect(result, `run ${run}: ${result.reason ?? ''}`).toMatchObject({ ok: true });
      expect(result.headSeq).toBeGreaterThanOrEqual(3 + run - 1);
    }
    expect(appended).toBeGreaterThanOrEqual(20);
    expect(await audit.verify()).toMatchObject({ ok: true, headSeq: 3 + appended });
  });

  it('passes 20 verifications out of 20 during a tight loop of appends from another process', async () => {
    await audit.append([event(1)]);
    const where = t.location.url ?? t.location.file ?? '';
    const writer = spawn(
      process.execPath,
      ['--import', 'tsx', appendLoop, where, masterKey.toString('hex')],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const exited = once(writer, 'exit');
    try {
      await expect
        .poll(async () => (await audit.head()).seq, { timeout: 60_000, interval: 100 })
        .toBeGreaterThan(20);
      const heads = new Set<number>();
      for (let run = 1; run <= 20; run++) {
        const result = await audit.verify({ pageSize: 50 });
        expect(result, `run ${run}: ${result.reason ?? ''}`).toMatchObject({ ok: true });
        heads.add(result.headSeq);
      }
      // The log grew while it was being verified.
      expect(heads.size).toBeGreaterThan(1);
    } finally {
      writer.kill('SIGKILL');
      await exited;
    }
    // A real removal from the end is still caught once the writer has stopped.
    const head = await audit.head();
    await t.store.db
      .deleteFrom('audit_log')
      .where('seq', '>', head.seq - 2)
      .execute();
    const cut = await audit.verify({ pageSize: 50 });
    expect(cut).toMatchObject({ ok: false, badSeq: head.seq - 1 });
    expect(cut.reason).toMatch(/removed from the end/);
  }, 120_000);

  it('batches concurrent emits into durable entries and delivers them to subscribers once', async () => {
    const bus = createEventBus({ log: audit });
    const seen: number[] = [];
    bus.subscribe((e) => seen.push(e.seq));
    const entries = await Promise.all(Array.from({ length: 50 }, (_, i) => bus.emit(event(i))));
    expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(seen).toHaveLength(50);
    await bus.close();
  });

  it('tails events appended by another process without redelivering its own', async () => {
    const bus = createEventBus({ log: audit });
    const seen: string[] = [];
    bus.subscribe((e) => seen.push(`${e.actor}:${e.seq}`));
    bus.startTail(20);
    await bus.flush();
    await bus.emit({ ...event(1), actor: 'local' });
    await auditOn(await t.openAnother()).append([{ ...event(2), actor: 'remote' }]);
    await expect.poll(() => seen, { timeout: 2000 }).toEqual(['local:1', 'remote:2']);
    await new Promise((r) => setTimeout(r, 100));
    expect(seen).toEqual(['local:1', 'remote:2']);
    await bus.close();
  });

  it('reports unique violations the same way on both dialects', async () => {
    await t.store.db
      .insertInto('pki_material')
      .values({ name: 'x', cert_pem: '', sealed_key: '', created_at: 1 })
      .execute();
    const err = await t.store.db
      .insertInto('pki_material')
      .values({ name: 'x', cert_pem: '', sealed_key: '', created_at: 1 })
      .execute()
      .catch((e: unknown) => e);
    expect(isUniqueViolation(err)).toBe(true);
  });

  it('stores epoch-millisecond bigints as numbers', async () => {
    await t.store.db
      .insertInto('pki_material')
      .values({ name: 'y', cert_pem: '', sealed_key: '', created_at: 1_795_000_000_123 })
      .execute();
    const row = await t.store.db
      .selectFrom('pki_material')
      .selectAll()
      .where('name', '=', 'y')
      .executeTakeFirstOrThrow();
    expect(row.created_at).toBe(1_795_000_000_123);
    const r = await sql<{ n: number }>`select count(*) as n from pki_material`.execute(t.store.db);
    expect(Number(r.rows[0]?.n)).toBe(1);
  });

  describe('devices and enrollment tokens', () => {
    let now = 1_800_000_000_000;
    const make = () =>
      createDeviceService({
        db: t.store.db,
        events: createEventBus({ log: auditOn(t.store, () => now), db: t.store.db }),
        now: () => now,
        tokenTtlMs: 60_000,
      });

    it('adds, lists with filters and pages, and refuses duplicates and bad ids', async () => {
      const devices = make();
      await devices.add({ id: 'a-1', group: 'pumps' }, 'test');
      await devices.add({ id: 'b-2' }, 'test');
      await devices.add({ id: 'c-3', group: 'pumps' }, 'test');
      expect((await devices.list({ group: 'pumps' })).map((d) => d.id)).toEqual(['a-1', 'c-3']);
      expect((await devices.list({ after: 'a-1', limit: 1 })).map((d) => d.id)).toEqual(['b-2']);
      await expect(devices.add({ id: 'a-1' }, 'test')).rejects.toMatchObject({ code: 'conflict' });
      for (const bad of ['', 'a/b', 'x+', '#', '..', 'a..b', '$SYS', 'ü', 'a b']) {
        await expect(devices.add({ id: bad }, 'test')).rejects.toMatchObject({ code: 'validation_failed' });
      }
      expect(await devices.list()).toHaveLength(3);
    });

    it('checks tokens without using them up, then lets exactly one enrollment use a token', async () => {
      const devices = make();
      await devices.add({ id: 'dev' }, 'test');
      await devices.add({ id: 'other' }, 'test');
      const { token } = await devices.issueToken('dev', 'test');
      await expect(devices.checkToken('other', token)).rejects.toMatchObject({ code: 'token_invalid' });
      await expect(devices.checkToken('nobody', token)).rejects.toMatchObject({ code: 'token_invalid' });
      await expect(devices.checkToken('dev', token + 'x')).rejects.toMatchObject({ code: 'token_invalid' });
      const check = await devices.checkToken('dev', token);
      const check2 = await devices.checkToken('dev', token);
      const results = await Promise.allSettled([
        t.store.db.transaction().execute((trx) => devices.completeEnrollment(trx, check)),
        t.store.db.transaction().execute((trx) => devices.completeEnrollment(trx, check2)),
      ]);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const failed = results.find((r) => r.status === 'rejected');
      expect(failed?.reason).toBeInstanceOf(BulwarkError);
      await expect(devices.checkToken('dev', token)).rejects.toMatchObject({ code: 'token_used' });
      expect((await devices.get('dev')).status).toBe('active');
    });

    it('expires tokens', async () => {
      const devices = make();
      await devices.add({ id: 'dev' }, 'test');
      const { token } = await devices.issueToken('dev', 'test', 1000);
      now += 1001;
      await expect(devices.checkToken('dev', token)).rejects.toMatchObject({ code: 'token_expired' });
    });

    it('stores only a hash of the token', async () => {
      const devices = make();
      await devices.add({ id: 'dev' }, 'test');
      const { token } = await devices.issueToken('dev', 'test');
      const rows = await t.store.db.selectFrom('enrollment_tokens').selectAll().execute();
      expect(JSON.stringify(rows)).not.toContain(token.slice(4));
    });
  });
});
