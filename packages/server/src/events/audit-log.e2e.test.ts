import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { createTestPlatform, type TestPlatform } from '../test-support/platform.ts';
import { BULWARK_BIN } from '../test-support/server.ts';

const run = promisify(execFile);

/** The real `bulwark` CLI in a process of its own, on the server's data directory and database. */
async function bulwark(s: TestPlatform, databaseUrl: string | undefined, args: string[]) {
  const env: Record<string, string | undefined> = { ...process.env, BULWARK_LOG_LEVEL: 'error' };
  if (databaseUrl) env.BULWARK_DATABASE_URL = databaseUrl;
  try {
    const { stdout, stderr } = await run(process.execPath, [BULWARK_BIN, ...args, '--data', s.dataDir], {
      env,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

describe.each(testDialects)('bulwark audit-log verify while the server appends (%s)', (dialect) => {
  // The server's platform in process (its event bus is what the flood uses); the CLI is a real process.
  let s: TestPlatform | undefined;
  let db: TestStore | undefined;
  afterEach(async () => {
    await s?.close();
    await db?.cleanup();
  });

  it('passes 20 runs out of 20 during a flood of events, and still catches rows cut from the end', async () => {
    let url: string | undefined;
    if (dialect === 'postgres') {
      db = await createTestStore('postgres');
      url = db.location.url;
    }
    s = await createTestPlatform({ overrides: url ? { 'database.url': url } : {} });
    const server = s;
    let stop = false;
    let emitted = 0;
    // The server's own event bus, as its broker and services use it: batched, durable appends.
    const flood = (async () => {
      while (!stop) {
        await Promise.all(
          Array.from({ length: 10 }, (_, i) =>
            server.platform.events.emit({
              type: 'device.added',
              actor: 'flood',
              subject: `device:flood-${emitted}-${i}`,
              data: { group: null },
            }),
          ),
        );
        emitted += 10;
        // A steady flood rather than one that only grows the log each verification walks.
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    try {
      const heads = new Set<number>();
      for (let run = 1; run <= 20; run++) {
        const r = await bulwark(server, url, ['audit-log', 'verify', '--json']);
        expect(r.code, `run ${run}: ${r.stderr}`).toBe(0);
        const result = JSON.parse(r.stdout) as { ok: boolean; headSeq: number };
        expect(result.ok).toBe(true);
        heads.add(result.headSeq);
      }
      expect(heads.size).toBeGreaterThan(1); // the log grew under the verifications
    } finally {
      stop = true;
      await flood;
    }
    // The log quiet first (background work the flood set off may still append): the cut is then the newest rows.
    await server.platform.events.flush();
    let head = await server.platform.audit.head();
    for (let i = 0; i < 50; i++) {
      await new Promise((r) => setTimeout(r, 200));
      const now = await server.platform.audit.head();
      if (now.seq === head.seq) break;
      head = now;
    }
    await server.platform.store.db
      .deleteFrom('audit_log')
      .where('seq', '>', head.seq - 3)
      .execute();
    const cut = await bulwark(server, url, ['audit-log', 'verify']);
    expect(cut.code).toBe(2);
    // The first missing entry is head - 2, unless a background job appended after the cut: its rows chain on
    // from what is left (taking head - 2, head - 1 …), and the first missing one is then further on. Either
    // way the entries this node saw appended, up to `head`, are reported removed from the end.
    const failedAt = Number(/FAILED at entry (\d+): .*rows removed from the end/.exec(cut.stderr)?.[1]);
    expect(failedAt, cut.stderr).toBeGreaterThanOrEqual(head.seq - 2);
    expect(failedAt, cut.stderr).toBeLessThanOrEqual(head.seq);
  }, 480_000);
});

describe.each(testDialects)('bulwark audit-log after an erasure of personal data (%s)', (dialect) => {
  let s: TestPlatform | undefined;
  let db: TestStore | undefined;
  afterEach(async () => {
    await s?.close();
    await db?.cleanup();
  });

  it('shows personal values in the clear, then [erased], and verify passes', async () => {
    let url: string | undefined;
    if (dialect === 'postgres') {
      db = await createTestStore('postgres');
      url = db.location.url;
    }
    s = await createTestPlatform({ overrides: url ? { 'database.url': url } : {} });
    const { events, audit } = s.platform;
    await events.emit({
      type: 'auth.sign_in_failed',
      actor: 'anonymous@203.0.113.7',
      subject: 'user:alice',
      data: { address: '203.0.113.7', reason: 'bad password' },
    });
    await events.atomically((_tx, emit) => {
      emit({
        type: 'privacy.subject_added',
        actor: 'user:bob',
        subject: 'person:u-17',
        data: { kind: 'customer', devices: [], users: ['alice'] },
      });
      return Promise.resolve();
    });
    type Listed = { actor: string; subject: string | null; data: Record<string, unknown> };
    const list = async (...args: string[]) => {
      const r = await bulwark(s!, url, ['audit-log', 'list', '--json', ...args]);
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as Listed[];
    };
    const before = await list('--type', 'auth.sign_in_failed,privacy.subject_added');
    expect(before.map((e) => [e.actor, e.subject, e.data.address ?? null])).toEqual([
      ['anonymous@203.0.113.7', 'user:alice', '203.0.113.7'],
      ['user:bob', 'person:u-17', null],
    ]);
    expect((await list('--subject', 'user:alice')).map((e) => e.subject)).toEqual(['user:alice']);

    // alice's name (subject), her address, the person's id, and the list of users linked to the person.
    expect(await audit.erasePersonal(['user:alice', 'person:u-17'])).toBe(4);

    const verify = await bulwark(s, url, ['audit-log', 'verify', '--json']);
    expect(verify.code, verify.stderr).toBe(0);
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true });
    const after = await list('--type', 'auth.sign_in_failed,privacy.subject_added');
    expect(after.map((e) => [e.actor, e.subject, e.data.address ?? null])).toEqual([
      ['anonymous@203.0.113.7', 'user:[erased]', '[erased]'],
      ['user:bob', 'person:[erased]', null],
    ]);
    expect(after[1]?.data.users).toBe('[erased]');
    expect(await list('--subject', 'user:alice')).toEqual([]);
  }, 120_000);
});
