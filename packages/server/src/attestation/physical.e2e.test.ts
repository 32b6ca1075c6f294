import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CompactSign } from 'jose';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollDevice } from '@bulwark/device';
import { api, firmwareTopics, securityTopics, type PcrValues } from '@bulwark/protocol';
import { agentCli } from '../test-support/cli.ts';
import { connectMqtt, httpsRequest } from '../test-support/clients.ts';
import { makeImage } from '../test-support/firmware.ts';
import { startTestServer, type TestServer } from '../test-support/server.ts';
import { startSwtpm, type Swtpm } from '../test-support/swtpm.ts';
import { sleep, waitFor } from '../test-support/wait.ts';

const SELECTION = 'sha256:0,1,2,3,4,5,6,7';

interface Identity {
  id: string;
  dir: string;
  key: string;
  cert: string;
}

/**
 * Issue 17's acceptance, as a new user would try it: the real server, Debian's swtpm as the device's TPM with
 * tpm2-tools, the real `bulwark-agent` and `bulwark` CLIs, mqtt.js over mutual TLS. (1) Attestation decides
 * access: a good quote passes, an extended PCR makes the next one contraindicated and the device loses MQTT access
 * within 1 s of the result, a fresh good quote restores it; (2) a replayed quote, a foreign attestation key and
 * a key not bound to the endorsement key are refused with their reasons; (3) a signed tamper report raises an
 * alert and the profile's automatic response quarantines the device, unsigned or wrongly signed ones are refused
 * and counted; (4) a lost device seen again raises an alert naming it, and a decommissioned device leaves no
 * personal data and a proof in the audit log.
 */
