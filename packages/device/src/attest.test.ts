import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { api, BulwarkError, type PcrValues } from '@bulwark/protocol';
import { startAgent } from './agent.ts';
import { ATTESTATION_STATE_FILE, attest, scheduleAttestation, type AttestOutcome } from './attest.ts';
import { main as agentCli } from './cli.ts';
import { openIdentityStore, type DeviceIdentity } from './identity-store.ts';
import {
  createTestCa,
  issueLocalhostCert,
  sendProblem,
  startHttpsServer,
  type HttpsTestServer,
  type RecordedRequest,
} from './test-support/index.ts';
import { startSwtpm, type Swtpm } from './test-support/swtpm.ts';
import { createTpm, type Tpm } from './tpm.ts';

const SELECTION = 'sha256:0,1,7';

/** The PCR digest field of a TPMS_ATTEST quote (TPM 2.0 Part 2 §10.12.12). */
function pcrDigestOf(attest: Buffer): Buffer {
  let at = 6;
  const skip = () => (at += 2 + attest.readUInt16BE(at));
  skip(); // qualifiedSigner
  skip(); // extraData
  at += 17 + 8;
  const count = attest.readUInt32BE(at);
  at += 4;
  for (let i = 0; i < count; i++) at += 3 + (attest[at + 2] ?? 0);
  const size = attest.readUInt16BE(at);
  return attest.subarray(at + 2, at + 2 + size);
}

/** A small verifier playing the server's device contracts, with tpm2-tools as its TPM crypto. */
function fakeVerifier(swtpm: Swtpm, work: string) {
  const state = {
    akPublic: undefined as Buffer | undefined,
    bound: false,
    secret: undefined as Buffer | undefined,
    challengeId: '',
    nonces: new Set<string>(),
    registrations: 0,
    /** A verdict to give instead of checking (a verifier with other reference values). */
    verdict: undefined as 'pcr_mismatch' | undefined,
  };
  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const akName = (akPublic: Buffer) =>
    `000b${createHash('sha256').update(akPublic.subarray(2)).digest('hex')}`;

  async function register(body: { ekPublic: string; akPublic: string }, res: ServerResponse) {
    if (state.bound) return sendProblem(res, 409, 'conflict', 'remove the key first');
    state.registrations++;
    state.akPublic = Buffer.from(body.akPublic, 'base64');
    state.secret = randomBytes(32);
    state.challengeId = randomUUID();
    await writeFile(join(work, 'ek.pub'), Buffer.from(body.ekPublic, 'base64'));
    await writeFile(join(work, 'secret'), state.secret);
    await swtpm.run('tpm2_makecredential', [
      ...['-T', 'none', '-e', join(work, 'ek.pub'), '-s', join(work, 'secret')],
      ...['-n', akName(state.akPublic), '-o', join(work, 'cred')],
    ]);
    const cred = await readFile(join(work, 'cred'));
    const idSize = cred.readUInt16BE(8);
    json(res, 201, {
      challengeId: state.challengeId,
      credentialBlob: cred.subarray(8, 10 + idSize).toString('base64'),
      encryptedSecret: cred.subarray(10 + idSize).toString('base64'),
      akName: akName(state.akPublic),
      expiresAt: Date.now() + 300_000,
    });
  }

  async function verify(body: { nonce: string; quote: string; signature: string; pcrs: PcrValues }) {
    if (!state.nonces.delete(body.nonce) || state.akPublic === undefined) return 'nonce_mismatch';
    await writeFile(join(work, 'ak.pub'), state.akPublic);
    await writeFile(join(work, 'q.msg'), Buffer.from(body.quote, 'base64'));
    await writeFile(join(work, 'q.sig'), Buffer.from(body.signature, 'base64'));
    try {
      await swtpm.run('tpm2_checkquote', [
        ...['-u', join(work, 'ak.pub'), '-m', join(work, 'q.msg'), '-s', join(work, 'q.sig')],
        ...['-q', body.nonce, '-g', 'sha256'],
      ]);
    } catch {
      return 'signature_invalid';
    }
    const values = ['0', '1', '7'].map((pcr) => Buffer.from(body.pcrs.sha256?.[pcr] ?? '', 'hex'));
    const digest = createHash('sha256').update(Buffer.concat(values)).digest();
    return digest.equals(pcrDigestOf(Buffer.from(body.quote, 'base64'))) ? 'ok' : 'pcr_digest_mismatch';
  }

  async function handle(request: RecordedRequest, res: ServerResponse) {
    if (request.clientCertSerial === undefined)
      return sendProblem(res, 401, 'unauthenticated', 'no certificate');
    const body: unknown = request.body === '' ? {} : JSON.parse(request.body);
    const { attestation } = api;
    switch (request.path) {
      case '/attestation/keys':
        return register(attestation.registerKey.body.parse(body), res);
      case '/attestation/keys/activate': {
        const activation = attestation.activateKey.body.parse(body);
        if (
          activation.challengeId !== state.challengeId ||
          !state.secret?.equals(Buffer.from(activation.secret, 'base64'))
        )
          return sendProblem(res, 403, 'forbidden', 'the credential does not match');
        state.bound = true;
        return json(res, 200, { status: 'bound', akName: akName(state.akPublic ?? Buffer.alloc(2)) });
      }
      case '/attestation/challenge': {
        if (!state.bound) return sendProblem(res, 409, 'conflict', 'register the TPM first');
        const nonce = randomBytes(32).toString('hex');
        state.nonces.add(nonce);
        return json(res, 200, { nonce, pcrSelection: SELECTION, expiresAt: Date.now() + 300_000 });
      }
      case '/attestation/quote': {
        const reason = state.verdict ?? (await verify(attestation.submitQuote.body.parse(body)));
        return json(res, 200, {
          id: randomUUID(),
          deviceId: 'pump-17',
          at: Date.now(),
          tier: reason === 'ok' ? 'affirming' : 'contraindicated',
          reason,
          detail: reason,
          release: null,
          pcrSelection: SELECTION,
          mismatchedPcrs: [],
        });
      }
      default:
        return sendProblem(res, 404, 'not_found', request.path);
    }
  }
  return { state, handle };
}

