import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serverTlsProfile } from '../pki/index.ts';
import { exec, workDir } from '../test-support/clients.ts';
import { describePlainListener, describeTlsListener } from './index.ts';

describe('listener facts: described from the options handed to tls', () => {
  it('reads the minimum version as passed, or Node’s default when the options set none', () => {
    const options = { ...serverTlsProfile, requestCert: true, rejectUnauthorized: false };
    expect(describeTlsListener({ name: 'mqtt', port: 18883, options })).toEqual({
      name: 'mqtt',
      port: 18883,
      transport: 'tls',
      authentication: 'mutual-tls',
      minTlsVersion: 'TLSv1.2',
    });
    const old = describeTlsListener({ name: 'https', port: 1, options: { minVersion: 'TLSv1' } });
    expect(old.minTlsVersion).toBe('TLSv1');
    const unset = describeTlsListener({ name: 'https', port: 1, options: {} });
    expect(unset.minTlsVersion).toBe(tls.DEFAULT_MIN_VERSION);
  });

  it('states how clients authenticate from requestCert, rejectUnauthorized and what stands in for a certificate', () => {
    const auth = (options: tls.TlsOptions, withoutCertificate?: 'app-token' | 'user-sign-in') =>
      describeTlsListener({ name: 'mqtt', port: 1, options, withoutCertificate }).authentication;
    const asks = { requestCert: true, rejectUnauthorized: false };
    expect(auth(asks)).toBe('mutual-tls');
    expect(auth(asks, 'app-token')).toBe('mutual-tls-or-app-token');
    // The handshake refuses a client without a certificate: no token ever reaches CONNECT.
    expect(auth({ requestCert: true }, 'app-token')).toBe('mutual-tls');
    expect(auth({ requestCert: true, rejectUnauthorized: true }, 'app-token')).toBe('mutual-tls');
    // No certificate asked for: a device listener that took `requestCert: false` no longer authenticates by one.
    expect(auth({ requestCert: false }, 'app-token')).toBe('app-token');
    expect(auth({})).toBe('none');
    expect(auth({}, 'user-sign-in')).toBe('user-sign-in');
  });

  it('describes the plaintext development listener as tcp without authentication', () => {
    expect(describePlainListener({ name: 'mqtt-dev', port: 1883 })).toEqual({
      name: 'mqtt-dev',
      port: 1883,
      transport: 'tcp',
      authentication: 'none',
      minTlsVersion: null,
    });
  });
});

/** What a listener is described as is what it enforces: real servers, real handshakes. */
describe('the description of a real tls.Server', () => {
  const servers: tls.Server[] = [];
  let key: Buffer;
  let cert: Buffer;
  beforeAll(async () => {
    const dir = workDir();
    const [keyFile, certFile] = [path.join(dir, 'key.pem'), path.join(dir, 'cert.pem')];
    await exec('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', keyFile, '-subj', '/CN=localhost', '-days', '1', '-out', certFile,
    ]); // prettier-ignore
    [key, cert] = [readFileSync(keyFile), readFileSync(certFile)];
  });
  afterAll(() => servers.forEach((s) => s.close()));

  /** Starts a server with these options and describes it from the same object and the port it got. */
  async function start(options: tls.TlsOptions) {
    const server = tls.createServer({ ...options, key, cert }, (socket) => socket.end());
    servers.push(server);
    server.on('tlsClientError', () => undefined);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    return { port, facts: describeTlsListener({ name: 'https', port, options }) };
  }

  const handshake = (port: number, options: tls.ConnectionOptions) =>
    new Promise<string>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options });
      socket.once('secureConnect', () => {
        resolve(socket.getProtocol() ?? '');
        socket.destroy();
      });
      socket.once('error', reject);
    });
  // The client may offer TLS 1.0/1.1 (security level 0): acceptance or refusal is the server's.
  const tls11 = { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' } as const;

  it('the shared profile: described as TLSv1.2, refuses TLS 1.1 and accepts TLS 1.2', async () => {
    const { port, facts } = await start({ ...serverTlsProfile });
    expect(facts).toMatchObject({ port, transport: 'tls', minTlsVersion: 'TLSv1.2' });
    await expect(handshake(port, tls11)).rejects.toMatchObject({
      code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION',
    });
    await expect(handshake(port, { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' })).resolves.toBe('TLSv1.2');
  });

  it('a listener started with minVersion TLSv1 is described as TLSv1, and does accept TLS 1.1', async () => {
    const { port, facts } = await start({ minVersion: 'TLSv1', ciphers: 'DEFAULT:@SECLEVEL=0' });
    expect(facts).toMatchObject({ port, minTlsVersion: 'TLSv1', authentication: 'none' });
    await expect(handshake(port, tls11)).resolves.toBe('TLSv1.1');
  });
});