describe('physical security (issue 17 acceptance)', { timeout: 120_000 }, () => {
  let s: TestServer;
  let tpm: Swtpm;
  let ca: string;
  const clients: MqttClient[] = [];

  const agent = agentCli;
  const cli = async (args: string[]) => {
    const r = await s.cli(args);
    if (r.code !== 0) throw new Error(`bulwark ${args.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  async function enroll(id: string, attributes?: Record<string, string>): Promise<Identity> {
    await s.platform.devices.add({ id, group: 'pumps', ...(attributes ? { attributes } : {}) }, 'test');
    const { token } = await s.platform.devices.issueToken(id, 'test');
    const dir = path.join(mkdtempSync(path.join(tmpdir(), 'bulwark-physical-')), id);
    await enrollDevice({ serverUrl: s.httpsUrl, mqttUrl: s.mqttUrl, deviceId: id, token, dir, ca });
    return {
      id,
      dir,
      key: readFileSync(path.join(dir, 'key.pem'), 'utf8'),
      cert: readFileSync(path.join(dir, 'cert.pem'), 'utf8'),
    };
  }
  async function connect(d: Identity): Promise<MqttClient> {
    const c = await connectMqtt(s.mqttUrl, ca, d);
    c.on('error', () => undefined);
    clients.push(c);
    return c;
  }
  /** The device listener, with the device's certificate (as the agent calls it). */
  const deviceCall = async (d: Identity, method: 'POST' | 'GET', url: string, body?: unknown) => {
    const r = await httpsRequest(`${s.deviceUrl}${url}`, {
      method,
      ca,
      key: d.key,
      cert: d.cert,
      ...(body === undefined
        ? {}
        : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    return { status: r.status, body: JSON.parse(r.body || 'null') as Record<string, unknown> };
  };
  const standing = async (id: string) =>
    api.attestation.showDevice.response[200].parse(await s.platform.attestation.showDevice(id)).standing;

  /** `tpm2_pcrread` of the selection, as PcrValues. */
  async function readPcrs(): Promise<PcrValues> {
    const { stdout } = await tpm.run('tpm2_pcrread', [SELECTION]);
    const values: Record<string, string> = {};
    for (const m of stdout.toString().matchAll(/^\s+(\d+)\s*:\s*0x([0-9A-Fa-f]+)/gm))
      values[String(m[1])] = String(m[2]).toLowerCase();
    return { sha256: values };
  }

  beforeAll(async () => {
    s = await startTestServer({ 'monitor.tickInterval': 100, 'attestation.pcrs': SELECTION });
    ca = (await s.platform.pki()).chainPem();
    tpm = await startSwtpm();
  }, 120_000);

  afterAll(async () => {
    for (const c of clients) c.end(true);
    await tpm?.stop();
    await s?.stop();
  });

  it('1: attestation decides MQTT access: good, extended PCR (access lost within 1 s), good again', async () => {
    const pump = await enroll('pump-1');
    // The release the device runs records the reference (golden) PCR values its measured boot yields.
    const golden = path.join(pump.dir, '..', 'golden.json');
    writeFileSync(golden, JSON.stringify(await readPcrs()));
    const image = makeImage(2048);
    await cli([
      'firmware',
      'upload',
      image.file,
      'pump-fw@1.0.0',
      '--hardware',
      'pump-v2',
      '--security-version',
      '1',
      '--end-of-support',
      '2031-12-31',
      '--reference-values',
      golden,
    ]);
    const release = await s.platform.firmware.releases.get('pump-fw@1.0.0');
    const mqtt = await connect(pump);
    await mqtt.publishAsync(
      firmwareTopics.state(pump.id),
      JSON.stringify({
        hardwareId: 'pump-v2',
        target: release.targetPath,
        version: '1.0.0',
        securityVersion: 1,
        ts: Date.now(),
      }),
      { qos: 1 },
    );
    await waitFor(
      'the running release',
      async () => (await s.platform.firmware.fleet.deviceState(pump.id))?.release_id,
    );

    const attest = () => agent(['attest', '--dir', pump.dir, '--tcti', tpm.tcti]);
    const first = await attest();
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/affirming/);
    expect(await standing(pump.id)).toBe('affirming');
    await mqtt.publishAsync(`devices/${pump.id}/telemetry`, '{"t":1}', { qos: 1 });

    // Something changes what the boot measures: PCR 7 is extended.
    await tpm.run('tpm2_pcrextend', [`7:sha256=${'ab'.repeat(32)}`]);
    const second = await attest();
    expect(second.code).toBe(1);
    expect(second.stdout).toMatch(/contraindicated/);
    expect(second.stdout).toMatch(/pcr_mismatch/);
    const [failed] = await s.platform.attestation.listResults({ device: pump.id, limit: 1 });
    expect(failed).toMatchObject({ tier: 'contraindicated', reason: 'pcr_mismatch', mismatchedPcrs: [7] });
    expect(await standing(pump.id)).toBe('contraindicated');

    // The live session lost its access: its next publish is denied, within 1 s of the verdict.
    const denied = await waitFor(
      'a denied publish',
      async () => {
        mqtt.publish(`devices/${pump.id}/telemetry`, '{"t":2}', { qos: 0 });
        const [entry] = await s.platform.audit.query({
          type: 'mqtt.publish_denied',
          subject: `device:${pump.id}`,
          from: failed?.at,
          limit: 1,
        });
        return entry;
      },
      { timeoutMs: 5000, intervalMs: 50 },
    );
    expect(denied.ts - (failed?.at ?? 0)).toBeLessThan(1000);

    // A reboot resets the PCRs to what the release measured: a fresh good quote restores access.
    await tpm.restart();
    const third = await attest();
    expect(third.code, third.stderr).toBe(0);
    expect(third.stdout).toMatch(/affirming/);
    expect(await standing(pump.id)).toBe('affirming');
    // A denial closed that session (MQTT 3.1.1 has no negative PUBACK); a new one publishes and is acknowledged.
    await waitFor('the denied session closed', () => !mqtt.connected);
    const since = Date.now();
    const again = await connect(pump);
    await again.publishAsync(`devices/${pump.id}/telemetry`, '{"t":3}', { qos: 1 });
    await sleep(300);
    expect(
      await s.platform.audit.query({
        type: 'mqtt.publish_denied',
        subject: `device:${pump.id}`,
        from: since,
        limit: 5,
      }),
    ).toEqual([]);
  });

  it('2: a replayed quote, a foreign AK and an unbound AK are refused with their reasons', async () => {
    const pump = await enroll('pump-2');
    const ok = await agent(['attest', '--dir', pump.dir, '--tcti', tpm.tcti]);
    // The release it runs is unknown here: a genuine quote without reference values is a warning.
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/warning/);

    // The agent persisted its AK; quote with it by hand and keep the body.
    const work = mkdtempSync(path.join(tmpdir(), 'bulwark-quote-'));
    const flush = async () => {
      await tpm.run('tpm2_flushcontext', ['-t']);
      await tpm.run('tpm2_flushcontext', ['-s']);
    };
    const quoteWith = async (d: Identity, ak: string) => {
      const c = await deviceCall(d, 'POST', '/attestation/challenge');
      expect(c.status).toBe(200);
      const nonce = String(c.body.nonce);
      const m = path.join(work, 'q.msg');
      const sig = path.join(work, 'q.sig');
      await tpm.run('tpm2_quote', [
        '-c',
        ak,
        '-l',
        SELECTION,
        '-q',
        nonce,
        '-m',
        m,
        '-s',
        sig,
        '-g',
        'sha256',
      ]);
      // swtpm has no resource manager: what a tool loaded stays loaded (three object slots).
      await flush();
      return {
        nonce,
        quote: readFileSync(m).toString('base64'),
        signature: readFileSync(sig).toString('base64'),
        pcrs: await readPcrs(),
      };
    };
    const AK = '0x81010002';
    const body = await quoteWith(pump, AK);
    expect((await deviceCall(pump, 'POST', '/attestation/quote', body)).body).toMatchObject({
      tier: 'warning',
    });
    // Replayed: the same quote again (its nonce was used).
    expect((await deviceCall(pump, 'POST', '/attestation/quote', body)).body).toMatchObject({
      tier: 'contraindicated',
      reason: 'nonce_mismatch',
    });
    expect(await standing(pump.id)).toBe('contraindicated');

    // A foreign AK: a second attestation key in the same TPM, never registered.
    await tpm.run('tpm2_createek', [
      '-c',
      path.join(work, 'ek.ctx'),
      '-G',
      'rsa',
      '-u',
      path.join(work, 'ek.pub'),
    ]);
    await tpm.run('tpm2_createak', [
      '-C',
      path.join(work, 'ek.ctx'),
      '-c',
      path.join(work, 'ak2.ctx'),
      '-G',
      'ecc',
      '-g',
      'sha256',
      '-s',
      'ecdsa',
      '-u',
      path.join(work, 'ak2.pub'),
    ]);
    await flush();
    const foreign = await quoteWith(pump, path.join(work, 'ak2.ctx'));
    expect((await deviceCall(pump, 'POST', '/attestation/quote', foreign)).body).toMatchObject({
      tier: 'contraindicated',
      reason: 'signature_invalid',
    });

    // An AK not bound to the endorsement key: pump-3 registers the second AK with an endorsement key of another
    // TPM; the challenge cannot be activated here, a guessed answer is refused, and its quotes are refused.
    const other = await startSwtpm();
    try {
      await other.run('tpm2_createek', [
        '-c',
        path.join(work, 'ek-b.ctx'),
        '-G',
        'rsa',
        '-u',
        path.join(work, 'ek-b.pub'),
      ]);
      const unbound = await enroll('pump-3');
      const reg = await deviceCall(unbound, 'POST', '/attestation/keys', {
        ekPublic: readFileSync(path.join(work, 'ek-b.pub')).toString('base64'),
        akPublic: readFileSync(path.join(work, 'ak2.pub')).toString('base64'),
      });
      expect(reg.status).toBe(201);
      const guess = await deviceCall(unbound, 'POST', '/attestation/keys/activate', {
        challengeId: reg.body.challengeId,
        secret: Buffer.alloc(32, 1).toString('base64'),
      });
      expect(guess.status).toBe(403);
      const q = await deviceCall(unbound, 'POST', '/attestation/quote', foreign);
      expect(q.body).toMatchObject({ tier: 'contraindicated', reason: 'key_not_bound' });
    } finally {
      await other.stop();
    }
  });

  it('3: a signed tamper report raises an alert and quarantines; unsigned or wrongly signed ones are refused and counted', async () => {
    writeFileSync(
      path.join(s.dataDir, 'tamper-profile.yaml'),
      'responses:\n  - { action: quarantine, detectors: [tamper_report], mode: automatic }\n',
    );
    await cli(['security-profile', 'put', 'tamper', '--file', path.join(s.dataDir, 'tamper-profile.yaml')]);
    await cli(['security-profile', 'attach', 'tamper', '--group', 'pumps']);
    const pump = await enroll('pump-4');

    const sent = await agent(['report', 'tamper', '--dir', pump.dir, '--reason', 'enclosure-opened']);
    expect(sent.code, sent.stderr).toBe(0);
    const alert = await waitFor('the tamper alert with its quarantine', async () => {
      const [a] = await s.platform.monitor.alerts.list({ detector: 'tamper_report', deviceId: pump.id });
      return a?.responsesRun.some((r) => r.action === 'quarantine' && r.ok) ? a : undefined;
    });
    expect(alert.title).toMatch(/pump-4/);
    expect(alert.title).toMatch(/enclosure-opened/);
    expect((await s.platform.devices.get(pump.id)).state).toBe('quarantined');
    // The agent's session is over; a client of the device's own (a quarantined device may still report).
    const mqtt = await connect(pump);

    // Unsigned (not a JWS over the report), and signed with a key that is not the device's.
    const rejectedBefore = (
      await s.platform.audit.query({
        type: 'device.security_report_rejected',
        subject: `device:${pump.id}`,
        limit: 100,
      })
    ).length;
    const report = { deviceId: pump.id, kind: 'tamper', reason: 'other', ts: Date.now(), seq: 1_000_000 };
    const unsigned = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify(report)).toString('base64url')}.AAAA`;
    await mqtt.publishAsync(securityTopics.tamper(pump.id), JSON.stringify({ jws: unsigned }), { qos: 1 });
    const stranger = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'sign',
      'verify',
    ]);
    const serial = new (await import('node:crypto')).X509Certificate(pump.cert).serialNumber;
    const wrong = await new CompactSign(
      new TextEncoder().encode(JSON.stringify({ ...report, seq: 1_000_001 })),
    )
      .setProtectedHeader({ alg: 'ES256', kid: serial })
      .sign(stranger.privateKey);
    await mqtt.publishAsync(securityTopics.tamper(pump.id), JSON.stringify({ jws: wrong }), { qos: 1 });
    const rejected = await waitFor('both refusals', async () => {
      const r = await s.platform.audit.query({
        type: 'device.security_report_rejected',
        subject: `device:${pump.id}`,
        limit: 100,
      });
      return r.length >= rejectedBefore + 2 ? r.slice(rejectedBefore) : undefined;
    });
    expect(rejected.map((e) => e.data.kind)).toEqual(['tamper', 'tamper']);
    expect(rejected[1]?.data.reason).toMatch(/signature/);
    // Counted: the compliance check that watches refused reports fails with the count.
    const run = await s.platform.compliance.run({ trigger: 'manual', actor: 'test' });
    const check = run.checks.find((c) => c.id === 'physical.reports-verified');
    expect(check?.status).toBe('fail');
    expect(check?.summary).toMatch(/[2-9]\d* /);
    // The CLI runs the checks in its own process and reads the same: refusals from the audit log, standings
    // from the store.
    const fromCli = JSON.parse(await cli(['compliance', 'run', '--json'])) as typeof run;
    for (const id of ['physical.reports-verified', 'attestation.no-contraindicated']) {
      const [server, local] = [run, fromCli].map((r) => r.checks.find((c) => c.id === id));
      expect({ status: local?.status, summary: local?.summary }).toEqual({
        status: server?.status,
        summary: server?.summary,
      });
    }
  });

  it('4: a lost device seen again alerts naming it; a decommissioned one leaves no personal data and a proof', async () => {
    const lost = await enroll('pump-5');
    const was = await connect(lost);
    const answer = api.devices.markLost.response[200].parse(
      JSON.parse(await cli(['device', 'lost', lost.id, '--stolen', '--reason', 'van broken into', '--json'])),
    );
    expect(answer.revokedCertificates.length).toBeGreaterThan(0);
    await waitFor('the session dropped', () => !was.connected);
    // The thief tries the old certificate.
    await expect(connectMqtt(s.mqttUrl, ca, lost)).rejects.toThrow();
    const seen = await waitFor('the lost-device alert', async () => {
      const [a] = await s.platform.monitor.alerts.list({ detector: 'lost_device_seen', deviceId: lost.id });
      return a;
    });
    expect(seen.title).toMatch(/pump-5/);
    expect(seen.severity).toBe('critical');

    const retired = await enroll('pump-6', { owner: 'Erika Mustermann', room: 'Flat 4b' });
    await connect(retired);
    const decommissioned = api.devices.decommission.response[200].parse(
      JSON.parse(await cli(['device', 'decommission', retired.id, '--yes', '--json'])),
    );
    expect(decommissioned.revokedCertificates.length).toBeGreaterThan(0);
    expect(decommissioned.proof).not.toBeNull();
    const device = await s.platform.devices.get(retired.id);
    expect(device).toMatchObject({ status: 'decommissioned', attributes: {} });
    // The proof is the audit entry, and the chain still verifies.
    const [proof] = await s.platform.audit.query({
      type: 'device.decommissioned',
      subject: `device:${retired.id}`,
      limit: 1,
    });
    expect(proof).toMatchObject({ seq: decommissioned.proof?.seq, hash: decommissioned.proof?.hash });
    expect(await cli(['audit-log', 'verify'])).toMatch(/intact/);
    // No personal data left: the owner's name is nowhere in the device's records or the readable audit log.
    const exported = JSON.stringify(
      await s.platform.devices.subjectData.exportSubject({ kind: 'device', id: retired.id }),
    );
    expect(exported).not.toContain('Erika');
    const log = JSON.stringify(
      await s.platform.audit.query({ subject: `device:${retired.id}`, limit: 1000 }),
    );
    expect(log).not.toContain('Erika');
    // Its id is never reused by accident.
    const again = await s.cli(['device', 'add', retired.id]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/decommissioned/);
  });
});
