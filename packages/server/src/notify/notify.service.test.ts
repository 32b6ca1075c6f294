import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BulwarkError } from '@bulwark/protocol';
import { createAuditLog, createEventBus, type AuditLog, type EventBus } from '../events/index.ts';
import { createSecretBox, type SecretBox } from '../secrets/index.ts';
import { isBusy, isUniqueViolation, type Store } from '../store/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { createNotifyService, type NotifySettings } from './notify.service.ts';
import {
  startSyslogReceiver,
  startWebhookReceiver,
  type WebhookReceiver,
} from '../test-support/notify-receivers.ts';

interface Node {
  audit: AuditLog;
  bus: EventBus;
  notify: ReturnType<typeof createNotifyService>;
}

for (const dialect of testDialects) {
  describe(`notification channels on ${dialect}`, () => {
    let t: TestStore;
    let box: SecretBox;
    let clock: number;
    const closers: (() => Promise<unknown>)[] = [];

    const node = async (store: Store, settings: Partial<NotifySettings> = {}): Promise<Node> => {
      const audit = createAuditLog({
        db: store.db,
        mac: box,
        now: Date.now,
        isRetryable: (e) => isUniqueViolation(e) || isBusy(e),
      });
      await audit.ensureAnchor();
      const bus = createEventBus({ log: audit });
      const notify = createNotifyService({
        db: store.db,
        box,
        events: bus,
        audit,
        now: () => clock,
        settings: {
          pollInterval: 20,
          retryBase: 100,
          retryMax: 400,
          timeout: 2000,
          nodeId: 'node-a',
          leaseMs: 10_000,
          hostname: 'test-host',
          ...settings,
        },
      });
      closers.push(() => notify.stop());
      return { audit, bus, notify };
    };

    const receiver = async (answer?: (req: { headers: Record<string, string>; body: string }) => number) => {
      const r = await startWebhookReceiver({ answer });
      closers.push(() => r.close());
      return r;
    };

    const alert = (bus: EventBus, n: number, severity = 'high') =>
      bus.emit({
        type: 'alert.raised',
        actor: 'system',
        subject: `device:d-${n}`,
        data: { alertId: `a-${n}`, detector: 'flood', severity, title: `alert ${n}`, evidence: {} },
      });
    const noise = (bus: EventBus, n: number) =>
      bus.emit({ type: 'device.added', actor: 'test', subject: `device:n-${n}`, data: { group: null } });

    const seqsOf = (r: WebhookReceiver, status = 204) =>
      r.requests.filter((q) => q.status === status).map((q) => (JSON.parse(q.body) as { seq: number }).seq);

    beforeEach(async () => {
      t = await createTestStore(dialect);
      box = createSecretBox(randomBytes(32));
      clock = Date.now();
    });
    afterEach(async () => {
      for (const close of closers.splice(0).reverse()) await close();
      await t.cleanup();
    });

    it('delivers matching entries in order from the head on, advances past the rest, signs each, and keeps the secret sealed', async () => {
      const a = await node(t.store);
      const r = await receiver();
      await alert(a.bus, 0); // before the channel: not replayed
      const created = await a.notify.create(
        { name: 'hook', kind: 'webhook', target: r.url, filter: { types: ['alert.*'] } },
        'user:alice',
      );
      expect(created.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
      const expected: number[] = [];
      for (let i = 1; i <= 3; i++) {
        await noise(a.bus, i);
        expected.push((await alert(a.bus, i)).seq);
      }
      const last = await noise(a.bus, 9);
      await a.notify.runOnce();
      expect(seqsOf(r)).toEqual(expected);
      const wh = new Webhook(created.secret!);
      for (const q of r.requests) {
        expect(wh.verify(q.body, q.headers)).toMatchObject({ type: 'alert.raised', actor: 'system' });
        expect(q.headers['content-type']).toBe('application/json');
      }
      const body = JSON.parse(r.requests[0]!.body) as Record<string, unknown>;
      expect(Object.keys(body).sort()).toEqual(['actor', 'data', 'hash', 'seq', 'subject', 'ts', 'type']);
      expect(r.requests[0]!.headers['webhook-id']).toBe(
        `bulwark_${expected[0]}_${String(body.hash).slice(0, 16)}`,
      );

      const [listed] = await a.notify.list();
      expect(listed).toMatchObject({
        name: 'hook',
        cursor: last.seq,
        status: { failing: false, attempts: 0 },
      });
      expect(JSON.stringify(await a.notify.list())).not.toContain('whsec_');
      const row = await t.store.db.selectFrom('notification_channels').selectAll().executeTakeFirstOrThrow();
      expect(row.secret_sealed).not.toContain(created.secret!.slice(6, 20));
      expect(box.open(row.secret_sealed!, `notification-channel:${row.id}`).toString()).toBe(created.secret);
      const [stats] = await a.notify.stats();
      expect(stats).toMatchObject({ delivered: 3, failures: 0, leased: true });
      expect(stats!.lag).toBe(stats!.head - last.seq);
    });

    it('retries a failing receiver with doubling back-off and never skips; failing and recovered are reported once', async () => {
      const a = await node(t.store);
      let refusals = 3;
      const r = await receiver(() => (refusals-- > 0 ? 503 : 204));
      const { id } = await a.notify.create({ name: 'flaky', kind: 'webhook', target: r.url }, 'test');
      const first = await alert(a.bus, 1);
      const second = await alert(a.bus, 2);
      const waits: number[] = [];
      for (let round = 0; round < 10 && seqsOf(r).length < 2; round++) {
        await a.notify.runOnce();
        const row = await t.store.db
          .selectFrom('notification_channels')
          .selectAll()
          .where('id', '=', id)
          .executeTakeFirstOrThrow();
        if (row.next_attempt_at !== null) {
          waits.push(row.next_attempt_at - clock);
          await a.notify.runOnce(); // still in back-off: nothing is sent
          clock = row.next_attempt_at;
        }
      }
      expect(waits).toEqual([100, 200, 400]);
      expect(r.requests.map((q) => q.status)).toEqual([503, 503, 503, 204, 204]);
      // The same message each time (same id, same body), re-signed with a fresh timestamp.
      expect(new Set(r.requests.slice(0, 4).map((q) => q.headers['webhook-id'])).size).toBe(1);
      expect(seqsOf(r)).toEqual([first.seq, second.seq]);
      await a.bus.flush();
      const failing = await a.audit.query({ type: 'notification.channel_failing', limit: 10 });
      const recovered = await a.audit.query({ type: 'notification.channel_recovered', limit: 10 });
      expect(failing).toHaveLength(1);
      expect(failing[0]).toMatchObject({
        subject: `channel:${id}`,
        data: {
          name: 'flaky',
          pendingFromSeq: first.seq,
          error: expect.stringMatching(/^HTTP 503/) as string,
        },
      });
      expect(recovered).toHaveLength(1);
      expect(recovered[0]!.data).toMatchObject({ name: 'flaky', attempts: 3, failedForMs: 700 });
      const [stats] = await a.notify.stats();
      expect(stats).toMatchObject({
        delivered: 2,
        failures: 3,
        failing: false,
        lastError: expect.stringMatching(/503/) as string,
      });
    });

    it('starts where it is told: the head, the beginning, or a given seq', async () => {
      const a = await node(t.store);
      const [all, from2, fresh] = [await receiver(), await receiver(), await receiver()];
      const e1 = await alert(a.bus, 1);
      const e2 = await alert(a.bus, 2);
      await a.notify.create({ name: 'all', kind: 'webhook', target: all.url, from: 'beginning' }, 'test');
      await a.notify.create({ name: 'from-2', kind: 'webhook', target: from2.url, from: e2.seq }, 'test');
      await a.notify.create({ name: 'new', kind: 'webhook', target: fresh.url }, 'test');
      await expect(
        a.notify.create({ name: 'far', kind: 'webhook', target: all.url, from: e2.seq + 100 }, 'test'),
      ).rejects.toThrow(/from must be/);
      const e3 = await alert(a.bus, 3);
      await a.notify.runOnce();
      expect(seqsOf(all)).toEqual([e1.seq, e2.seq, e3.seq]);
      expect(seqsOf(from2)).toEqual([e2.seq, e3.seq]);
      expect(seqsOf(fresh)).toEqual([e3.seq]);
    });

    it('lets one node deliver a channel at a time; another takes over when it stops or its lease runs out', async () => {
      const a = await node(t.store, { nodeId: 'node-a' });
      const b = await node(await t.openAnother(), { nodeId: 'node-b' });
      const r = await receiver();
      await a.notify.create({ name: 'shared', kind: 'webhook', target: r.url }, 'test');
      await alert(a.bus, 1);
      await Promise.all([a.notify.runOnce(), b.notify.runOnce()]);
      expect(seqsOf(r)).toHaveLength(1); // exactly one of the two delivered it
      const holder = (
        await t.store.db.selectFrom('notification_channels').select('lease_owner').executeTakeFirstOrThrow()
      ).lease_owner;
      const [first, second] = holder === 'node-a' ? [a, b] : [b, a];

      await alert(a.bus, 2);
      await second.notify.runOnce();
      expect(seqsOf(r)).toHaveLength(1); // the lease holder is alive: the other waits
      await first.notify.runOnce();
      expect(seqsOf(r)).toHaveLength(2);

      // The holder dies without handing back its lease: the other node takes over once the lease ran out.
      await alert(a.bus, 3);
      clock += 9_000;
      await second.notify.runOnce();
      expect(seqsOf(r)).toHaveLength(2);
      clock += 2_000;
      await second.notify.runOnce();
      expect(seqsOf(r)).toHaveLength(3);

      // A clean stop hands the lease back at once.
      await second.notify.stop();
      await alert(a.bus, 4);
      await first.notify.runOnce();
      expect(seqsOf(r)).toHaveLength(4);
      expect(new Set(seqsOf(r)).size).toBe(4);
    });

    it('keeps undelivered entries while disabled, and sends them once enabled again; a rotated secret signs from then on', async () => {
      const a = await node(t.store);
      const r = await receiver();
      const created = await a.notify.create({ name: 'pausable', kind: 'webhook', target: r.url }, 'test');
      await a.notify.update('pausable', { enabled: false }, 'test');
      const e1 = await alert(a.bus, 1);
      await a.notify.runOnce();
      expect(r.requests).toHaveLength(0);
      const rotated = await a.notify.update(created.id, { enabled: true, rotateSecret: true }, 'test');
      expect(rotated.secret).toMatch(/^whsec_/);
      expect(rotated.secret).not.toBe(created.secret);
      await a.notify.runOnce();
      expect(seqsOf(r)).toEqual([e1.seq]);
      const q = r.requests[0]!;
      expect(() => new Webhook(created.secret!).verify(q.body, q.headers)).toThrow(/No matching signature/);
      expect(new Webhook(rotated.secret!).verify(q.body, q.headers)).toBeTruthy();
      const changes = (await a.audit.query({ type: 'notification.channel_updated', limit: 10 })).map(
        (e) => e.data.changes,
      );
      expect(changes).toEqual([['enabled'], ['enabled', 'secret']]);
    });

    it('sends to syslog over TCP in order and reconnects after the collector restarts', async () => {
      const a = await node(t.store);
      const first = await startSyslogReceiver();
      const port = first.port;
      await a.notify.create(
        {
          name: 'siem',
          kind: 'syslog',
          target: `127.0.0.1:${port}`,
          transport: 'tcp',
          filter: { types: ['alert.*'] },
        },
        'test',
      );
      const e1 = await alert(a.bus, 1, 'critical');
      await a.notify.runOnce();
      await expect.poll(() => first.messages.length).toBe(1);
      await first.close();
      const second = await startSyslogReceiver({ port });
      closers.push(() => second.close());
      const e2 = await alert(a.bus, 2, 'low');
      for (let i = 0; i < 5 && second.messages.length < 1; i++) {
        await a.notify.runOnce();
        const row = await t.store.db
          .selectFrom('notification_channels')
          .selectAll()
          .executeTakeFirstOrThrow();
        if (row.next_attempt_at) clock = row.next_attempt_at;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await expect.poll(() => second.messages.length).toBeGreaterThanOrEqual(1);
      const all = [...first.messages, ...second.messages];
      const seqs = all.map((m) => Number(m.structuredData[0]!.params.seq));
      // At-least-once: whatever went into a dying connection may come twice, never missing or out of order.
      expect([...new Set(seqs)]).toEqual([e1.seq, e2.seq].concat(seqs.filter((s) => s > e2.seq)));
      expect(all[0]).toMatchObject({
        facility: 10,
        severity: 2,
        msgId: 'alert.raised',
        hostname: 'test-host',
      });
      expect(second.messages.at(-1)!.severity).toBeGreaterThanOrEqual(5);
      expect([...first.errors, ...second.errors]).toEqual([]);
    });

    it('refuses bad channels with clear errors and changes nothing', async () => {
      const a = await node(t.store);
      const attempt = (input: Parameters<typeof a.notify.create>[0]) =>
        a.notify.create(input, 'test').then(
          () => 'created',
          (e: BulwarkError) => `${e.code}: ${e.message}`,
        );
      expect(await attempt({ name: 'x', kind: 'webhook', target: 'http://siem.example.com/' })).toMatch(
        /^validation_failed: webhook URL must use https/,
      );
      expect(await attempt({ name: 'bad name!', kind: 'webhook', target: 'https://x.example/' })).toMatch(
        /^validation_failed: name must be/,
      );
      expect(await attempt({ name: 'x', kind: 'syslog', target: 'x.example' })).toMatch(/host:port/);
      expect(
        await attempt({
          name: 'x',
          kind: 'webhook',
          target: 'https://x.example/',
          filter: { types: ['nope.*'] },
        }),
      ).toMatch(/matches no event type/);
      expect(await attempt({ name: 'x', kind: 'webhook', target: 'https://x.example/' })).toBe('created');
      expect(await attempt({ name: 'x', kind: 'syslog', target: 'x.example:6514' })).toMatch(/^conflict:/);
      expect(await a.notify.list()).toHaveLength(1);
      await expect(a.notify.get('ghost')).rejects.toMatchObject({ code: 'not_found' });
      await expect(a.notify.update('x', { facility: 3 }, 'test')).rejects.toMatchObject({
        code: 'validation_failed',
      });
      await a.notify.remove('x', 'test');
      expect(await a.notify.list()).toHaveLength(0);
      const types = (await a.audit.query({ limit: 20 })).map((e) => e.type);
      expect(types).toEqual(['notification.channel_created', 'notification.channel_deleted']);
    });

    it('reports a test message as sent, or the reason it was not', async () => {
      const a = await node(t.store);
      const r = await receiver();
      const created = await a.notify.create({ name: 't', kind: 'webhook', target: r.url }, 'test');
      expect(await a.notify.test('t', 'user:alice')).toMatchObject({ ok: true });
      const q = r.requests[0]!;
      expect(new Webhook(created.secret!).verify(q.body, q.headers)).toMatchObject({
        seq: 0,
        type: 'notification.test',
        actor: 'user:alice',
      });
      await a.notify.create(
        { name: 'down', kind: 'syslog', target: '127.0.0.1:1', transport: 'tcp' },
        'test',
      );
      expect(await a.notify.test('down', 'test')).toMatchObject({
        ok: false,
        error: expect.stringMatching(/ECONNREFUSED/) as string,
      });
      expect((await a.notify.get('t')).cursor).toBe(created.cursor); // a test moves no cursor
    });
  });
}
