// The attestation service against a software TPM (swtpm driven by tpm2-tools), on each store dialect.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CompactSign } from 'jose';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BulwarkError, type PcrValues } from '@bulwark/protocol';
import { createAuditLog, createEventBus, type AuditEntry, type EventBus } from '../events/index.ts';
import { createSecretBox } from '../secrets/index.ts';
import { isBusy, isUniqueViolation } from '../store/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { startSwtpm, type Swtpm } from '../test-support/swtpm.ts';
import { createAttestationService, type AttestationService } from './attestation.service.ts';
import { deviceRows } from './attestation.store.ts';
import { credentialFile } from './tpm/index.ts';

const T0 = 1_800_000_000_000;
const reportKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const reportKeyPem = reportKey.publicKey.export({ type: 'spki', format: 'pem' }).toString();

/** The code and message a use case was refused with. */
async function refusal(work: Promise<unknown>): Promise<[string, string]> {
  try {
    await work;
  } catch (err) {
    if (err instanceof BulwarkError) return [err.code, err.message];
    throw err;
  }
  throw new Error('not refused');
}
const HOUR = 3_600_000;
const SELECTION = 'sha256:0,1,2,7';

let tpm: Swtpm;
const file = (name: string) => readFileSync(join(tpm.dir, name));
const b64 = (name: string) => file(name).toString('base64');

/** swtpm has no resource manager: flush transient objects and sessions after each tool. */
async function tool(name: string, args: string): Promise<Buffer> {
  try {
    return (await tpm.run(name, args.split(' '))).stdout;
  } finally {
    await tpm.run('tpm2_flushcontext', ['-t']);
    await tpm.run('tpm2_flushcontext', ['-s']);
  }
}

function parsePcrRead(text: string): PcrValues {
  const out: PcrValues = {};
  let bank: Record<string, string> | undefined;
  for (const line of text.split('\n')) {
    const head = /^\s*(sha1|sha256|sha384|sha512):\s*$/.exec(line);
    if (head?.[1] === 'sha256') out.sha256 = bank = {};
    const value = /^\s*(\d+)\s*:\s*0x([0-9A-Fa-f]+)\s*$/.exec(line);
    if (value?.[1] !== undefined && value[2] !== undefined && bank) bank[value[1]] = value[2].toLowerCase();
  }
  return out;
}

const readPcrs = async (sel = SELECTION) => parsePcrRead((await tool('tpm2_pcrread', sel)).toString('utf8'));

/** The device's side of credential activation (TPM2_ActivateCredential under the EK's PolicySecret). */
async function activate(akCtx: string, blobs: { credentialBlob: string; encryptedSecret: string }) {
  const cred = credentialFile({
    idObject: Buffer.from(blobs.credentialBlob, 'base64'),
    encryptedSecret: Buffer.from(blobs.encryptedSecret, 'base64'),
  });
  writeFileSync(join(tpm.dir, 'cred'), cred);
  try {
    await tpm.run('tpm2_startauthsession', '--policy-session -S s.ctx'.split(' '));
    await tpm.run('tpm2_policysecret', '-S s.ctx -c e'.split(' '));
    await tpm.run(
      'tpm2_activatecredential',
      `-c ${akCtx} -C ek.ctx -i cred -o out -P session:s.ctx`.split(' '),
    );
    return b64('out');
  } finally {
    await tpm.run('tpm2_flushcontext', ['-t']);
    await tpm.run('tpm2_flushcontext', ['-s']);
  }
}

async function quote(akCtx: string, nonce: string, sel = SELECTION) {
  await tool('tpm2_quote', `-c ${akCtx} -l ${sel} -q ${nonce} -m m -s s -o pcrs -g sha256`);
  return { nonce, quote: b64('m'), signature: b64('s'), pcrs: await readPcrs(sel) };
}

beforeAll(async () => {
  tpm = await startSwtpm();
  await tool('tpm2_createek', '-c ek.ctx -G rsa -u ek.pub');
  await tool('tpm2_createak', '-C ek.ctx -c ak.ctx -G ecc -g sha256 -s ecdsa -u ak.pub -n ak.name');
  await tool('tpm2_createak', '-C ek.ctx -c ak2.ctx -G rsa -g sha256 -s rsassa -u ak2.pub -n ak2.name');
}, 120_000);

