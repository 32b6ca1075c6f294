import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entriesOf, type AuditEntry, type EventType } from '../events/index.ts';
import { connectMqtt, exec, rawMqtt, workDir } from '../test-support/clients.ts';
import { apiToken, enrollInProcess, startTestServer, type TestServer } from '../test-support/server.ts';

type Creds = { id: string; key: string; cert: string };
const MB = 1024 * 1024;

/** Waits for `check` to hold, polling; fails with `what` after a generous deadline (a loaded machine is slow). */
async function until<T>(what: string, check: () => Promise<T | undefined> | T | undefined, ms = 30_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const events = async <T extends EventType>(s: TestServer, type: T): Promise<AuditEntry<T>[]> =>
  entriesOf(await s.platform.audit.readAfter(0, 5000), type);

/** The key and certificate as files, for openssl. */
function files(dir: string, creds: Creds) {
  const key = path.join(dir, `${creds.id}.key`);
  const cert = path.join(dir, `${creds.id}.crt`);
  writeFileSync(key, creds.key);
  writeFileSync(cert, creds.cert);
  return { key, cert };
}

/** `openssl s_client` as the device: the bytes written to its stdin go to the broker as they are. */
function sClient(s: TestServer, f: { key: string; cert: string }): ChildProcess & { exited: Promise<void> } {
  const child = spawn(
    'openssl',
    [
      's_client',
      '-connect',
      `127.0.0.1:${s.server.mqttPort}`,
      '-servername',
      'localhost',
      '-CAfile',
      s.caFile,
      '-cert',
      f.cert,
      '-key',
      f.key,
      '-quiet',
    ],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  child.stdin.on('error', () => undefined); // EPIPE once the broker has closed the connection
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return Object.assign(child, { exited });
}

/**
 * Writes `prefix` and then zeros, up to `max` bytes, as fast as the connection takes them, until the broker
 * closes it. The same 64 KiB buffer is written each time: the test process (which is also the server) holds
 * almost nothing of what is sent.
 */
async function pour(child: ChildProcess & { exited: Promise<void> }, prefix: Buffer, max: number) {
  let gone = false;
  void child.exited.then(() => (gone = true));
  const zeros = Buffer.alloc(64 * 1024);
  child.stdin!.write(prefix);
  let sent = prefix.length;
  while (!gone && sent < max) {
    if (!child.stdin!.write(zeros)) {
      await Promise.race([once(child.stdin!, 'drain').catch(() => undefined), child.exited]);
    }
    sent += zeros.length;
  }
}

/** A fixed header announcing `length` bytes ([MQTT-2.2.3]: remaining length, 7 bits per byte, at most 4). */
function fixedHeader(first: number, length: number): Buffer {
  const bytes = [first];
  let n = length;
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    bytes.push(b);
  } while (n > 0);
  return Buffer.from(bytes);
}

/** CONNECT for MQTT 3.1.1, clean session, keep-alive 30 s, with this client id. */
function connectPacket(clientId: string): Buffer {
  const id = Buffer.from(clientId);
  const body = Buffer.concat([
    Buffer.from([0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x1e]),
    Buffer.from([id.length >> 8, id.length & 0xff]),
    id,
  ]);
  return Buffer.concat([fixedHeader(0x10, body.length), body]);
}

describe('broker hardening: sizes, handshakes, revocation in TLS, refused CONNECTs', () => {
  let s: TestServer;
  let dir: string;
  let ca: string;
  let dev: Creds;

  beforeAll(async () => {
    s = await startTestServer({ 'mqtt.handshakeTimeout': 1000, 'mqtt.connectTimeout': 1000 });
    dir = workDir();
    ca = readFileSync(s.caFile, 'utf8');
    dev = await enrollInProcess(s, 'big-1');
  });
  afterAll(async () => s?.stop());

  it('closes connections announcing 250 MB CONNECTs at the fixed header, holding almost no memory, and records each', async () => {
    const f = files(dir, dev);
    const before = process.memoryUsage().rss;
    // CONNECT fixed header with a remaining length of 250,000,000, the start of a CONNECT, then zeros: on the
    // old code each connection's bytes were buffered until the whole announced packet had arrived.
    const prefix = Buffer.concat([fixedHeader(0x10, 250_000_000), connectPacket('big-1').subarray(2)]);
    const clients = [sClient(s, f), sClient(s, f), sClient(s, f)];
    await Promise.all(clients.map((c) => pour(c, prefix, 12 * MB)));
    const during = process.memoryUsage().rss;
    await Promise.all(clients.map((c) => c.exited)); // each connection is closed by the broker
    const after = process.memoryUsage().rss;
    expect(Math.max(during, after) - before).toBeLessThan(10 * MB);
    const refused = await until('three refusals', async () => {
      const r = (await events(s, 'mqtt.connect_refused')).filter((e) =>
        String(e.data.reason).startsWith('packet_too_large: CONNECT announces 250000000 bytes'),
      );
      return r.length >= 3 ? r : undefined;
    });
    expect(refused[0]).toMatchObject({ actor: 'device:big-1', data: { remoteAddress: '127.0.0.1' } });
    expect(refused[0]!.data.returnCode).toBeUndefined(); // closed without a CONNACK
  });

  it('closes a connection whose CONNECT does not arrive within mqtt.connectTimeout, and records it', async () => {
    const before = (await events(s, 'mqtt.connect_refused')).length;
    // TLS completes, then nothing: rawMqtt waits well past the 1 s deadline before giving up itself.
    const r = await rawMqtt(s.server.mqttPort, { ca, key: dev.key, cert: dev.cert }, [], 5000);
    expect(r).toEqual({ packets: [], closed: true });
    const refused = await until('the refusal', async () =>
      (await events(s, 'mqtt.connect_refused'))
        .slice(before)
        .find((e) => e.data.reason === 'connect_timeout'),
    );
    expect(refused).toMatchObject({ actor: 'device:big-1', data: { remoteAddress: '127.0.0.1' } });
  });

  it('refuses an oversized PUBLISH from a connected device the same way, with an event', async () => {
    const publisher = await enrollInProcess(s, 'big-2');
    const c = sClient(s, files(dir, publisher));
    c.stdin!.write(connectPacket('big-2'));
    // Wait for CONNACK 0 (20 02 00 00): the PUBLISH below then comes from an authenticated session.
    let seen = Buffer.alloc(0);
    await new Promise<void>((resolve) =>
      c.stdout!.on('data', (d: Buffer) => {
        seen = Buffer.concat([seen, d]);
        if (seen.includes(Buffer.from([0x20, 0x02, 0x00, 0x00]))) resolve();
      }),
    );
    const before = process.memoryUsage().rss;
    const topic = Buffer.from('devices/big-2/t');
    const prefix = Buffer.concat([
      fixedHeader(0x30, 250_000_000),
      Buffer.from([topic.length >> 8, topic.length & 0xff]),
      topic,
    ]);
    await pour(c, prefix, 12 * MB);
    await c.exited;
    expect(process.memoryUsage().rss - before).toBeLessThan(10 * MB);
    const dropped = await until('the dropped session', async () =>
      (await events(s, 'mqtt.session_dropped')).find((e) => e.subject === 'device:big-2'),
    );
    expect(dropped.data).toMatchObject({ trigger: 'packet_size' });
    expect(String(dropped.data.reason)).toMatch(/^packet_too_large: PUBLISH announces 250000000 bytes/);
    expect(s.server.broker.connectedDevices()).not.toContain('big-2');
    // A PUBLISH within the limit still goes through after reconnecting.
    const r = await rawMqtt(s.server.mqttPort, { ca, key: publisher.key, cert: publisher.cert }, [
      connectPacket('big-2'),
      { cmd: 'publish', topic: 'devices/big-2/t', payload: Buffer.alloc(200_000), qos: 1, messageId: 7 },
    ]);
    expect(r.packets.map((p) => p.cmd)).toEqual(['connack', 'puback']);
  });

  it('closes TCP connections that never finish the TLS handshake within mqtt.handshakeTimeout, and counts them', async () => {
    const token = await apiToken(s, 'metrics-admin');
    const counted = async () => {
      const res = await s.server.app.inject({
        method: 'GET',
        url: '/metrics',
        headers: { authorization: `Bearer ${token}` },
      });
      return Number(/^bulwark_broker_handshake_timeouts_total (\d+)/m.exec(res.body)?.[1] ?? NaN);
    };
    const start = await counted();
    const sockets = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const socket = net.connect(s.server.mqttPort, '127.0.0.1');
        await once(socket, 'connect');
        // Some say nothing at all, some stall in the middle of a ClientHello.
        if (i % 2) socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]));
        socket.on('error', () => undefined);
        return { closed: new Promise<void>((resolve) => socket.once('close', () => resolve())) };
      }),
    );
    await Promise.all(sockets.map((c) => c.closed)); // every one closed by the server (the test never closes them)
    await until('the counter', async () => ((await counted()) - start >= 50 ? true : undefined));
    const recorded = await events(s, 'tls.handshake_failed');
    expect(recorded.some((e) => e.data.reason === 'ERR_TLS_HANDSHAKE_TIMEOUT')).toBe(true);
  });

  it('counts publish denials by reason: mosquitto_pub cannot be told why (MQTT 3.1.1 has no negative PUBACK), /metrics can', async () => {
    const token = await apiToken(s, 'denials-admin');
    const denied = async () => {
      const res = await s.server.app.inject({
        method: 'GET',
        url: '/metrics',
        headers: { authorization: `Bearer ${token}` },
      });
      return Number(
        /^bulwark_broker_publish_denied_total\{reason="no_matching_statement"\} (\d+)/m.exec(res.body)?.[1] ??
          0,
      );
    };
    const start = await denied();
    const f = files(dir, dev);
    const pub = (qos: string) =>
      exec('mosquitto_pub', [
        ...['-h', 'localhost', '-p', String(s.server.mqttPort), '--cafile', s.caFile],
        ...['--cert', f.cert, '--key', f.key, '-i', 'big-1', '-V', 'mqttv311'],
        ...['-t', 'devices/someone-else/commands', '-m', 'reboot', '-q', qos],
      ]).then(
        () => 0,
        (e: { code?: number }) => e.code ?? 1,
      );
    // The broker closes the connection ([MQTT-3.3.5-2]). At QoS 0 the client has nothing to wait for and reports
    // success; at QoS 1 it reports only a lost connection (mosquitto's MOSQ_ERR_CONN_LOST), never a refusal.
    expect(await pub('0')).toBe(0);
    expect(await pub('1')).not.toBe(0);
    await until('two counted denials', async () => ((await denied()) - start >= 2 ? true : undefined));
    // Counted at once; the events are durable a moment later (the broker never awaits the audit log).
    const recorded = await until('two recorded denials', async () => {
      const r = (await events(s, 'mqtt.publish_denied')).filter((e) => e.subject === 'device:big-1');
      return r.length >= 2 ? r : undefined;
    });
    expect(recorded.length).toBeGreaterThanOrEqual(2);
    expect(recorded[0]!.data).toEqual({
      topic: 'devices/someone-else/commands',
      reason: 'no_matching_statement',
    });
  });

  it('records a CONNECT of an unsupported protocol level and malformed CONNECTs as mqtt.connect_refused', async () => {
    const before = (await events(s, 'mqtt.connect_refused')).length;
    // The broker speaks MQTT 3.1.1 and 5, and refuses MQTT 3.1 (level 3, MQIsdp).
    const refused = await new Promise<number | undefined>((resolve) => {
      const client = mqtt.connect(s.mqttUrl, {
        ca,
        key: dev.key,
        cert: dev.cert,
        clientId: 'big-1',
        protocolId: 'MQIsdp',
        protocolVersion: 3,
        reconnectPeriod: 0,
        connectTimeout: 5000,
      });
      client.on('error', (err: Error & { code?: number }) => {
        client.end(true);
        resolve(err.code);
      });
      client.on('connect', () => {
        client.end(true);
        resolve(undefined);
      });
      client.on('close', () => resolve(undefined));
    });
    expect(refused).not.toBe(0);
    // A CONNECT whose protocol name is not "MQTT" [MQTT-3.1.2-1], and a first packet that is not a CONNECT.
    const badName = Buffer.from([
      0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x58, 0x04, 0x02, 0x00, 0x1e, 0x00, 0x00,
    ]);
    const r1 = await rawMqtt(s.server.mqttPort, { ca, key: dev.key, cert: dev.cert }, [badName]);
    expect(r1.closed).toBe(true);
    const r2 = await rawMqtt(s.server.mqttPort, { ca, key: dev.key, cert: dev.cert }, [{ cmd: 'pingreq' }]);
    expect(r2.closed).toBe(true);
    const reasons = await until('three refusals', async () => {
      const r = (await events(s, 'mqtt.connect_refused')).map((e) => e.data);
      return r.length >= before + 3 ? r.slice(before) : undefined;
    });
    expect(reasons).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          reason: 'unsupported protocol level 3 (MQTT 3.1.1 and 5.0 only)',
          returnCode: 1,
        }),
        expect.objectContaining({ reason: expect.stringMatching(/^malformed: .*protocol/i) as string }),
        expect.objectContaining({ reason: 'first packet is not CONNECT [MQTT-3.1.0-1]' }),
      ]),
    );
  });
});

