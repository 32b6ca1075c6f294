import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import SQLite from 'better-sqlite3';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AuditEntry } from '../events/index.ts';
import type { Principal } from '../users/index.ts';
import { BULWARK_BIN, startTestServer, type TestServer } from '../test-support/server.ts';
import {
  freePort,
  parseCef,
  startSyslogReceiver,
  startWebhookReceiver,
  testCertificate,
  type WebhookReceiver,
} from '../test-support/notify-receivers.ts';

const exec = promisify(execFile);

interface ChannelOut {
  id: string;
  name: string;
  secret?: string;
  status: { failing: boolean; attempts: number; lastError: string | null; lag: number };
}

/** A receiver that answers 204 to correctly signed, fresh messages and 401 to anything else. */
async function verifyingReceiver(options: { tls?: { key: string; cert: string }; port?: number } = {}) {
  let wh: Webhook | undefined;
  const receiver = await startWebhookReceiver({
    ...options,
    answer: (req) => {
      try {
        wh!.verify(req.body, req.headers);
        return 204;
      } catch {
        return 401;
      }
    },
  });
  return Object.assign(receiver, { trust: (secret: string) => (wh = new Webhook(secret)) });
}

const accepted = (r: WebhookReceiver) =>
  r.requests.filter((q) => q.status === 204).map((q) => JSON.parse(q.body) as AuditEntry);

