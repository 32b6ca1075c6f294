import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { est, pkiPaths } from '@bulwark/protocol';
import {
  basic,
  connectMqtt,
  exec,
  httpsRequest,
  opensslCsr,
  pkcs7ToPem,
  rawMqtt,
  workDir,
  type DeviceCreds,
} from './test-support/clients.ts';
import { startTestServer, type TestServer } from './test-support/server.ts';
import { entriesOf } from './events/index.ts';

/**
 * Acceptance of the foundation, tried as a new user would: `openssl req` + `curl` against EST,
 * `openssl verify`, mosquitto clients and mqtt.js against the broker, the real `bulwark` CLI in a
 * separate process, and a database tool against the audit log.
 */
describe('foundation end to end', () => {
  let s: TestServer;
  let ca: string;
  let dir: string;

  async function enrollWithCurl(
    id: string,
    spec: Parameters<typeof opensslCsr>[2] = 'ec-p256',
  ): Promise<DeviceCreds> {
    expect((await s.cli(['device', 'add', id])).code).toBe(0);
    const token = JSON.parse((await s.cli(['device', 'token', id, '--json'])).stdout) as { token: string };
    const csr = await opensslCsr(dir, id, spec, 'not-the-device-id');
    const csrFile = path.join(dir, `${id}.csr.b64`);
    writeFileSync(csrFile, csr.base64);
    const { stdout } = await exec('curl', [
      '-sS',
      '--fail-with-body',
      '--cacert',
      s.caFile,
      '-u',
      `${id}:${token.token}`,
      '-H',
      'Content-Type: application/pkcs10',
      '--data-binary',
      `@${csrFile}`,
      `${s.httpsUrl}${est.simpleenroll}`,
    ]);
    const cert = await pkcs7ToPem(dir, stdout);
    const certFile = path.join(dir, `${id}.crt`);
    writeFileSync(certFile, cert);
    return { id, key: csr.keyPem, cert, keyFile: csr.keyFile, certFile };
  }

  /** Runs mosquitto_pub/mosquitto_sub against the broker; resolves with the exit code and output. */
  const mosquitto = (
    tool: 'mosquitto_pub' | 'mosquitto_sub',
    who: { id: string; certFile?: string; keyFile?: string },
    args: string[],
  ): Promise<{ code: number; stdout: string; stderr: string }> => {
    const identity = who.certFile && who.keyFile ? ['--cert', who.certFile, '--key', who.keyFile] : [];
    const base = [
      '-h',
      'localhost',
      '-p',
      String(s.server.mqttPort),
      '--cafile',
      s.caFile,
      ...identity,
      '-i',
      who.id,
    ];
    return exec(tool, [...base, ...args], { timeout: 5000 }).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
  };

  beforeAll(async () => {
    s = await startTestServer();
    ca = readFileSync(s.caFile, 'utf8');
    dir = workDir();
  });
  afterAll(async () => s?.stop());

  it('serves the CA chain over EST cacerts and the CLI, and it is a proper two-level ECDSA hierarchy', async () => {
    const res = await httpsRequest(`${s.httpsUrl}${est.cacerts}`, { ca });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/application\/pkcs7-mime/);
    const pem = await pkcs7ToPem(dir, res.body);
    expect(pem.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    const cliChain = await s.cli(['pki', 'ca-chain']);
    expect(cliChain.stdout).toBe(ca);
    const [issuing, root] = ca.split(/(?<=-----END CERTIFICATE-----\n)/).filter((p) => p.includes('BEGIN'));
    writeFileSync(path.join(dir, 'issuing.pem'), issuing!);
    writeFileSync(path.join(dir, 'root.pem'), root!);
    const rootText = (await exec('openssl', ['x509', '-in', path.join(dir, 'root.pem'), '-noout', '-text']))
      .stdout;
    expect(rootText).toMatch(/CA:TRUE, pathlen:1/);
    expect(rootText).toMatch(/Certificate Sign, CRL Sign/);
    expect(rootText).toMatch(/ASN1 OID: prime256v1/);
    const issuingText = (
      await exec('openssl', ['x509', '-in', path.join(dir, 'issuing.pem'), '-noout', '-text'])
    ).stdout;
    expect(issuingText).toMatch(/CA:TRUE, pathlen:0/);
    expect(issuingText).toMatch(/Subject Key Identifier/);
    expect(issuingText).toMatch(/Authority Key Identifier/);
    const serverCert = (
      await exec(
        'openssl',
        ['s_client', '-connect', `127.0.0.1:${s.server.httpsPort}`, '-servername', 'localhost', '-showcerts'],
        { timeout: 5000 },
      ).catch((e: { stdout: string }) => e)
    ).stdout;
    writeFileSync(
      path.join(dir, 'server.pem'),
      /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/.exec(serverCert)?.[0] ?? '',
    );
    const serverText = (
      await exec('openssl', ['x509', '-in', path.join(dir, 'server.pem'), '-noout', '-ext', 'subjectAltName'])
    ).stdout;
    expect(serverText).toMatch(/DNS:localhost/);
    expect(serverText).toMatch(/IP Address:127.0.0.1/);
    expect(serverText).toMatch(/IP Address:0:0:0:0:0:0:0:1/);
  });

  it('enrolls with openssl req + curl; the certificate verifies and names the device, whatever the CSR said', async () => {
    const dev = await enrollWithCurl('sensor-1');
    const verify = await exec('openssl', ['verify', '-CAfile', s.caFile, dev.certFile]);
    expect(verify.stdout).toMatch(/OK/);
    const text = (
      await exec('openssl', [
        'x509',
        '-in',
        dev.certFile,
        '-noout',
        '-subject',
        '-ext',
        'subjectAltName,extendedKeyUsage,basicConstraints',
      ])
    ).stdout;
    expect(text).toMatch(/CN ?= ?sensor-1/);
    expect(text).not.toMatch(/not-the-device-id/);
    expect(text).toMatch(/URI:urn:bulwark:device:sensor-1/);
    expect(text).toMatch(/TLS Web Client Authentication/);
    expect(text).toMatch(/CA:FALSE/);
    const list = JSON.parse((await s.cli(['device', 'list', '--json'])).stdout) as {
      id: string;
      status: string;
    }[];
    expect(list.find((d) => d.id === 'sensor-1')?.status).toBe('active');
  });

  it('accepts P-384 and RSA-2048 keys', async () => {
    for (const [id, spec] of [
      ['p384-dev', 'ec-p384'],
      ['rsa-dev', 'rsa-2048'],
    ] as const) {
      const dev = await enrollWithCurl(id, spec);
      expect((await exec('openssl', ['verify', '-CAfile', s.caFile, dev.certFile])).stdout).toMatch(/OK/);
    }
  });

  it('lets a device publish only under its own topics; another device cannot read them (mosquitto clients)', async () => {
    const a = await enrollWithCurl('pub-a');
    const b = await enrollWithCurl('pub-b');
    // b tries to read a's subtree and everything: the broker refuses each filter with SUBACK 0x80.
    for (const filter of ['devices/pub-a/#', '#', 'devices/+/telemetry', '$SYS/#']) {
      const sub = await mosquitto('mosquitto_sub', b, ['-t', filter, '-v', '-W', '2']);
      expect(sub.stdout).toBe('');
      expect(sub.stderr).toMatch(/denied/i);
    }
    // a publishes a retained message with mosquitto_pub …
    const published = await mosquitto('mosquitto_pub', a, [
      '-t',
      'devices/pub-a/telemetry',
      '-m',
      '{"t":21.5}',
      '-q',
      '1',
      '-r',
    ]);
    expect(published.code).toBe(0);
    // … which a itself reads back (so it really was accepted) …
    const own = await connectMqtt(s.mqttUrl, ca, a);
    const got = new Promise<string>((resolve) =>
      own.once('message', (topic, payload) => resolve(`${topic} ${payload.toString()}`)),
    );
    await own.subscribeAsync('devices/pub-a/#', { qos: 1 });
    expect(await got).toBe('devices/pub-a/telemetry {"t":21.5}');
    await own.endAsync();
    // … and b, subscribed to its own subtree with mqtt.js, receives nothing of it.
    const other = await connectMqtt(s.mqttUrl, ca, b);
    const seen: string[] = [];
    other.on('message', (topic) => seen.push(topic));
    await other.subscribeAsync('devices/pub-b/#', { qos: 1 });
    await new Promise((r) => setTimeout(r, 300));
    expect(seen).toEqual([]);
    await other.endAsync();
    // One SUBSCRIBE with an allowed and a refused filter: SUBACK grants the first and answers 0x80 for the second.
    const raw = await rawMqtt(s.server.mqttPort, { ca, key: b.key, cert: b.cert }, [
      {
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        clean: true,
        clientId: 'pub-b',
        keepalive: 30,
      },
      {
        cmd: 'subscribe',
        messageId: 7,
        subscriptions: [
          { topic: 'devices/pub-b/#', qos: 1 },
          { topic: 'devices/pub-a/#', qos: 1 },
        ],
      },
    ]);
    expect(raw.packets.find((p) => p.cmd === 'suback')).toMatchObject({ messageId: 7, granted: [1, 128] });
    expect(raw.packets.some((p) => p.cmd === 'publish')).toBe(false);
    const denials = await s.platform.audit.readAfter(0, 1000);
    expect(
      denials.some(
        (e) =>
          e.type === 'mqtt.subscribe_denied' &&
          e.subject === 'device:pub-b' &&
          e.data.topic === 'devices/pub-a/#',
      ),
    ).toBe(true);
  });

  it('fails the TLS handshake for a certificate from a foreign CA, and records it', async () => {
    const foreign = path.join(dir, 'foreign');
    await exec('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      `${foreign}.key`,
      '-out',
      `${foreign}.crt`,
      '-subj',
      '/CN=sensor-1',
      '-days',
      '1',
    ]);
    const res = await mosquitto(
      'mosquitto_pub',
      { id: 'sensor-1', certFile: `${foreign}.crt`, keyFile: `${foreign}.key` },
      ['-t', 'devices/sensor-1/x', '-m', 'x'],
    );
    expect(res.code).not.toBe(0);
    // No certificate at all fails the same way.
    const none = await mosquitto('mosquitto_pub', { id: 'sensor-1' }, [
      '-t',
      'devices/sensor-1/x',
      '-m',
      'x',
    ]);
    expect(none.code).not.toBe(0);
    await expect
      .poll(
        async () =>
          (await s.platform.audit.readAfter(0, 1000)).filter(
            (e) => e.type === 'tls.handshake_failed' && e.data.listener === 'mqtt',
          ).length,
      )
      .toBeGreaterThanOrEqual(1);
  });

  it('refuses TLS below 1.2 on both listeners', async () => {
    const handshake = async (port: number, version: string) => {
      // SECLEVEL=0 lets this openssl offer old versions, so the refusal we see is the server's.
      const cmd = `openssl s_client -connect 127.0.0.1:${port} ${version} -cipher DEFAULT@SECLEVEL=0 </dev/null`;
      const res = await exec('sh', ['-c', cmd], { timeout: 5000 }).catch((e: { stdout: string }) => e);
      return /Cipher is \(NONE\)/.test(res.stdout) ? 'refused' : 'negotiated';
    };
    for (const port of [s.server.mqttPort, s.server.httpsPort]) {
      expect(await handshake(port, '-tls1_1')).toBe('refused');
      expect(await handshake(port, '-tls1')).toBe('refused');
      expect(await handshake(port, '-tls1_2')).toBe('negotiated');
      expect(await handshake(port, '-tls1_3')).toBe('negotiated');
    }
  });

  it('revokes from the CLI: the live session drops within 1 s, new connections are refused, the CRL lists it', async () => {
    const dev = await enrollWithCurl('revoke-me');
    const live = await connectMqtt(s.mqttUrl, ca, dev);
    const closed = new Promise<number>((resolve) => live.once('close', () => resolve(Date.now())));
    const result = await s.cli(['device', 'revoke', 'revoke-me']);
    const revokedAt = Date.now();
    expect(result.code).toBe(0);
    const droppedAt = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(-1), 2000))]);
    expect(droppedAt).toBeGreaterThan(0);
    expect(droppedAt - revokedAt).toBeLessThan(1000);
    live.end(true);

    // The revoked certificate fails at the TLS listener (its CRL, or the store check right after the
    // handshake): no CONNACK at all, and the refusal is recorded with the certificate's serial.
    const refused = await connectMqtt(s.mqttUrl, ca, dev).then(
      () => 'connected',
      () => 'refused',
    );
    expect(refused).toBe('refused');
    const mosq = await mosquitto('mosquitto_pub', dev, ['-t', 'devices/revoke-me/x', '-m', 'x']);
    expect(mosq.code).not.toBe(0);
    await expect
      .poll(async () =>
        entriesOf(await s.platform.audit.readAfter(0, 2000), 'tls.handshake_failed')
          .filter((e) => e.data.listener === 'mqtt')
          .map((e) => String(e.data.reason)),
      )
      .toEqual(expect.arrayContaining([expect.stringMatching(/revoked/i)]));

    const crl = await httpsRequest(`${s.httpsUrl}${pkiPaths.crl}`, { ca });
    expect(crl.status).toBe(200);
    const crlFile = path.join(dir, 'crl.pem');
    const crlDer = path.join(dir, 'crl.der');
    const raw = await new Promise<Buffer>((resolve, reject) => {
      import('node:https').then(
        ({ get }) =>
          get(`${s.httpsUrl}${pkiPaths.crl}`, { ca }, (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve(Buffer.concat(chunks)));
          }).on('error', reject),
        reject,
      );
    });
    writeFileSync(crlDer, raw);
    await exec('openssl', ['crl', '-inform', 'DER', '-in', crlDer, '-out', crlFile]);
    const serial = (await exec('openssl', ['x509', '-in', dev.certFile, '-noout', '-serial'])).stdout
      .trim()
      .split('=')[1]!;
    expect(
      (await exec('openssl', ['crl', '-in', crlFile, '-noout', '-text'])).stdout.toUpperCase(),
    ).toContain(serial.toUpperCase());
    const crlCheck = await exec('openssl', [
      'verify',
      '-crl_check',
      '-CAfile',
      s.caFile,
      '-CRLfile',
      crlFile,
      dev.certFile,
    ]).catch((e: { stdout: string; stderr: string }) => e);
    expect(`${crlCheck.stdout}${crlCheck.stderr}`).toMatch(/certificate revoked/);
    const types = (await s.platform.audit.readAfter(0, 2000))
      .filter((e) => e.subject === 'device:revoke-me')
      .map((e) => e.type);
    expect(types).toEqual(
      expect.arrayContaining(['certificate.revoked', 'device.revoked', 'mqtt.session_dropped']),
    );
  });

  it('refuses bad enrollments with a clear 4xx and changes nothing', async () => {
    expect((await s.cli(['device', 'add', 'careful'])).code).toBe(0);
    const { token } = JSON.parse((await s.cli(['device', 'token', 'careful', '--json'])).stdout) as {
      token: string;
    };
    const good = await opensslCsr(dir, 'careful');
    const enroll = (body: string, auth = basic('careful', token), type: string = est.csrContentType) =>
      httpsRequest(`${s.httpsUrl}${est.simpleenroll}`, {
        method: 'POST',
        ca,
        headers: { 'Content-Type': type, Authorization: auth },
        body,
      });

    const badSig = Buffer.from(good.der);
    badSig[badSig.length - 5] = (badSig[badSig.length - 5] ?? 0) ^ 0xff; // flip a byte in the signature
    const weak = await opensslCsr(dir, 'weak', 'rsa-1024');
    const ed = await opensslCsr(dir, 'ed', 'ed25519');
    const cases: [string, Promise<Awaited<ReturnType<typeof enroll>>>, number, string][] = [
      ['bad signature', enroll(badSig.toString('base64')), 400, 'csr_signature_invalid'],
      ['RSA 1024', enroll(weak.base64), 400, 'key_unsupported'],
      ['ed25519', enroll(ed.base64), 400, 'key_unsupported'],
      ['garbage', enroll('this is not a certificate request!'), 400, 'csr_invalid'],
      ['base64 garbage', enroll(Buffer.from('garbage').toString('base64')), 400, 'csr_invalid'],
      ['empty', enroll(''), 400, 'csr_invalid'],
      [
        'wrong media type',
        enroll(good.base64, basic('careful', token), 'application/json'),
        415,
        'unsupported_media_type',
      ],
      ['no credentials', enroll(good.base64, ''), 401, 'unauthenticated'],
      ['wrong token', enroll(good.base64, basic('careful', 'bwk_nope')), 401, 'token_invalid'],
      ['token of another device id', enroll(good.base64, basic('sensor-1', token)), 401, 'token_invalid'],
      ['huge body', enroll('A'.repeat(100_000)), 413, 'payload_too_large'],
    ];
    for (const [name, pending, status, code] of cases) {
      const res = await pending;
      expect({ name, status: res.status }).toEqual({ name, status });
      expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
      const problem = JSON.parse(res.body) as { code: string; detail: string; status: number };
      expect({ name, code: problem.code }).toEqual({ name, code });
      expect(problem.detail.length).toBeGreaterThan(10);
    }
    // Nothing changed: still registered, and the same token still enrolls — once.
    const before = JSON.parse((await s.cli(['device', 'show', 'careful', '--json'])).stdout) as {
      status: string;
    };
    expect(before.status).toBe('registered');
    expect((await enroll(good.base64)).status).toBe(200);
    const replay = await enroll(good.base64);
    expect(replay.status).toBe(401);
    expect((JSON.parse(replay.body) as { code: string }).code).toBe('token_used');

    // Bearer form works too, and an expired token is refused.
    expect((await s.cli(['device', 'add', 'late'])).code).toBe(0);
    const late = JSON.parse((await s.cli(['device', 'token', 'late', '--ttl', '1s', '--json'])).stdout) as {
      token: string;
    };
    await new Promise((r) => setTimeout(r, 1100));
    const expired = await httpsRequest(`${s.httpsUrl}${est.simpleenroll}?id=late`, {
      method: 'POST',
      ca,
      headers: { 'Content-Type': est.csrContentType, Authorization: `Bearer ${late.token}` },
      body: good.base64,
    });
    expect(expired.status).toBe(401);
    expect((JSON.parse(expired.body) as { code: string }).code).toBe('token_expired');
    const lateDevice = JSON.parse((await s.cli(['device', 'show', 'late', '--json'])).stdout) as {
      status: string;
    };
    expect(lateDevice.status).toBe('registered');
  });

  it('re-enrolls with the current certificate (curl --cert, following the main URL to the mutual-TLS listener) and refuses without one', async () => {
    const dev = await enrollWithCurl('renew-me');
    const next = await opensslCsr(dir, 'renew-me-2');
    const csrFile = path.join(dir, 'renew.b64');
    writeFileSync(csrFile, next.base64);
    const { stdout } = await exec('curl', [
      '-sS',
      '--fail-with-body',
      '--cacert',
      s.caFile,
      '--cert',
      dev.certFile,
      '--key',
      dev.keyFile,
      '-H',
      'Content-Type: application/pkcs10',
      '--data-binary',
      `@${csrFile}`,
      '--location', // the main listener asks for no client certificate: 308 to the device listener
      `${s.httpsUrl}${est.simplereenroll}`,
    ]);
    const renewed = await pkcs7ToPem(dir, stdout);
    writeFileSync(path.join(dir, 'renewed.crt'), renewed);
    expect(
      (await exec('openssl', ['x509', '-in', path.join(dir, 'renewed.crt'), '-noout', '-subject'])).stdout,
    ).toMatch(/CN ?= ?renew-me/);
    const client = await connectMqtt(s.mqttUrl, ca, { id: 'renew-me', key: next.keyPem, cert: renewed });
    await client.endAsync();
    const anonymous = await httpsRequest(`${s.deviceUrl}${est.simplereenroll}`, {
      method: 'POST',
      ca,
      headers: { 'Content-Type': est.csrContentType },
      body: next.base64,
    });
    expect(anonymous.status).toBe(401);
  });

  it('verifies the real audit log, and names the entry after an edit, a delete or an insert with a database tool', async () => {
    const ok = await s.cli(['audit-log', 'verify']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/intact/);
    await s.platform.events.flush();
    const file = path.join(s.dataDir, 'bulwark.db');
    const db = new SQLite(file);
    const snapshot = db.prepare('SELECT * FROM audit_log WHERE seq = 5').get() as Record<string, unknown>;
    try {
      db.prepare(`UPDATE audit_log SET data = '{"group":"evil"}' WHERE seq = 5`).run();
      const edited = await s.cli(['audit-log', 'verify']);
      expect(edited.code).not.toBe(0);
      expect(edited.stderr).toMatch(/entry 5\b/);
      db.prepare('UPDATE audit_log SET data = ? WHERE seq = 5').run(snapshot.data);
      expect((await s.cli(['audit-log', 'verify'])).code).toBe(0);

      db.prepare('DELETE FROM audit_log WHERE seq = 7').run();
      const deleted = await s.cli(['audit-log', 'verify']);
      expect(deleted.code).not.toBe(0);
      expect(deleted.stderr).toMatch(/entry 7\b.*missing/);
      const row7 = db.prepare('SELECT * FROM audit_log WHERE seq = 6').get() as Record<string, unknown>;
      db.prepare(
        'INSERT INTO audit_log (seq, ts, type, actor, subject, data, prev_hash, hash, mac) VALUES (7, ?, ?, ?, ?, ?, ?, ?, ?)',
      ).run(row7.ts, row7.type, 'mallory', row7.subject, row7.data, row7.hash, row7.hash, row7.mac);
      const inserted = await s.cli(['audit-log', 'verify']);
      expect(inserted.code).not.toBe(0);
      expect(inserted.stderr).toMatch(/entry 7\b/);
    } finally {
      db.close();
    }
  });
});