const serialOf = async (pem: string) => {
  const { x509, normalizeSerial } = await import('../pki/index.ts');
  return normalizeSerial(new x509.X509Certificate(pem).serialNumber);
};

/** The mqtt handshake failures recorded for this certificate, by reason. */
async function refusalsOf(s: TestServer, cert: string): Promise<string[]> {
  const { normalizeSerial } = await import('../pki/index.ts');
  const serial = await serialOf(cert);
  return (await events(s, 'tls.handshake_failed'))
    .filter((e) => typeof e.data.certSerial === 'string' && normalizeSerial(e.data.certSerial) === serial)
    .map((e) => String(e.data.reason));
}

describe('broker: revoked and unknown certificates are refused in the TLS handshake', () => {
  let s: TestServer;
  afterAll(async () => s?.stop());

  it('refuses a certificate revoked before the server started, and one revoked while it runs', async () => {
    s = await startTestServer();
    const early = await enrollInProcess(s, 'rev-early');
    const live = await enrollInProcess(s, 'rev-live');
    const other = await enrollInProcess(s, 'rev-other');
    const { dataDir } = s;
    await s.stop({ keepData: true });
    // `bulwark device revoke` with the server stopped; then the server starts with the revocation in its CRL.
    const revoked = await s.cli(['device', 'revoke', 'rev-early']);
    expect(revoked.code).toBe(0);
    s = await startTestServer({}, { dataDir });

    const ca = readFileSync(s.caFile, 'utf8');
    const tryConnect = (c: Creds) =>
      rawMqtt(s.server.mqttPort, { ca, key: c.key, cert: c.cert }, [connectPacket(c.id)]);
    // No CONNACK, closed; the server recorded OpenSSL's verdict on the chain with its CRLs: the handshake refused it.
    const r = await tryConnect(early);
    expect(r).toEqual({ packets: [], closed: true });
    expect(await until('the refusal', async () => (await refusalsOf(s, early.cert)).at(0))).toBe(
      'CERT_REVOKED',
    );
    const refused = (await events(s, 'tls.handshake_failed')).find((e) => e.data.reason === 'CERT_REVOKED');
    expect(refused).toMatchObject({
      subject: 'device:rev-early', // in the device's history: its CA-signed certificate names it
      data: { listener: 'mqtt', remoteAddress: '127.0.0.1' },
    });

    // rev-live is connected; the CLI (another process) revokes it: the session ends, and the CRL the TLS
    // listener checks is swapped in live (after the revocation event arrives from the audit-log tail).
    const session = await connectMqtt(s.mqttUrl, ca, live);
    const closed = new Promise<void>((resolve) => session.once('close', () => resolve()));
    expect((await s.cli(['device', 'revoke', 'rev-live'])).code).toBe(0);
    await closed;
    session.end(true);
    await until('the live revocation in the handshake', async () => {
      const attempt = await tryConnect(live);
      expect(attempt.packets).toEqual([]);
      return (await refusalsOf(s, live.cert)).includes('CERT_REVOKED') ? true : undefined;
    });
    // Other devices still connect.
    expect((await tryConnect(other)).packets[0]).toMatchObject({ cmd: 'connack', returnCode: 0 });
  });

  it('closes a connection whose certificate the store does not know, before reading any MQTT, with an event', async () => {
    const gone = await enrollInProcess(s, 'unknown-1');
    // As after restoring the store from a backup older than the certificate: it chains to our CA, is on no CRL,
    // and the store has never heard of it.
    const certSerial = await serialOf(gone.cert);
    await s.platform.store.db.deleteFrom('certificates').where('serial', '=', certSerial).execute();
    const ca = readFileSync(s.caFile, 'utf8');
    const r = await rawMqtt(s.server.mqttPort, { ca, key: gone.key, cert: gone.cert }, [
      connectPacket('unknown-1'),
    ]);
    expect(r.packets).toEqual([]); // no CONNACK: the CONNECT was never read
    expect(r.closed).toBe(true);
    expect(await until('the refusal event', async () => (await refusalsOf(s, gone.cert)).at(0))).toBe(
      'certificate_unknown',
    );
    const recorded = (await events(s, 'tls.handshake_failed')).find(
      (e) => e.data.reason === 'certificate_unknown',
    );
    expect(recorded?.subject).toBe('device:unknown-1');
  });
});