describe('notifications end to end', () => {
  let s: TestServer;
  let token: string;
  let cert: { key: string; cert: string };
  const closers: (() => Promise<unknown>)[] = [];

  const api = async <T>(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) => {
    const res = await s.server.app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${token}` },
      ...(payload ? { payload } : {}),
    });
    return { status: res.statusCode, body: (res.body ? res.json() : undefined) as T };
  };

  const alert = (subject: string, severity: string, title = 'Payload flood') =>
    s.platform.events.emit({
      type: 'alert.raised',
      actor: 'system',
      subject,
      data: { alertId: `a-${subject}`, detector: 'flood', severity, title, evidence: { rate: 900 } },
    });

  beforeAll(async () => {
    [s, cert] = await Promise.all([
      startTestServer({
        'notifications.pollInterval': 50,
        'notifications.retryBase': 100,
        'notifications.retryMax': 400,
        'notifications.timeout': 2000,
      }),
      testCertificate(),
    ]);
    const { user } = await s.platform.users.create({ username: 'officer', role: 'security-officer' }, 'test');
    const principal: Principal = {
      userId: user.id,
      username: user.username,
      role: 'security-officer',
      groups: null,
      via: 'session',
      sessionState: 'active',
    };
    token = (await s.platform.users.createToken(principal, { name: 'notify', expiresInMs: 3_600_000 })).token;
  });
  afterAll(async () => {
    for (const close of closers.splice(0).reverse()) await close();
    await s?.stop();
  });

  it('signs webhooks over HTTPS to a private CA; the receiver verifies them and refuses a tampered or replayed message', async () => {
    const r = await verifyingReceiver({ tls: cert });
    closers.push(() => r.close());
    const created = await api<ChannelOut>('POST', '/api/v1/notification-channels', {
      name: 'soc-webhook',
      kind: 'webhook',
      target: r.url,
      ca: cert.cert,
    });
    expect(created.status).toBe(201);
    expect(created.body.secret).toMatch(/^whsec_/);
    r.trust(created.body.secret!);
    const shown = await api<ChannelOut>('GET', `/api/v1/notification-channels/${created.body.id}`);
    expect(shown.body).not.toHaveProperty('secret');
    expect(JSON.stringify((await api('GET', '/api/v1/notification-channels')).body)).not.toContain('whsec_');

    const raised = await alert('device:pump-1', 'high');
    const ignored = await s.platform.events.emit({
      type: 'device.added',
      actor: 'test',
      subject: 'device:pump-2',
      data: { group: null },
    });
    const responded = await s.platform.events.emit({
      type: 'response.executed',
      actor: 'system',
      subject: 'device:pump-1',
      data: {
        alertId: 'a-device:pump-1',
        action: 'quarantine',
        automatic: true,
        detector: 'flood',
        severity: 'high',
        title: 'Payload flood',
      },
    });
    await expect.poll(() => accepted(r).map((e) => e.seq)).toEqual([raised.seq, responded.seq]);
    expect(accepted(r).map((e) => e.seq)).not.toContain(ignored.seq);
    expect(accepted(r)[1]).toMatchObject({
      type: 'response.executed',
      data: { action: 'quarantine' },
      hash: responded.hash,
    });

    const genuine = r.requests[0]!;
    const wh = new Webhook(created.body.secret!);
    expect(() => wh.verify(genuine.body.replace('"high"', '"low"'), genuine.headers)).toThrow(
      /No matching signature/,
    );
    expect(() =>
      wh.verify(genuine.body, { ...genuine.headers, 'webhook-id': `${genuine.headers['webhook-id']}x` }),
    ).toThrow(/No matching signature/);
    // The same request replayed six minutes later: its signed timestamp is too old.
    vi.setSystemTime(Date.now() + 6 * 60_000);
    try {
      expect(() => wh.verify(genuine.body, genuine.headers)).toThrow(/too old/);
    } finally {
      vi.useRealTimers();
    }

    // Without the private CA the receiver's certificate is not trusted: the test endpoint says why.
    const untrusted = await api<ChannelOut>('POST', '/api/v1/notification-channels', {
      name: 'no-ca',
      kind: 'webhook',
      target: r.url,
      enabled: false,
    });
    const test = await api<{ ok: boolean; error?: string }>(
      'POST',
      `/api/v1/notification-channels/${untrusted.body.id}/test`,
    );
    expect(test.body.ok).toBe(false);
    expect(test.body.error).toMatch(/self[- ]signed|certificate/i);
    const good = await api<{ ok: boolean }>('POST', '/api/v1/notification-channels/soc-webhook/test');
    expect(good.body).toMatchObject({ ok: true });
    expect(r.requests.at(-1)).toMatchObject({ status: 204 });
    expect(JSON.parse(r.requests.at(-1)!.body)).toMatchObject({ seq: 0, type: 'notification.test' });

    expect(
      (
        await api('POST', '/api/v1/notification-channels', {
          name: 'x',
          kind: 'webhook',
          target: 'http://example.com/',
        })
      ).body,
    ).toMatchObject({
      code: 'validation_failed',
      detail: expect.stringMatching(/must use https/) as string,
    });
    const patched = await api<ChannelOut & { filter: unknown }>(
      'PATCH',
      '/api/v1/notification-channels/soc-webhook',
      {
        filter: { minSeverity: 'critical' },
      },
    );
    expect(patched.status).toBe(200);
    expect(patched.body).not.toHaveProperty('secret');
    expect(patched.body.filter).toEqual({ types: ['alert.*', 'response.*'], minSeverity: 'critical' });
    const rotated = await api<ChannelOut>('PATCH', '/api/v1/notification-channels/soc-webhook', {
      rotateSecret: true,
    });
    expect(rotated.body.secret).toMatch(/^whsec_/);
    expect(rotated.body.secret).not.toBe(created.body.secret);
    for (const name of ['soc-webhook', 'no-ca'])
      expect((await api('DELETE', `/api/v1/notification-channels/${name}`)).status).toBe(204);
  });

  it('sends RFC 5424 over TCP and CEF over TLS that collectors parse', async () => {
    const [plain, secure] = await Promise.all([startSyslogReceiver(), startSyslogReceiver({ tls: cert })]);
    closers.push(
      () => plain.close(),
      () => secure.close(),
    );
    for (const body of [
      {
        name: 'siem-tcp',
        kind: 'syslog',
        target: `127.0.0.1:${plain.port}`,
        transport: 'tcp',
        filter: { types: ['alert.*'] },
      },
      {
        name: 'siem-tls',
        kind: 'syslog',
        target: `localhost:${secure.port}`,
        format: 'cef',
        ca: cert.cert,
        facility: 13,
        filter: { types: ['alert.*'], minSeverity: 'high' },
      },
    ])
      expect((await api('POST', '/api/v1/notification-channels', body)).status).toBe(201);

    const low = await alert('device:cam-1', 'low');
    const tricky = 'flood on "line|3" = 50\\s ] [x]';
    const critical = await alert('device:cam-2', 'critical', tricky);
    await expect.poll(() => plain.messages.length).toBe(2);
    await expect.poll(() => secure.messages.length).toBe(1);
    expect(plain.errors.concat(secure.errors)).toEqual([]);

    const [m1, m2] = plain.messages;
    expect(m1).toMatchObject({
      version: 1,
      facility: 10,
      severity: 5,
      appName: 'bulwark',
      msgId: 'alert.raised',
    });
    expect(m1!.structuredData[0]).toEqual({
      id: 'bulwark@32473',
      params: { seq: String(low.seq), actor: 'system', subject: 'device:cam-1', hash: low.hash },
    });
    expect(m2).toMatchObject({ facility: 10, severity: 2 });
    expect(JSON.parse(m2!.msg)).toEqual(critical.data);

    const m = secure.messages[0]!;
    expect(m).toMatchObject({ facility: 13, severity: 2, msgId: 'alert.raised' });
    const cef = parseCef(m.msg);
    expect(cef).toMatchObject({ vendor: 'Bulwark', signatureId: 'alert.raised', name: tricky, severity: 10 });
    expect(cef.extension).toMatchObject({
      externalId: String(critical.seq),
      msg: tricky,
      cs1: 'device:cam-2',
      cs3: 'flood',
      rt: String(critical.ts),
    });
    expect(secure.connections).toBe(1); // one persistent connection

    const test = await api<{ ok: boolean }>('POST', '/api/v1/notification-channels/siem-tls/test');
    expect(test.body.ok).toBe(true);
    await expect.poll(() => secure.messages.at(-1)?.msgId).toBe('notification.test');
    for (const name of ['siem-tcp', 'siem-tls']) await api('DELETE', `/api/v1/notification-channels/${name}`);
  });

  it('holds everything for a collector that is down, and delivers it in order without gaps once it is up', async () => {
    const port = await freePort();
    const created = await api<ChannelOut>('POST', '/api/v1/notification-channels', {
      name: 'late',
      kind: 'syslog',
      target: `127.0.0.1:${port}`,
      transport: 'tcp',
    });
    const seqs: number[] = [];
    for (let i = 0; i < 5; i++) seqs.push((await alert(`device:late-${i}`, 'medium')).seq);
    await expect
      .poll(async () => (await api<ChannelOut>('GET', '/api/v1/notification-channels/late')).body.status, {
        timeout: 5000,
      })
      .toMatchObject({ failing: true, lastError: expect.stringMatching(/ECONNREFUSED/) as string });
    for (let i = 5; i < 10; i++) seqs.push((await alert(`device:late-${i}`, 'medium')).seq);
    await new Promise((resolve) => setTimeout(resolve, 300)); // a few more failed attempts

    const collector = await startSyslogReceiver({ port });
    closers.push(() => collector.close());
    await expect.poll(() => collector.messages.length, { timeout: 5000 }).toBeGreaterThanOrEqual(10);
    expect(collector.messages.map((m) => Number(m.structuredData[0]!.params.seq))).toEqual(seqs);
    const of = <T extends 'notification.channel_failing' | 'notification.channel_recovered'>(type: T) =>
      s.platform.audit.query({ type, subject: `channel:${created.body.id}`, limit: 10 });
    await expect.poll(async () => (await of('notification.channel_recovered')).length).toBe(1);
    const failing = await of('notification.channel_failing');
    expect(failing).toHaveLength(1);
    expect(failing[0]!.data.pendingFromSeq).toBe(seqs[0]);
    expect((await of('notification.channel_recovered'))[0]!.data.attempts).toBeGreaterThan(1);
    expect((await api<ChannelOut>('GET', '/api/v1/notification-channels/late')).body.status).toMatchObject({
      failing: false,
      attempts: 0,
    });
    await api('DELETE', '/api/v1/notification-channels/late');
  });

  it('delivers after kill -9 and a restart what the killed server had not', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'bulwark-notify-kill-'));
    const configFile = path.join(mkdtempSync(path.join(tmpdir(), 'bulwark-notify-cfg-')), 'bulwark.yaml');
    writeFileSync(
      configFile,
      'logLevel: error\nnotifications:\n  pollInterval: 50\n  retryBase: 100\n  retryMax: 300\n  timeout: 2000\n',
    );
    const args = ['--data', dataDir, '--config', configFile];
    const cli = async (...argv: string[]) =>
      (await exec(process.execPath, [BULWARK_BIN, ...argv, ...args])).stdout;
    const serve = async (): Promise<ChildProcess> => {
      const child = spawn(
        process.execPath,
        [BULWARK_BIN, 'serve', ...args, '--mqtt-port', '0', '--https-port', '0', '--bind', '127.0.0.1'],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      await expect.poll(() => out, { timeout: 15_000 }).toContain('is running');
      return child;
    };
    const port = await freePort();
    let child = await serve();
    let receiver: Awaited<ReturnType<typeof verifyingReceiver>> | undefined;
    try {
      const { secret } = JSON.parse(
        await cli(
          'notify',
          'add',
          'kill-hook',
          '--webhook',
          `http://127.0.0.1:${port}/hook`,
          '--types',
          'device.*',
          '--json',
        ),
      ) as ChannelOut;
      // Three CLI processes at once (each its own writer on the store): two devices, and a test message
      // that must fail with one line while nothing listens.
      const [, , test] = await Promise.all([
        cli('device', 'add', 'k-1'),
        cli('device', 'add', 'k-2'),
        exec(process.execPath, [BULWARK_BIN, 'notify', 'test', 'kill-hook', ...args]).then(
          () => ({ stderr: '' }),
          (e: { stderr: string }) => e,
        ),
      ]);
      expect(test.stderr.trim()).toMatch(/^bulwark: test message to kill-hook failed: .*ECONNREFUSED/);
      expect(test.stderr.trim().split('\n')).toHaveLength(1);
      // The running server has tried (and failed) to deliver: the entries wait in the audit log.
      const db = new SQLite(path.join(dataDir, 'bulwark.db'), { readonly: true });
      const pending = () =>
        db
          .prepare(
            "SELECT subject FROM audit_log WHERE type = 'device.added' AND seq > (SELECT cursor FROM notification_channels)",
          )
          .all()
          .map((r) => (r as { subject: string }).subject)
          .sort();
      await expect
        .poll(
          () =>
            (db.prepare('SELECT attempts FROM notification_channels').get() as { attempts: number }).attempts,
          {
            timeout: 5000,
          },
        )
        .toBeGreaterThan(0);
      expect(pending()).toEqual(['device:k-1', 'device:k-2']);
      child.kill('SIGKILL');
      await once(child, 'exit');
      await cli('device', 'add', 'k-3'); // while the server is down

      receiver = await verifyingReceiver({ port });
      receiver.trust(secret!);
      child = await serve();
      await expect
        .poll(() => [...new Set(accepted(receiver!).map((e) => e.subject))].sort(), { timeout: 10_000 })
        .toEqual(['device:k-1', 'device:k-2', 'device:k-3']);
      db.close();
      const seen = accepted(receiver);
      const firsts = [...new Map(seen.map((e) => [e.seq, e])).values()];
      expect(firsts.map((e) => e.seq)).toEqual([...firsts.map((e) => e.seq)].sort((a, b) => a - b));
      expect(receiver.requests.every((q) => q.status === 204)).toBe(true);
      // Each entry keeps its webhook-id, so a receiver drops what it already has.
      for (const q of receiver.requests) {
        const e = JSON.parse(q.body) as AuditEntry;
        expect(q.headers['webhook-id']).toBe(`bulwark_${e.seq}_${e.hash.slice(0, 16)}`);
      }
    } finally {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await once(child, 'exit');
      }
      await receiver?.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