afterAll(async () => {
  await tpm?.stop();
});

describe.each(testDialects)('attestation service with swtpm (%s)', { timeout: 120_000 }, (dialect) => {
  let t: TestStore;
  let bus: EventBus;
  let entries: AuditEntry[];
  let clock: number;
  let reference: { release: string; values: PcrValues | null } | undefined;
  const statuses = new Map<string, string>();
  let service: AttestationService;

  const make = () =>
    createAttestationService({
      db: t.store.db,
      events: bus,
      now: () => clock,
      logger: { warn: () => undefined, error: () => undefined },
      settings: {
        pcrs: SELECTION,
        maxAgeMs: 24 * HOUR,
        nonceTtlMs: 300_000,
        checkIntervalMs: 60_000,
        maxSpeedKmh: 900,
      },
      referenceValuesFor: () => Promise.resolve(reference),
      certificateForReport: (deviceId, serial) =>
        Promise.resolve(
          serial === '01AA' ? { publicKeyPem: reportKeyPem, revoked: false, deviceId: 'pump-1' } : undefined,
        ),
      deviceStatus: (id) => Promise.resolve(statuses.get(id)),
    });

  const types = () => entries.map((e) => `${e.type} ${e.subject ?? ''}`);
  const keys = { ekPublic: '', akPublic: '', ak2Public: '' };

  /** Registers `ak` for the device and activates it with the TPM. */
  async function bind(deviceId: string, akCtx = 'ak.ctx', akPublic = keys.akPublic) {
    const answer = await service.registerKey(deviceId, { ekPublic: keys.ekPublic, akPublic });
    return service.activateKey(deviceId, {
      challengeId: answer.challengeId,
      secret: await activate(akCtx, answer),
    });
  }

  async function attest(deviceId: string, akCtx = 'ak.ctx') {
    const c = await service.challenge(deviceId);
    return service.submitQuote(deviceId, await quote(akCtx, c.nonce));
  }

  beforeEach(async () => {
    t = await createTestStore(dialect);
    clock = T0;
    const log = createAuditLog({
      db: t.store.db,
      mac: createSecretBox(randomBytes(32)),
      now: () => clock,
      isRetryable: (e) => isUniqueViolation(e) || isBusy(e),
    });
    await log.ensureAnchor();
    bus = createEventBus({ log, db: t.store.db });
    entries = [];
    bus.subscribe((e) => entries.push(e));
    keys.ekPublic = b64('ek.pub');
    keys.akPublic = b64('ak.pub');
    keys.ak2Public = b64('ak2.pub');
    reference = { release: 'fw@1.0.0', values: await readPcrs() };
    statuses.clear();
    service = make();
    await service.start();
  });
  afterEach(async () => {
    await service.stop();
    await bus.close();
    await t.cleanup();
  });

  it('binds a key with the right activated credential, and refuses a wrong one', async () => {
    const answer = await service.registerKey('pump-1', { ekPublic: keys.ekPublic, akPublic: keys.akPublic });
    expect(answer.akName).toBe(file('ak.name').toString('hex'));
    expect(answer.expiresAt).toBe(T0 + 300_000);
    expect(
      await refusal(
        service.activateKey('pump-1', {
          challengeId: answer.challengeId,
          secret: randomBytes(32).toString('base64'),
        }),
      ),
    ).toEqual(['forbidden', expect.stringMatching(/does not match/) as unknown]);
    expect(
      await refusal(
        service.activateKey('pump-1', { challengeId: 'other', secret: randomBytes(32).toString('base64') }),
      ),
    ).toEqual(['forbidden', 'unknown challenge']);
    expect(
      await service.activateKey('pump-1', {
        challengeId: answer.challengeId,
        secret: await activate('ak.ctx', answer),
      }),
    ).toEqual({
      status: 'bound',
      akName: answer.akName,
    });
    await bus.flush();
    expect(types()).toEqual([
      'attestation.key_registered device:pump-1',
      'attestation.key_refused device:pump-1',
      'attestation.key_refused device:pump-1',
      'attestation.key_bound device:pump-1',
    ]);
    const shown = await service.showDevice('pump-1');
    expect(shown).toMatchObject({
      standing: 'none',
      key: { status: 'bound', boundAt: T0 },
      last: null,
      dueAt: T0 + 24 * HOUR,
    });
    // A bound key is replaced only after its removal.
    expect(
      (await refusal(service.registerKey('pump-1', { ekPublic: keys.ekPublic, akPublic: keys.akPublic })))[0],
    ).toBe('conflict');
  });

  it('refuses an expired challenge, an unfit key, and a key of a lost device’s TPM', async () => {
    const answer = await service.registerKey('pump-1', { ekPublic: keys.ekPublic, akPublic: keys.akPublic });
    clock += 300_001;
    expect(
      await refusal(
        service.activateKey('pump-1', {
          challengeId: answer.challengeId,
          secret: await activate('ak.ctx', answer),
        }),
      ),
    ).toEqual(['forbidden', expect.stringMatching(/expired/) as unknown]);
    // The EK is a restricted decryption key: not an attestation key.
    expect(
      await refusal(service.registerKey('pump-2', { ekPublic: keys.ekPublic, akPublic: keys.ekPublic })),
    ).toEqual(['validation_failed', expect.stringMatching(/^akPublic: /) as unknown]);
    expect(
      await refusal(service.registerKey('pump-2', { ekPublic: 'AAAA', akPublic: keys.akPublic })),
    ).toEqual(['validation_failed', expect.stringMatching(/^ekPublic: /) as unknown]);
    statuses.set('pump-1', 'lost');
    expect(
      await refusal(service.registerKey('thief-1', { ekPublic: keys.ekPublic, akPublic: keys.akPublic })),
    ).toEqual(['forbidden', expect.stringMatching(/pump-1, which is reported lost/) as unknown]);
    await bus.flush();
    const seen = entries.find((e) => e.type === 'device.lost_seen');
    expect(seen).toMatchObject({
      subject: 'device:pump-1',
      actor: 'device:thief-1',
      data: { via: 'tpm', remoteAddress: null },
    });
    expect(types().filter((x) => x.startsWith('attestation.key_refused'))).toHaveLength(3);
  });

  it('answers each refusal reason of a quote, first failing check first', async () => {
    const none = await service.submitQuote('ghost-1', await quote('ak.ctx', randomBytes(32).toString('hex')));
    expect(none).toMatchObject({ tier: 'contraindicated', reason: 'key_not_registered' });
    // Pending (never activated) key.
    await service.registerKey('pump-2', { ekPublic: keys.ekPublic, akPublic: keys.akPublic });
    const pending = await service.submitQuote(
      'pump-2',
      await quote('ak.ctx', randomBytes(32).toString('hex')),
    );
    expect(pending).toMatchObject({ tier: 'contraindicated', reason: 'key_not_bound' });
    expect(service.standingOf('pump-2')).toBe('none');

    await bind('pump-1');
    const good = await attest('pump-1');
    expect(good).toMatchObject({
      tier: 'affirming',
      reason: 'ok',
      release: 'fw@1.0.0',
      pcrSelection: SELECTION,
      mismatchedPcrs: [],
    });
    expect(service.standingOf('pump-1')).toBe('affirming');

    // Replayed: the same quote again (its nonce was used).
    const c1 = await service.challenge('pump-1');
    const q1 = await quote('ak.ctx', c1.nonce);
    expect(await service.submitQuote('pump-1', q1)).toMatchObject({ tier: 'affirming' });
    expect(await service.submitQuote('pump-1', q1)).toMatchObject({
      tier: 'contraindicated',
      reason: 'nonce_mismatch',
    });
    expect(service.standingOf('pump-1')).toBe('contraindicated');
    // A nonce never issued, and a quote for another nonce than the one named.
    expect(
      await service.submitQuote('pump-1', await quote('ak.ctx', randomBytes(32).toString('hex'))),
    ).toMatchObject({
      reason: 'nonce_mismatch',
    });
    const c2 = await service.challenge('pump-1');
    expect(
      await service.submitQuote('pump-1', {
        ...(await quote('ak.ctx', randomBytes(32).toString('hex'))),
        nonce: c2.nonce,
      }),
    ).toMatchObject({ reason: 'nonce_mismatch' });

    // A foreign attestation key (not the registered one) signed it.
    const c3 = await service.challenge('pump-1');
    expect(await service.submitQuote('pump-1', await quote('ak2.ctx', c3.nonce))).toMatchObject({
      tier: 'contraindicated',
      reason: 'signature_invalid',
    });
    // Garbage.
    const c4 = await service.challenge('pump-1');
    expect(
      await service.submitQuote('pump-1', {
        nonce: c4.nonce,
        quote: 'AAAAAAAA',
        signature: 'AAAAAAAA',
        pcrs: {},
      }),
    ).toMatchObject({ reason: 'malformed_quote' });
    // Other PCRs than asked.
    const c5 = await service.challenge('pump-1');
    expect(await service.submitQuote('pump-1', await quote('ak.ctx', c5.nonce, 'sha256:0,1'))).toMatchObject({
      reason: 'selection_mismatch',
    });
    // Values that do not hash to the signed digest.
    const c6 = await service.challenge('pump-1');
    const q6 = await quote('ak.ctx', c6.nonce);
    const forged = { sha256: { ...q6.pcrs.sha256, 7: 'ab'.repeat(32) } };
    expect(await service.submitQuote('pump-1', { ...q6, pcrs: forged })).toMatchObject({
      reason: 'pcr_digest_mismatch',
    });

    // No reference values: genuine but unverified (warning).
    reference = { release: 'fw@2.0.0', values: null };
    expect(await attest('pump-1')).toMatchObject({
      tier: 'warning',
      reason: 'no_reference_values',
      release: 'fw@2.0.0',
    });
    expect(service.standingOf('pump-1')).toBe('warning');
    reference = undefined;
    expect(await attest('pump-1')).toMatchObject({
      tier: 'warning',
      reason: 'no_reference_values',
      release: null,
    });

    // An extended PCR: pcr_mismatch naming it.
    reference = { release: 'fw@1.0.0', values: await readPcrs() };
    await tool('tpm2_pcrextend', `7:sha256=${randomBytes(32).toString('hex')}`);
    const bad = await attest('pump-1');
    expect(bad).toMatchObject({ tier: 'contraindicated', reason: 'pcr_mismatch', mismatchedPcrs: [7] });
    expect(bad.detail).toMatch(/PCR 7 differs from the reference values of fw@1\.0\.0/);
    expect(service.standingOf('pump-1')).toBe('contraindicated');
    reference = { release: 'fw@1.0.1', values: await readPcrs() };
    expect(await attest('pump-1')).toMatchObject({ tier: 'affirming' });
    expect(service.standingOf('pump-1')).toBe('affirming');

    await bus.flush();
    const failed = entries
      .filter((e) => e.type === 'attestation.failed')
      .map((e) => e.type === 'attestation.failed' && e.data.reason);
    expect(failed).toEqual([
      'key_not_registered',
      'key_not_bound',
      'nonce_mismatch',
      'nonce_mismatch',
      'nonce_mismatch',
      'signature_invalid',
      'malformed_quote',
      'selection_mismatch',
      'pcr_digest_mismatch',
      'pcr_mismatch',
    ]);
    const last = entries.findLast((e) => e.type === 'attestation.failed');
    if (last?.type !== 'attestation.failed') throw new Error('no failure');
    expect(last.data).toMatchObject({ mismatchedPcrs: [7], release: 'fw@1.0.0' });
    expect(await service.listResults({ device: 'pump-1', tier: 'warning', limit: 10 })).toHaveLength(2);
    expect(await service.listResults({ limit: 3 })).toHaveLength(3);
  });

  it('standing: none → affirming → overdue (once) → affirming; removal → none; loaded again at start', async () => {
    await expect(service.challenge('pump-1')).rejects.toMatchObject({ code: 'conflict' });
    await bind('pump-1');
    expect(service.standingOf('pump-1')).toBe('none');
    // A freshly bound key has maxAge to attest first.
    clock += 24 * HOUR;
    expect(service.standingOf('pump-1')).toBe('overdue');
    await service.sweep();
    await service.sweep();
    await attest('pump-1');
    expect(service.standingOf('pump-1')).toBe('affirming');
    expect((await service.showDevice('pump-1')).dueAt).toBe(clock + 24 * HOUR);
    clock += 24 * HOUR - 1;
    await service.sweep();
    expect(service.standingOf('pump-1')).toBe('affirming');
    clock += 1;
    await service.sweep();
    expect(service.standingOf('pump-1')).toBe('overdue');
    await bus.flush();
    const overdue = entries.filter((e) => e.type === 'attestation.overdue');
    expect(overdue.map((e) => e.type === 'attestation.overdue' && e.data)).toEqual([
      { lastAt: null, maxAgeMs: 24 * HOUR },
      { lastAt: T0 + 24 * HOUR, maxAgeMs: 24 * HOUR },
    ]);
    expect(await service.complianceFacts()).toMatchObject({
      keys: { bound: 1, pending: 0 },
      standings: { overdue: 1 },
      overdue: ['pump-1'],
      contraindicated: [],
    });

    await attest('pump-1');
    // Another instance (a restart) loads the same standings from the store.
    const again = make();
    await again.start();
    expect(again.standingOf('pump-1')).toBe('affirming');

    expect(await service.removeKey('pump-1', 'TPM replaced', 'user:alice')).toEqual({ removed: true });
    expect(await service.removeKey('pump-1', 'TPM replaced', 'user:alice')).toEqual({ removed: false });
    expect(service.standingOf('pump-1')).toBe('none');
    // The other instance follows from the events, by the time they are delivered.
    expect(again.standingOf('pump-1')).toBe('none');
    await bus.flush();
    expect(entries.findLast((e) => e.type === 'attestation.key_removed')).toMatchObject({
      actor: 'user:alice',
      data: { akName: file('ak.name').toString('hex'), reason: 'TPM replaced' },
    });
    await bind('pump-1', 'ak2.ctx', keys.ak2Public);
    expect((await service.showDevice('pump-1')).key).toMatchObject({
      status: 'bound',
      algorithm: 'rsa-2048',
    });
    await attest('pump-1', 'ak2.ctx');
    expect([service.standingOf('pump-1'), again.standingOf('pump-1')]).toEqual(['affirming', 'affirming']);
    await tool('tpm2_pcrextend', `7:sha256=${randomBytes(32).toString('hex')}`);
    expect(await attest('pump-1', 'ak2.ctx')).toMatchObject({ reason: 'pcr_mismatch' });
    expect([service.standingOf('pump-1'), again.standingOf('pump-1')]).toEqual([
      'contraindicated',
      'contraindicated',
    ]);
    await again.stop();
  });

  it('erasing the device removes every row of it, and nothing of another device', async () => {
    await bind('pump-1');
    await attest('pump-1');
    await service.challenge('pump-1');
    await bind('pump-2');
    // A signed health report through the service's ingress handler: a report row and the device's state row.
    const health = { kind: 'health', deviceId: 'pump-1', ts: clock, seq: 1, secureBoot: true };
    const jws = await new CompactSign(Buffer.from(JSON.stringify(health)))
      .setProtectedHeader({ alg: 'ES256', kid: '01AA' })
      .sign(reportKey.privateKey);
    await service.reports.health.accept('pump-1', { jws }, undefined);
    expect(await service.listReports({ device: 'pump-1', limit: 10 })).toHaveLength(1);
    expect(
      (await service.subjectData.exportSubject({ kind: 'device', id: 'pump-1' })).map((r) => r.table),
    ).toEqual([
      'attestation_keys',
      'attestation_nonces',
      'attestation_results',
      'security_reports',
      'security_report_state',
    ]);
    expect(await service.subjectData.eraseSubject({ kind: 'device', id: 'pump-1' }, 'system')).toEqual({
      erased: 5,
    });
    expect(await deviceRows(t.store.db, 'pump-1')).toEqual([]);
    expect(service.standingOf('pump-1')).toBe('none');
    expect(await deviceRows(t.store.db, 'pump-2')).toHaveLength(1);
    expect(await service.subjectData.eraseSubject({ kind: 'user', id: 'pump-2' }, 'system')).toEqual({
      erased: 0,
    });
  });
});
