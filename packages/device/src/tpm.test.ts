import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSwtpm, type Swtpm } from './test-support/swtpm.ts';
import {
  assertPcrSelection,
  createTpm,
  credentialFile,
  DEFAULT_TCTI,
  parseHandles,
  parsePcrRead,
  type Tpm,
} from './tpm.ts';

/** The TPMS_ATTEST fields a test needs (TPM 2.0 Part 2 §10.12.12): qualifying data and the PCR digest. */
function quoteFields(attest: Buffer): { extraData: Buffer; pcrDigest: Buffer } {
  let at = 6; // magic, type
  const tpm2b = () => {
    const size = attest.readUInt16BE(at);
    const value = attest.subarray(at + 2, at + 2 + size);
    at += 2 + size;
    return value;
  };
  tpm2b(); // qualifiedSigner
  const extraData = tpm2b();
  at += 17 + 8; // clockInfo, firmwareVersion
  const count = attest.readUInt32BE(at);
  at += 4;
  for (let i = 0; i < count; i++) at += 3 + (attest[at + 2] ?? 0);
  return { extraData, pcrDigest: tpm2b() };
}

describe('tpm (swtpm)', () => {
  let swtpm: Swtpm;
  let tpm: Tpm;
  let work: string;

  beforeAll(async () => {
    swtpm = await startSwtpm();
    tpm = createTpm({ tcti: swtpm.tcti });
    work = await mkdtemp(join(tmpdir(), 'bulwark-tpm-test-'));
  });
  afterAll(async () => {
    await swtpm?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('creates and persists the EK and AK once; a second call finds them', async () => {
    const first = await tpm.ensureKeys();
    expect(first.created).toBe(true);
    const second = await tpm.ensureKeys();
    expect(second.created).toBe(false);
    expect(second.ekPublic.equals(first.ekPublic)).toBe(true);
    expect(second.akPublic.equals(first.akPublic)).toBe(true);
    expect(second.akName.equals(first.akName)).toBe(true);
    // nameAlg sha256 (0x000b) || SHA-256 of the TPMT_PUBLIC inside the TPM2B_PUBLIC
    const publicArea = first.akPublic.subarray(2);
    expect(first.akName.toString('hex')).toBe(`000b${createHash('sha256').update(publicArea).digest('hex')}`);
    const handles = parseHandles((await swtpm.run('tpm2_getcap', ['handles-persistent'])).stdout.toString());
    expect(handles).toEqual(expect.arrayContaining([tpm.ekHandle, tpm.akHandle]));
    // nothing transient left behind on a TPM without a resource manager
    const transient = (await swtpm.run('tpm2_getcap', ['handles-transient'])).stdout.toString();
    expect(parseHandles(transient)).toEqual([]);
  });

  it('quotes the PCRs it reads: the digest covers the values and the nonce is the qualifying data', async () => {
    await tpm.ensureKeys();
    const measured = randomBytes(32);
    await swtpm.run('tpm2_pcrextend', [`7:sha256=${measured.toString('hex')}`]);
    const selection = 'sha256:0,1,7';
    const pcrs = await tpm.readPcrs(selection);
    const expected7 = createHash('sha256').update(Buffer.alloc(32)).update(measured).digest('hex');
    expect(pcrs).toEqual({ sha256: { '0': '00'.repeat(32), '1': '00'.repeat(32), '7': expected7 } });

    const nonce = randomBytes(32).toString('hex');
    const { quote, signature } = await tpm.quote(nonce, selection);
    const fields = quoteFields(quote);
    expect(fields.extraData.toString('hex')).toBe(nonce);
    const values = ['0', '1', '7'].map((pcr) => Buffer.from(pcrs.sha256?.[pcr] ?? '', 'hex'));
    expect(fields.pcrDigest.equals(createHash('sha256').update(Buffer.concat(values)).digest())).toBe(true);

    // tpm2_checkquote (no TPM needed) agrees the AK signed it over this nonce
    const keys = await tpm.ensureKeys();
    await writeFile(join(work, 'ak.pub'), keys.akPublic);
    await writeFile(join(work, 'quote.msg'), quote);
    await writeFile(join(work, 'quote.sig'), signature);
    await swtpm.run('tpm2_checkquote', [
      ...['-u', join(work, 'ak.pub'), '-m', join(work, 'quote.msg'), '-s', join(work, 'quote.sig')],
      ...['-q', nonce, '-g', 'sha256'],
    ]);
  });

  it('activates a credential made by tpm2_makecredential for its EK and AK name', async () => {
    const keys = await tpm.ensureKeys();
    const secret = randomBytes(32);
    await writeFile(join(work, 'ek.pub'), keys.ekPublic);
    await writeFile(join(work, 'secret'), secret);
    await swtpm.run('tpm2_makecredential', [
      ...['-T', 'none', '-e', join(work, 'ek.pub'), '-s', join(work, 'secret')],
      ...['-n', keys.akName.toString('hex'), '-o', join(work, 'cred')],
    ]);
    const cred = await readFile(join(work, 'cred'));
    const idSize = cred.readUInt16BE(8);
    const idObject = cred.subarray(8, 10 + idSize);
    const encryptedSecret = cred.subarray(10 + idSize);
    expect(credentialFile({ idObject, encryptedSecret }).equals(cred)).toBe(true);
    expect((await tpm.activateCredential({ idObject, encryptedSecret })).equals(secret)).toBe(true);
  });

  it('refuses a credential made for another AK name', async () => {
    const keys = await tpm.ensureKeys();
    await writeFile(join(work, 'ek.pub'), keys.ekPublic);
    await writeFile(join(work, 'secret'), randomBytes(32));
    const otherName = `000b${randomBytes(32).toString('hex')}`;
    await swtpm.run('tpm2_makecredential', [
      ...['-T', 'none', '-e', join(work, 'ek.pub'), '-s', join(work, 'secret')],
      ...['-n', otherName, '-o', join(work, 'cred-other')],
    ]);
    const cred = await readFile(join(work, 'cred-other'));
    const idSize = cred.readUInt16BE(8);
    await expect(
      tpm.activateCredential({
        idObject: cred.subarray(8, 10 + idSize),
        encryptedSecret: cred.subarray(10 + idSize),
      }),
    ).rejects.toThrow(/tpm2_activatecredential failed/);
  });
});

describe('tpm helpers', () => {
  it('parses tpm2_pcrread output across banks, in lower case', () => {
    const text = '  sha256:\n    0 : 0xAB01\n    7 : 0x00FF\n  sha1:\n    10 : 0x1234\n';
    expect(parsePcrRead(text)).toEqual({ sha256: { '0': 'ab01', '7': '00ff' }, sha1: { '10': '1234' } });
  });

  it('checks a PCR selection before it reaches a command line', () => {
    expect(assertPcrSelection('sha256:0,1,2+sha1:7')).toBe('sha256:0,1,2+sha1:7');
    for (const bad of ['sha256', 'md5:0', 'sha256:24', '-h', 'sha256:0;rm'])
      expect(() => assertPcrSelection(bad)).toThrow(/PCR selection/);
  });

  it('takes the TCTI from the option, else TPM2TOOLS_TCTI, else the kernel resource manager', () => {
    expect(createTpm({ tcti: 'swtpm:port=1', env: {} }).tcti).toBe('swtpm:port=1');
    expect(createTpm({ env: { TPM2TOOLS_TCTI: 'mssim:port=2321' } }).tcti).toBe('mssim:port=2321');
    expect(createTpm({ env: {} }).tcti).toBe(DEFAULT_TCTI);
  });

  it('fails with the tool and its TCTI when the TPM cannot be reached', async () => {
    const tpm = createTpm({ tcti: 'swtpm:port=1', env: {} });
    await expect(tpm.readPcrs('sha256:0')).rejects.toThrow(/tpm2_pcrread failed \(TCTI swtpm:port=1\)/);
  });
});
