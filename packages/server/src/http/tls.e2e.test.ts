import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { est } from '@bulwark/protocol';
import { enrollInProcess, startTestServer, type TestServer } from '../test-support/server.ts';
import { exec, opensslCsr, pkcs7ToPem, workDir } from '../test-support/clients.ts';
import { entriesOf } from '../events/index.ts';

/**
 * Issue 11, finding 8 (HTTPS listener), checked with openssl s_client and curl: the Mozilla "intermediate"
 * suites only, no client-initiated renegotiation, no CertificateRequest on the main listener (mutual TLS only
 * on the EST device listener), a handshake deadline, HSTS and `Cache-Control: no-store`.
 */
describe('HTTPS listeners: TLS profile and HTTP posture', () => {
  let s: TestServer;
  let dir: string;

  /**
   * openssl s_client against a listener; `input` lines are written one per second (so `R` is read as the
   * renegotiation command) and stdin stays open until `holdMs` has passed.
   */
  function sClient(
    port: number,
    args: string[],
    input: string[] = [],
    holdMs = 1500,
  ): Promise<{ code: number | null; out: string }> {
    return new Promise((resolve) => {
      const child = spawn('openssl', [
        's_client',
        '-connect',
        `127.0.0.1:${port}`,
        '-servername',
        'localhost',
        '-CAfile',
        s.caFile,
        ...args,
      ]);
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => (out += c.toString()));
      input.forEach((line, i) => setTimeout(() => child.stdin.write(line), 500 + i * 1000));
      const hold = setTimeout(() => child.stdin.end(), holdMs + input.length * 1000);
      const kill = setTimeout(() => child.kill(), 30_000);
      child.on('close', (code) => {
        clearTimeout(hold);
        clearTimeout(kill);
        resolve({ code, out });
      });
    });
  }

  beforeAll(async () => {
    s = await startTestServer({ 'https.handshakeTimeout': '3s' });
    dir = workDir();
  });
  afterAll(async () => s?.stop());

  const listeners = () => [
    { name: 'main', port: s.server.httpsPort },
    { name: 're-enrollment', port: s.server.devicePort },
  ];

  it('closes a connection that does not finish its handshake in time, and records it (first: refusals below are rate-limited events)', async () => {
    for (const port of [s.server.httpsPort, s.server.devicePort]) {
      const closed = await new Promise<boolean>((resolve) => {
        const socket = net.connect(port, '127.0.0.1');
        const deadline = setTimeout(() => {
          socket.destroy();
          resolve(false);
        }, 60_000);
        socket.on('error', () => undefined);
        socket.on('close', () => {
          clearTimeout(deadline);
          resolve(true);
        });
      });
      expect(closed).toBe(true);
    }
    let reasons: unknown[] = [];
    for (let i = 0; i < 100 && reasons.length < 2; i++) {
      await s.platform.events.flush();
      reasons = entriesOf(await s.platform.audit.readAfter(0, 5000), 'tls.handshake_failed')
        .filter((e) => e.data.reason === 'ERR_TLS_HANDSHAKE_TIMEOUT')
        .map((e) => e.data.reason);
      if (reasons.length < 2) await new Promise((r) => setTimeout(r, 200));
    }
    expect(reasons.length).toBeGreaterThanOrEqual(2);
  });

  it('refuses CBC, ARIA and CCM_8 suites on TLS 1.2 and accepts ECDHE with AES-GCM or ChaCha20-Poly1305, and TLS 1.3', async () => {
    for (const { name, port } of listeners()) {
      for (const weak of [
        'ECDHE-ECDSA-AES128-SHA256', // CBC
        'ECDHE-ECDSA-AES256-SHA384', // CBC
        'ECDHE-ECDSA-AES128-SHA', // CBC, SHA-1
        'ECDHE-ECDSA-ARIA128-GCM-SHA256',
        'ECDHE-ECDSA-AES128-CCM8',
        'ECDHE-ECDSA-AES128-CCM',
      ]) {
        const r = await sClient(port, ['-tls1_2', '-cipher', weak]);
        // The client did offer the suite (no local "no cipher match"), and the server refused the handshake.
        expect({ name, weak, offered: !/no cipher match/.test(r.out) }).toEqual({
          name,
          weak,
          offered: true,
        });
        expect({ name, weak, refused: /alert handshake failure|Cipher is \(NONE\)/.test(r.out) }).toEqual({
          name,
          weak,
          refused: true,
        });
      }
      for (const strong of ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-CHACHA20-POLY1305']) {
        const r = await sClient(port, ['-tls1_2', '-cipher', strong]);
        expect(r.out).toContain(`New, TLSv1.2, Cipher is ${strong}`);
      }
      const tls13 = await sClient(port, ['-tls1_3']);
      expect(tls13.out).toMatch(/New, TLSv1\.3, Cipher is TLS_(AES_\d+_GCM|CHACHA20_POLY1305)_SHA\d+/);
      const tls11 = await sClient(port, ['-tls1_1', '-cipher', 'DEFAULT:@SECLEVEL=0']);
      expect(tls11.out).not.toMatch(/New, TLSv1\.1/);
    }
  });

  it('refuses client-initiated renegotiation (s_client R): the connection ends and the request after it gets no answer', async () => {
    const request = 'GET /api/v1/openapi.json HTTP/1.1\r\nHost: localhost\r\n\r\n';
    // Control: the same request on the same kind of connection, without renegotiating, is answered.
    const control = await sClient(s.server.httpsPort, ['-tls1_2'], [request]);
    expect(control.out).toMatch(/HTTP\/1\.1 200/);
    for (const extra of [[], ['-legacy_renegotiation']]) {
      const r = await sClient(s.server.httpsPort, ['-tls1_2', ...extra], ['R\n', request]);
      expect(r.out).toContain('RENEGOTIATING');
      expect(r.out).not.toMatch(/HTTP\/1\.1 200/);
      expect(r.out).toMatch(/error/i);
    }
  });

  it('sends no CertificateRequest on the main listener (browsers are not prompted); only the device listener asks', async () => {
    for (const version of ['-tls1_2', '-tls1_3']) {
      const main = await sClient(s.server.httpsPort, [version]);
      expect(main.out).toContain('No client certificate CA names sent');
      const device = await sClient(s.server.devicePort, [version]);
      expect(device.out).toContain('Acceptable client certificate CA names');
      expect(device.out).toMatch(/CN ?= ?Bulwark Issuing CA/);
    }
  });

  it('sends HSTS on every answer and Cache-Control: no-store on every API and EST answer (curl -i)', async () => {
    const curlHead = async (url: string, extra: string[] = []) => {
      const { stdout } = await exec('curl', ['-sS', '-i', '--cacert', s.caFile, ...extra, url]);
      const head = stdout.split('\r\n\r\n')[0] ?? '';
      const [status = '', ...lines] = head.split('\r\n');
      const headers = Object.fromEntries(
        lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]),
      );
      return { status: Number(status.split(' ')[1]), headers };
    };
    const api = [
      ['/api/v1/openapi.json', 200],
      ['/api/v1/devices', 401],
      ['/api/v1/no-such-thing', 404],
      [est.cacerts, 200],
    ] as const;
    for (const [url, status] of api) {
      const r = await curlHead(`${s.httpsUrl}${url}`);
      expect({ url, status: r.status, hsts: r.headers['strict-transport-security'] }).toEqual({
        url,
        status,
        hsts: 'max-age=31536000',
      });
      expect({ url, cache: r.headers['cache-control'] }).toEqual({ url, cache: 'no-store' });
    }
    const signIn = await curlHead(`${s.httpsUrl}/api/v1/auth/sign-in`, [
      '-H',
      'Content-Type: application/json',
      '--data',
      '{"username":"nobody","password":"not the password"}',
    ]);
    expect(signIn.status).toBe(401);
    expect(signIn.headers['cache-control']).toBe('no-store');
    const unknown = await curlHead(`${s.httpsUrl}/api/v1/nope`);
    expect(unknown.status).toBe(404);
    expect(unknown.headers['strict-transport-security']).toBe('max-age=31536000');
    // The console's page has them too, with its own strict policy.
    const page = await curlHead(`${s.httpsUrl}/`);
    expect(page.status).toBe(200);
    expect(page.headers['strict-transport-security']).toBe('max-age=31536000');
    expect(page.headers['content-security-policy']).toMatch(/^default-src 'none'; script-src 'self';/);
    const device = await curlHead(`${s.deviceUrl}${est.simplereenroll}`, [
      '-H',
      `Content-Type: ${est.csrContentType}`,
      '--data',
      'AAAA',
    ]);
    expect(device.status).toBe(401);
    expect(device.headers['cache-control']).toBe('no-store');
    expect(device.headers['strict-transport-security']).toBe('max-age=31536000');
  });

  it('re-enrolls through the main URL: 308 to the mutual-TLS listener, which curl --location follows with the certificate', async () => {
    const device = await enrollInProcess(s, 'tls-renew-1');
    const keyFile = path.join(dir, 'dev.key');
    const certFile = path.join(dir, 'dev.crt');
    writeFileSync(keyFile, device.key);
    writeFileSync(certFile, device.cert);
    const next = await opensslCsr(dir, 'tls-renew-1-next');
    const csrFile = path.join(dir, 'next.b64');
    writeFileSync(csrFile, next.base64);
    const common = ['-sS', '--cacert', s.caFile, '--cert', certFile, '--key', keyFile];
    const body = ['-H', `Content-Type: ${est.csrContentType}`, '--data-binary', `@${csrFile}`];
    const redirect = await exec('curl', [...common, '-i', ...body, `${s.httpsUrl}${est.simplereenroll}`]);
    expect(redirect.stdout).toMatch(/^HTTP\/1\.1 308/);
    expect(redirect.stdout).toMatch(
      new RegExp(`location: https://localhost:${s.server.devicePort}${est.simplereenroll}`, 'i'),
    );
    const renewed = await exec('curl', [
      ...common,
      '--fail-with-body',
      '--location',
      ...body,
      `${s.httpsUrl}${est.simplereenroll}`,
    ]);
    const pem = await pkcs7ToPem(dir, renewed.stdout);
    writeFileSync(path.join(dir, 'renewed.crt'), pem);
    const subject = await exec('openssl', [
      'x509',
      '-in',
      path.join(dir, 'renewed.crt'),
      '-noout',
      '-subject',
    ]);
    expect(subject.stdout).toMatch(/CN ?= ?tls-renew-1/);
  });
});
