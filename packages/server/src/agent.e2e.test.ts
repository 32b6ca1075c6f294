import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollDevice, startAgent } from '@bulwark/device';
import { startTestServer, type TestServer } from './test-support/server.ts';
import { entriesOf } from './events/index.ts';

/** The device SDK and agent against the real server: enroll, connect, heartbeat, renew, get revoked. */
describe('bulwark-agent against the real server', () => {
  let s: TestServer;
  let ca: string;
  beforeAll(async () => {
    s = await startTestServer();
    ca = readFileSync(s.caFile, 'utf8');
  });
  afterAll(async () => s?.stop());

  it('enrolls, sends heartbeats, renews over simplereenroll, and is cut off when revoked', async () => {
    await s.platform.devices.add({ id: 'agent-1', group: 'pumps' }, 'test');
    const { token } = await s.platform.devices.issueToken('agent-1', 'test');
    const dir = path.join(mkdtempSync(path.join(tmpdir(), 'bulwark-agent-')), 'agent-1');
    await enrollDevice({ serverUrl: s.httpsUrl, deviceId: 'agent-1', token, dir, ca });
    expect(statSync(path.join(dir, 'key.pem')).mode & 0o777).toBe(0o600);

    const agent = await startAgent({
      dir,
      mqttUrl: s.mqttUrl,
      heartbeatIntervalMs: 100,
      backoff: { initialMs: 50, maxMs: 200 },
    });
    try {
      const beat = await agent.waitFor('heartbeat', { timeoutMs: 5000 });
      expect(beat.seq).toBeGreaterThanOrEqual(0);
      const before = agent.certificate?.serialNumber;

      // Connected again with the new identity (a heartbeat could still be the old connection's: its PUBACK
      // may land after the renewal began, and revoking then would race the new connection's CONNECT).
      const reconnected = agent.waitFor('connected', {
        timeoutMs: 10_000,
        filter: (c) => c.certificate.serialNumber !== before,
      });
      const renewed = await agent.renewNow();
      expect(renewed.serialNumber).not.toBe(before);
      expect((await reconnected).certificate.serialNumber).toBe(renewed.serialNumber);
      await agent.waitFor('heartbeat', { timeoutMs: 5000 });
      const entries = await s.platform.audit.readAfter(0, 1000);
      expect(
        entriesOf(entries, 'certificate.issued')
          .filter((e) => e.subject === 'device:agent-1')
          .map((e) => e.data.operation),
      ).toEqual(['simpleenroll', 'simplereenroll']);

      const lost = agent.waitFor('disconnected', { timeoutMs: 15_000 });
      await (await s.platform.pki()).revokeDevice('agent-1', 'test');
      expect((await lost).reason).toBe('lost');
      // The revoked certificate no longer passes the broker's TLS listener (its CRL), so the agent's next
      // attempt is closed before any MQTT is read (docs/broker.md): it keeps backing off, never connected.
      await agent.waitFor('reconnecting', { timeoutMs: 5000 });
      await agent.waitFor('reconnecting', { timeoutMs: 10_000 });
      expect(agent.connected).toBe(false);
      const refusals = async () =>
        (await s.platform.audit.readAfter(0, 5000))
          .filter((e) => e.type === 'tls.handshake_failed')
          .map((e) => String(e.data.reason));
      await expect
        .poll(refusals, { timeout: 10_000 })
        .toEqual(expect.arrayContaining([expect.stringMatching(/revoked/i)]));
    } finally {
      await agent.stop();
    }
  });
});
