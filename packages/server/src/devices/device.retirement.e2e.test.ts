import { api, est } from '@bulwark/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectMqtt, httpsRequest } from '../test-support/clients.ts';
import { apiToken, enrollInProcess, startTestServer, type TestServer } from '../test-support/server.ts';
import { sleep, waitFor } from '../test-support/wait.ts';

/**
 * Issue 17: `bulwark device lost|found|decommission` against a running server, and a lost device's old
 * certificate presented again over MQTT (mqtt.js) and HTTPS (the device listener) becoming `device.lost_seen`.
 */
describe('lost, found and decommissioned devices', () => {
  let s: TestServer;
  let ca: string;

  const cliJson = async (args: string[]): Promise<unknown> => {
    const r = await s.cli([...args, '--json']);
    if (r.code !== 0) throw new Error(`bulwark ${args.join(' ')} failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as unknown;
  };
  const lostSeen = (id: string) =>
    s.platform.audit.query({ type: 'device.lost_seen', subject: `device:${id}`, limit: 10 });

  beforeAll(async () => {
    s = await startTestServer();
    ca = (await s.platform.pki()).chainPem();
  }, 60_000);

  afterAll(async () => {
    await s.stop();
  });

  it('lost: revoked and dropped; its old certificate over MQTT is refused and seen, once a minute', async () => {
    const creds = await enrollInProcess(s, 'pump-lost', 'plant-a');
    const client = await connectMqtt(s.mqttUrl, ca, creds);
    client.on('error', () => undefined);
    const dropped = new Promise<void>((resolve) => client.once('close', () => resolve()));

    const lost = api.devices.markLost.response[200].parse(
      await cliJson(['device', 'lost', 'pump-lost', '--stolen', '--reason', 'taken from the van']),
    );
    expect(lost.revokedCertificates).toHaveLength(1);
    await dropped;
    const [entry] = await s.platform.audit.query({
      type: 'device.lost',
      subject: 'device:pump-lost',
      limit: 1,
    });
    expect(entry).toMatchObject({ actor: 'cli', data: { stolen: true, reason: 'taken from the van' } });
    const shown = api.devices.show.response[200].parse(await cliJson(['device', 'show', 'pump-lost']));
    expect(shown).toMatchObject({ status: 'lost', state: 'lost' });
    expect(shown.quarantinedAt).not.toBeNull();
    const table = (await s.cli(['device', 'list', '--status', 'lost'])).stdout;
    expect(table).toMatch(/pump-lost\s+plant-a\s+lost/);

    // The thief tries the old certificate: refused (CRL in the handshake, or the store's standing), and the
    // attempt names the device, the certificate and the address.
    await expect(connectMqtt(s.mqttUrl, ca, creds)).rejects.toThrow();
    const [seen] = await waitFor('device.lost_seen via mqtt', async () => {
      const found = await lostSeen('pump-lost');
      return found.length > 0 ? found : undefined;
    });
    expect(seen).toMatchObject({
      actor: 'anonymous@127.0.0.1',
      data: { via: 'mqtt', remoteAddress: '127.0.0.1', certSerial: lost.revokedCertificates[0] },
    });
    // Retrying does not flood the log: at most one a minute per device.
    await expect(connectMqtt(s.mqttUrl, ca, creds)).rejects.toThrow();
    await s.platform.events.flush();
    await sleep(300);
    expect(await lostSeen('pump-lost')).toHaveLength(1);

    // Found: registered again, still quarantined; a new token re-enrolls it.
    const found = api.devices.markFound.response[200].parse(
      await cliJson(['device', 'found', 'pump-lost', '--reason', 'back from the police']),
    );
    expect(found).toMatchObject({ status: 'registered', state: 'quarantined' });
    const again = await s.cli(['device', 'found', 'pump-lost']);
    expect(again.code).toBe(1);
    expect(again.stderr.trim()).toBe('bulwark: device pump-lost is registered: cannot markFound');
  }, 120_000);

  it('a lost device presenting its old certificate to the device listener (EST) is seen via https', async () => {
    const creds = await enrollInProcess(s, 'meter-lost');
    await s.platform.devices.markLost('meter-lost', { stolen: false }, 'test');
    const res = await httpsRequest(`${s.deviceUrl}${est.simplereenroll}`, {
      method: 'POST',
      ca,
      key: creds.key,
      cert: creds.cert,
      headers: { 'content-type': est.csrContentType },
      body: 'AAAA',
    });
    expect(res.status).toBe(403);
    const [seen] = await waitFor('device.lost_seen via https', async () => {
      const found = await lostSeen('meter-lost');
      return found.length > 0 ? found : undefined;
    });
    expect(seen?.data).toMatchObject({
      via: 'https',
      remoteAddress: expect.stringContaining('127.0.0.1') as string,
    });
  }, 60_000);

  it('the API: a security officer reports a device lost and found; a viewer may not', async () => {
    await enrollInProcess(s, 'cam-1');
    const tokens = {
      viewer: await apiToken(s, 'viewer-ret', 'viewer'),
      'security-officer': await apiToken(s, 'security-officer-ret', 'security-officer'),
    };
    const call = (role: keyof typeof tokens, action: 'lost' | 'found', body: object) => {
      const token = tokens[role];
      return httpsRequest(`${s.httpsUrl}/api/v1/devices/cam-1/${action}`, {
        method: 'POST',
        ca,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    };
    expect((await call('viewer', 'lost', {})).status).toBe(403);
    const lost = await call('security-officer', 'lost', { stolen: true });
    expect(lost.status).toBe(200);
    expect(api.devices.markLost.response[200].parse(JSON.parse(lost.body)).revokedCertificates).toHaveLength(
      1,
    );
    const found = await call('security-officer', 'found', { reason: 'on the shelf' });
    expect(api.devices.markFound.response[200].parse(JSON.parse(found.body))).toMatchObject({
      status: 'registered',
      state: 'quarantined',
    });
    const [entry] = await s.platform.audit.query({ type: 'device.found', subject: 'device:cam-1', limit: 1 });
    expect(entry?.actor).toMatch(/^user:security-officer-ret\//);
    expect(entry?.data).toEqual({ reason: 'on the shelf' });
  }, 60_000);
});
