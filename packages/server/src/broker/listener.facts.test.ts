import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testConfig } from '../config/index.ts';
import { serverTlsProfile } from '../pki/index.ts';
import { exec, workDir } from '../test-support/clients.ts';
import { listenerFacts } from './index.ts';

describe('listener facts', () => {
  it('states the TLS listeners, mutual TLS with app tokens by default', () => {
    const config = testConfig({ 'mqtt.port': 18883, 'https.port': 18443, 'https.devicePort': 18444 });
    expect(listenerFacts(config)).toEqual([
      {
        name: 'mqtt',
        port: 18883,
        transport: 'tls',
        authentication: 'mutual-tls-or-app-token',
        minTlsVersion: 'TLSv1.2',
      },
      {
        name: 'https',
        port: 18443,
        transport: 'tls',
        authentication: 'user-sign-in',
        minTlsVersion: 'TLSv1.2',
      },
      {
        name: 'https-device',
        port: 18444,
        transport: 'tls',
        authentication: 'mutual-tls',
        minTlsVersion: 'TLSv1.2',
      },
    ]);
  });

  it('states the plaintext development listener only when it is configured, and mutual TLS alone', () => {
    const config = testConfig({ 'mqtt.appPasswords': false, 'mqtt.devListener': { port: 1883 } });
    const facts = listenerFacts(config);
    expect(facts.map((l) => l.name)).toEqual(['mqtt', 'mqtt-dev', 'https', 'https-device']);
    expect(facts[0]?.authentication).toBe('mutual-tls');
    expect(facts[1]).toEqual({
      name: 'mqtt-dev',
      port: 1883,
      transport: 'tcp',
      authentication: 'none',
      minTlsVersion: null,
    });
  });
});

/** The profile the facts state is the one a listener enforces: a TLS 1.1 client is refused by the server. */
describe('the listeners’ TLS profile', () => {
  let server: tls.Server;
  let port = 0;
  beforeAll(async () => {
    const dir = workDir();
    const [key, cert] = [path.join(dir, 'key.pem'), path.join(dir, 'cert.pem')];
    await exec('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', key, '-subj', '/CN=localhost', '-days', '1', '-out', cert,
    ]); // prettier-ignore
    server = tls.createServer(
      { ...serverTlsProfile, key: readFileSync(key), cert: readFileSync(cert) },
      (socket) => socket.end(),
    );
    server.on('tlsClientError', () => undefined);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => server?.close());

  const handshake = (options: tls.ConnectionOptions) =>
    new Promise<string>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options });
      socket.once('secureConnect', () => {
        resolve(socket.getProtocol() ?? '');
        socket.destroy();
      });
      socket.once('error', reject);
    });

  it('refuses TLS 1.1 with a protocol-version alert and accepts TLS 1.2', async () => {
    // The client may offer TLS 1.0/1.1 (security level 0): the refusal is the server's.
    await expect(
      handshake({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' }),
    ).rejects.toMatchObject({ code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });
    await expect(handshake({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' })).resolves.toBe('TLSv1.2');
  });
});
