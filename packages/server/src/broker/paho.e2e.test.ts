import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entriesOf } from '../events/index.ts';
import { exec, workDir } from '../test-support/clients.ts';
import { enrollInProcess, startTestServer, type TestServer } from '../test-support/server.ts';
import { waitFor } from '../test-support/wait.ts';

/**
 * Interoperability with paho-mqtt for Python (Debian's python3-paho-mqtt 1.6, issue 19): a device on the
 * real server over mutual TLS with its certificate, MQTT 3.1.1 and 5. Debian's interpreter is named on
 * purpose: a pyenv or virtualenv python on PATH may not see the Debian package.
 */

const PYTHON = '/usr/bin/python3';
const CLIENT = fileURLToPath(new URL('../test-support/paho-client.py', import.meta.url));

interface PahoResult {
  connack: number;
  granted?: number[];
  puback?: boolean;
  received?: { topic: string; payload: string; qos: number };
  error?: string;
}

describe('paho-mqtt (Python) against the broker over mutual TLS', () => {
  let s: TestServer;
  let dir: string;

  beforeAll(async () => {
    s = await startTestServer();
    dir = workDir();
  }, 60_000);

  afterAll(async () => {
    await s?.stop();
  });

  /** The device's key and certificate as files (paho reads files). */
  async function device(id: string) {
    const creds = await enrollInProcess(s, id);
    const key = path.join(dir, `${id}.key`);
    const cert = path.join(dir, `${id}.crt`);
    writeFileSync(key, creds.key);
    writeFileSync(cert, creds.cert);
    return { id, key, cert };
  }

  async function paho(id: string, version: '311' | '5'): Promise<PahoResult> {
    const dev = await device(id);
    const { stdout } = await exec(
      PYTHON,
      [
        ...[CLIENT, 'localhost', String(s.server.mqttPort), s.caFile, dev.cert, dev.key, id, version],
        ...[`devices/${id}/paho/#`, 'devices/someone-else/#', `devices/${id}/paho/t`, `hello from ${id}`],
      ],
      { timeout: 30_000 },
    );
    return JSON.parse(stdout.trim()) as PahoResult;
  }

  const denials = async (subject: string) =>
    entriesOf(await s.platform.audit.readAfter(0, 5000), 'mqtt.subscribe_denied').filter(
      (e) => e.subject === subject,
    );

  it.each([
    ['311', 'paho-v311', 0x80],
    ['5', 'paho-v5', 0x87],
  ] as const)(
    'MQTT %s: connects with its certificate, a refused filter gets its code, a QoS 1 message goes and comes back',
    async (version, id, refusedCode) => {
      const result = await paho(id, version);
      expect(result.error).toBeUndefined();
      expect(result.connack).toBe(0);
      // One code per filter, in order [MQTT-3.9.3-1]: QoS 1 granted, the other refused.
      expect(result.granted).toEqual([1, refusedCode]);
      expect(result.puback).toBe(true);
      expect(result.received).toEqual({ topic: `devices/${id}/paho/t`, payload: `hello from ${id}`, qos: 1 });
      const denied = await waitFor('the refusal', async () => {
        const e = await denials(`device:${id}`);
        return e.length > 0 ? e : undefined;
      });
      expect(denied[0]?.data).toMatchObject({ topic: 'devices/someone-else/#' });
    },
  );

  it('MQTT 5: a client id other than the certificate identity is refused with CONNACK 0x85', async () => {
    const dev = await device('paho-id');
    const { stdout } = await exec(
      PYTHON,
      [
        ...[CLIENT, 'localhost', String(s.server.mqttPort), s.caFile, dev.cert, dev.key, 'not-paho-id', '5'],
        ...['devices/paho-id/#', 'devices/x/#', 'devices/paho-id/t', 'x'],
      ],
      { timeout: 30_000 },
    );
    expect((JSON.parse(stdout.trim()) as PahoResult).connack).toBe(0x85);
  });
});