describe('attest (swtpm and a verifier playing the device contracts)', () => {
  let swtpm: Swtpm;
  let tpm: Tpm;
  let work: string;
  let dir: string;
  let identity: DeviceIdentity;
  let verifier: ReturnType<typeof fakeVerifier>;
  let device: HttpsTestServer;
  let main: HttpsTestServer;
  let serverTls: { keyPem: string; certPem: string };
  let caPem: string;

  beforeAll(async () => {
    swtpm = await startSwtpm();
    tpm = createTpm({ tcti: swtpm.tcti });
    work = await mkdtemp(join(tmpdir(), 'bulwark-attest-work-'));
    const ca = await createTestCa();
    caPem = ca.certPem;
    serverTls = await issueLocalhostCert(ca);
    const deviceCert = await ca.issueKeyAndCert({ subject: 'CN=pump-17' });
    identity = { deviceId: 'pump-17', serverUrl: '', caPem, ...deviceCert };
  });
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bulwark-attest-'));
    verifier = fakeVerifier(swtpm, work);
    device = await startHttpsServer({ ...serverTls, clientCa: caPem, handler: verifier.handle });
    // The main URL sends device routes to the mutual-TLS device listener (308, same host and path).
    main = await startHttpsServer({
      ...serverTls,
      handler: (request, res) => {
        res.writeHead(308, { location: `${device.url}${request.path}` });
        res.end();
      },
    });
    identity = { ...identity, serverUrl: main.url };
  });
  afterEach(async () => {
    await Promise.all([device?.close(), main?.close(), rm(dir, { recursive: true, force: true })]);
  });
  afterAll(async () => {
    await swtpm?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('registers once (credential activation), then attests with a quote the verifier accepts', async () => {
    const first = await attest({ dir, tpm, identity });
    expect(first.registered).toBe(true);
    expect(first.result).toMatchObject({ tier: 'affirming', reason: 'ok' });
    expect(verifier.state.bound).toBe(true);
    const saved: unknown = JSON.parse(await readFile(join(dir, ATTESTATION_STATE_FILE), 'utf8'));
    expect(saved).toMatchObject({ serverUrl: main.url });
    expect(JSON.stringify(saved)).toMatch(/"akName":"000b[0-9a-f]{64}"/);
    // the redirect is followed once per run; every request carried the device certificate
    expect(main.requests.map((r) => r.path)).toEqual(['/attestation/keys']);
    expect(device.requests.map((r) => r.path)).toEqual([
      '/attestation/keys',
      '/attestation/keys/activate',
      '/attestation/challenge',
      '/attestation/quote',
    ]);
    expect(device.requests.every((r) => r.clientCertSerial !== undefined)).toBe(true);
    const challenge = device.requests.find((r) => r.path === '/attestation/challenge');
    expect(challenge?.headers).toMatchObject({ 'content-length': '0' });
    expect(challenge?.headers['content-type']).toBeUndefined();

    const second = await attest({ dir, tpm, identity });
    expect(second).toMatchObject({ registered: false, result: { tier: 'affirming' } });
    expect(verifier.state.registrations).toBe(1);
  });

  it('quotes the PCRs as they are now: an extended PCR is sent with its new value', async () => {
    await attest({ dir, tpm, identity });
    await swtpm.run('tpm2_pcrextend', [`7:sha256=${randomBytes(32).toString('hex')}`]);
    const { result } = await attest({ dir, tpm, identity });
    expect(result.reason).toBe('ok'); // digest and values agree
    const quoted = api.attestation.submitQuote.body.parse(JSON.parse(device.requests.at(-1)?.body ?? '{}'));
    expect(quoted.pcrs.sha256?.['7']).toBe((await tpm.readPcrs('sha256:7')).sha256?.['7']);
  });

  it('registers again when the server has forgotten the key (challenge answers conflict)', async () => {
    await attest({ dir, tpm, identity });
    verifier.state.bound = false; // an operator removed the key
    const again = await attest({ dir, tpm, identity });
    expect(again).toMatchObject({ registered: true, result: { tier: 'affirming' } });
    expect(verifier.state.registrations).toBe(2);
  });

  it('goes on to the quote when the server already has a bound key and the local state is gone', async () => {
    await attest({ dir, tpm, identity });
    await rm(join(dir, ATTESTATION_STATE_FILE));
    const outcome = await attest({ dir, tpm, identity });
    expect(outcome.result.tier).toBe('affirming');
    expect(verifier.state.registrations).toBe(1);
  });

  it('rejects with the server code and detail when the server refuses the device', async () => {
    const refusing = await startHttpsServer({
      ...serverTls,
      clientCa: caPem,
      handler: (_request, res) => sendProblem(res, 403, 'forbidden', 'device pump-17 is lost'),
    });
    try {
      const err = await attest({ dir, tpm, identity: { ...identity, serverUrl: refusing.url } }).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(BulwarkError);
      expect((err as BulwarkError).code).toBe('forbidden');
      expect((err as Error).message).toMatch(/HTTP 403 forbidden: device pump-17 is lost/);
    } finally {
      await refusing.close();
    }
  });

  it('`bulwark-agent attest` prints the verdict; exit 1 when contraindicated', async () => {
    await openIdentityStore(dir).save(identity);
    const io = () => {
      const out = { stdout: '', stderr: '' };
      return {
        out,
        io: { stdout: (t: string) => (out.stdout += t), stderr: (t: string) => (out.stderr += t) },
      };
    };
    const good = io();
    expect(await agentCli(['attest', '--dir', dir, '--tcti', swtpm.tcti], good.io)).toBe(0);
    expect(good.out.stdout).toBe('TPM registered; attestation affirming (ok): ok\n');
    verifier.state.verdict = 'pcr_mismatch';
    const bad = io();
    expect(await agentCli(['attest', '--dir', dir, '--tcti', swtpm.tcti, '--json'], bad.io)).toBe(1);
    expect(JSON.parse(bad.out.stdout)).toMatchObject({ tier: 'contraindicated', reason: 'pcr_mismatch' });
    expect(bad.out.stderr).toBe('error: attestation contraindicated: pcr_mismatch\n');
  });

  it('the agent attests at start when given a TPM, beside its MQTT session', async () => {
    await openIdentityStore(dir).save({ ...identity, mqttUrl: 'mqtts://127.0.0.1:1' });
    const agent = await startAgent({ dir, attestation: { tpm, everyMs: 3_600_000 } });
    try {
      const outcome = await agent.waitFor('attestation', { timeoutMs: 20_000 });
      expect(outcome).toMatchObject({ registered: true, result: { tier: 'affirming' } });
    } finally {
      await agent.stop();
    }
  });

  it('runs on a schedule until stopped', async () => {
    const outcomes: AttestOutcome[] = [];
    const errors: Error[] = [];
    const schedule = scheduleAttestation({
      dir,
      tpm,
      everyMs: 50,
      identity: () => identity,
      onResult: (outcome) => outcomes.push(outcome),
      onError: (err) => errors.push(err),
    });
    await expect.poll(() => outcomes.length, { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
    await schedule.stop();
    const count = outcomes.length;
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(outcomes.length).toBe(count);
    expect(errors).toEqual([]);
  });
});
