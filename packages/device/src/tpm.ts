import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BulwarkError, type PcrValues } from '@bulwark/protocol';

/** The kernel's TPM resource manager: each connection's transient objects and sessions are its own. */
export const DEFAULT_TCTI = 'device:/dev/tpmrm0';
/** TCG EK Credential Profile §2.2.1.4: the RSA EK's persistent handle. */
export const DEFAULT_EK_HANDLE = 0x81010001;
export const DEFAULT_AK_HANDLE = 0x81010002;

export const akAlgorithms = ['ecc', 'rsa'] as const;
export type AkAlgorithm = (typeof akAlgorithms)[number];

export interface TpmOptions {
  /** tpm2-tools TCTI (`device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`); default `TPM2TOOLS_TCTI` from `env`, else {@link DEFAULT_TCTI}. */
  readonly tcti?: string | undefined;
  readonly ekHandle?: number | undefined;
  readonly akHandle?: number | undefined;
  /** The attestation key: ECC P-256 with ECDSA (default) or RSA 2048 with RSASSA, both SHA-256. */
  readonly akAlgorithm?: AkAlgorithm | undefined;
  /** Per tool run. Default 30 s. */
  readonly timeoutMs?: number | undefined;
  /** Where the default TCTI is read from. Default `process.env`. */
  readonly env?: NodeJS.ProcessEnv | undefined;
}

/** The TPM's endorsement and attestation keys, as TPM2B_PUBLIC, and the attestation key's TPM name. */
export interface TpmKeys {
  readonly ekPublic: Buffer;
  readonly akPublic: Buffer;
  /** nameAlg (2 bytes) || H(TPMT_PUBLIC) of the attestation key. */
  readonly akName: Buffer;
  /** True when this call created (and persisted) a key. */
  readonly created: boolean;
}

/** The blobs of TPM2_MakeCredential, as marshalled TPM2B structures. */
export interface CredentialBlobs {
  /** TPM2B_ID_OBJECT */
  readonly idObject: Buffer;
  /** TPM2B_ENCRYPTED_SECRET */
  readonly encryptedSecret: Buffer;
}

export interface TpmQuote {
  /** TPMS_ATTEST as signed (tpm2_quote -m). */
  readonly quote: Buffer;
  /** TPMT_SIGNATURE (tpm2_quote -s, tss format). */
  readonly signature: Buffer;
}

/** A TPM 2.0 driven through tpm2-tools; calls on one instance run one at a time. */
export interface Tpm {
  readonly tcti: string;
  readonly ekHandle: number;
  readonly akHandle: number;
  /** Creates the EK and AK once, persists them at their handles, and reads their public parts. */
  ensureKeys(): Promise<TpmKeys>;
  /** TPM2_ActivateCredential with the AK and EK (policy session on the endorsement hierarchy): the credential. */
  activateCredential(blobs: CredentialBlobs): Promise<Buffer>;
  /** TPM2_Quote with the AK over `selection` (`sha256:0,1,2`) qualified by `nonceHex`. */
  quote(nonceHex: string, selection: string): Promise<TpmQuote>;
  /** The current values of the PCRs in `selection`, lower-case hex by bank and index. */
  readPcrs(selection: string): Promise<PcrValues>;
}

interface Runner {
  readonly tcti: string;
  readonly timeoutMs: number;
}

const hexHandle = (handle: number) => `0x${handle.toString(16)}`;

const banks = ['sha1', 'sha256', 'sha384', 'sha512'] as const;
type Bank = (typeof banks)[number];
const isBank = (name: string | undefined): name is Bank => banks.some((bank) => bank === name);

const BANK = '(?:sha1|sha256|sha384|sha512)';
const SELECTION = new RegExp(`^${BANK}:\\d{1,2}(?:,\\d{1,2})*(?:\\+${BANK}:\\d{1,2}(?:,\\d{1,2})*)*$`);

/** A persistent handle (TPM 2.0 Part 2 §7.4: 0x81000000-0x81FFFFFF), from `0x81010002` or decimal. */
export function parseTpmHandle(text: string): number {
  const value = /^0x[0-9a-f]{1,8}$/i.test(text)
    ? parseInt(text, 16)
    : /^\d{1,10}$/.test(text)
      ? Number(text)
      : NaN;
  if (!(value >= 0x81000000 && value <= 0x81ffffff))
    throw new BulwarkError(
      'validation_failed',
      `"${text}" is not a persistent handle (0x81000000-0x81FFFFFF)`,
    );
  return value;
}

/** A tpm2-tools PCR selection (`sha256:0,1,2+sha1:7`), checked before it reaches a command line. */
export function assertPcrSelection(selection: string): string {
  const pcrs = selection.split(/[:,+]/).filter((part) => /^\d+$/.test(part));
  if (!SELECTION.test(selection) || pcrs.some((pcr) => Number(pcr) > 23)) {
    throw new BulwarkError(
      'validation_failed',
      `PCR selection "${selection}" is not BANK:N[,N…][+BANK:N…] with banks sha1|sha256|sha384|sha512 and PCRs 0-23`,
    );
  }
  return selection;
}

function assertNonce(nonceHex: string): string {
  if (!/^(?:[0-9a-fA-F]{2}){1,64}$/.test(nonceHex))
    throw new BulwarkError('validation_failed', 'the nonce must be 1-64 bytes of hex');
  return nonceHex.toLowerCase();
}

function run(runner: Runner, tool: string, args: readonly string[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    execFile(
      tool,
      [...args],
      {
        env: { ...process.env, TPM2TOOLS_TCTI: runner.tcti },
        encoding: 'buffer',
        timeout: runner.timeoutMs,
        maxBuffer: 1024 * 1024,
      },
      (err, stdout, stderr) => {
        if (err === null) resolve(stdout);
        else reject(toolError({ tool, tcti: runner.tcti, err, stderr: stderr.toString('utf8') }));
      },
    );
  });
}

function toolError(input: { tool: string; tcti: string; err: Error; stderr: string }): BulwarkError {
  const { tool, tcti, err, stderr } = input;
  if ((err as NodeJS.ErrnoException).code === 'ENOENT')
    return new BulwarkError('unavailable', `${tool} not found: install tpm2-tools`, { cause: err });
  // tpm2-tools prints the TPM's answer on its last ERROR line; the rest is the TSS stack's trail.
  const lines = stderr.split('\n').filter((text) => text.trim() !== '');
  const reason = lines.filter((text) => text.startsWith('ERROR:')).at(0) ?? lines.at(-1) ?? err.message;
  return new BulwarkError('unavailable', `${tool} failed (TCTI ${tcti}): ${reason.trim()}`, { cause: err });
}

async function withWorkDir<T>(work: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'bulwark-tpm-'));
  try {
    return await work(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** `tpm2_getcap handles-persistent` prints `- 0x81010001` per handle. */
export function parseHandles(text: string): number[] {
  return [...text.matchAll(/^\s*-\s*0x([0-9a-fA-F]+)\s*$/gm)].map((m) => parseInt(m[1] ?? '', 16));
}

/**
 * Parses `tpm2_pcrread` output (`  sha256:` then `    7 : 0xABCD…` lines) into {@link PcrValues}.
 *
 * @example
 * ```ts
 * parsePcrRead('  sha256:\n    7 : 0x00…00\n'); // { sha256: { '7': '00…00' } }
 * ```
 */
export function parsePcrRead(text: string): PcrValues {
  const values: PcrValues = {};
  let bank: Record<string, string> | undefined;
  for (const row of text.split('\n')) {
    const name = /^\s*(sha1|sha256|sha384|sha512)\s*:\s*$/.exec(row)?.[1];
    if (isBank(name)) {
      bank = values[name] ?? {};
      values[name] = bank;
      continue;
    }
    const valueMatch = /^\s*(\d{1,2})\s*:\s*0x([0-9a-fA-F]+)\s*$/.exec(row);
    if (valueMatch && bank) bank[String(Number(valueMatch[1]))] = (valueMatch[2] ?? '').toLowerCase();
  }
  return values;
}

/** tpm2-tools' credential file (`tpm2_makecredential -o`, `tpm2_activatecredential -i`): magic, version 1, the two TPM2Bs. */
export function credentialFile(blobs: CredentialBlobs): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt32BE(0xbadcc0de, 0);
  header.writeUInt32BE(1, 4);
  return Buffer.concat([header, blobs.idObject, blobs.encryptedSecret]);
}

async function persistentHandles(runner: Runner): Promise<number[]> {
  return parseHandles((await run(runner, 'tpm2_getcap', ['handles-persistent'])).toString('utf8'));
}

interface KeyHandles {
  readonly ek: number;
  readonly ak: number;
  readonly akAlgorithm: AkAlgorithm;
}

/** TCG default EK template (RSA 2048), persisted where it is looked up next time. */
async function createEk(runner: Runner, ek: number): Promise<void> {
  await withWorkDir(async (dir) => {
    await run(runner, 'tpm2_createek', ['-c', hexHandle(ek), '-G', 'rsa', '-u', join(dir, 'ek.pub')]);
  });
}

/** A restricted signing key under the EK (tpm2_createak), made persistent. */
async function createAk(runner: Runner, handles: KeyHandles): Promise<void> {
  const [algorithm, scheme] = handles.akAlgorithm === 'rsa' ? ['rsa', 'rsassa'] : ['ecc', 'ecdsa'];
  await withWorkDir(async (dir) => {
    const context = join(dir, 'ak.ctx');
    await run(runner, 'tpm2_createak', [
      ...['-C', hexHandle(handles.ek), '-c', context, '-G', algorithm, '-g', 'sha256', '-s', scheme],
      ...['-u', join(dir, 'ak.pub'), '-n', join(dir, 'ak.name')],
    ]);
    await run(runner, 'tpm2_evictcontrol', ['-C', 'o', '-c', context, hexHandle(handles.ak)]);
  });
}

async function readPublic(runner: Runner, handle: number): Promise<{ publicArea: Buffer; name: Buffer }> {
  return withWorkDir(async (dir) => {
    const [pub, name] = [join(dir, 'key.pub'), join(dir, 'key.name')];
    await run(runner, 'tpm2_readpublic', ['-c', hexHandle(handle), '-o', pub, '-n', name]);
    return { publicArea: await readFile(pub), name: await readFile(name) };
  });
}

async function ensureKeys(runner: Runner, handles: KeyHandles): Promise<TpmKeys> {
  const present = await persistentHandles(runner);
  let created = false;
  if (!present.includes(handles.ek)) {
    await createEk(runner, handles.ek);
    created = true;
  }
  if (!present.includes(handles.ak)) {
    await createAk(runner, handles);
    created = true;
  }
  // Without a resource manager (a TPM or swtpm reached directly) the tools leave their transient copies
  // loaded, and a TPM has room for only a few: the persistent copies are what is used from now on.
  if (created) await run(runner, 'tpm2_flushcontext', ['-t']);
  const ek = await readPublic(runner, handles.ek);
  const ak = await readPublic(runner, handles.ak);
  return { ekPublic: ek.publicArea, akPublic: ak.publicArea, akName: ak.name, created };
}

/**
 * The EK's default policy is PolicySecret(TPM_RH_ENDORSEMENT) (TCG EK Credential Profile §2.1.5), so the
 * activation runs in a policy session satisfied with the endorsement hierarchy's (empty) authorization.
 */
async function activateCredential(
  runner: Runner,
  handles: KeyHandles,
  blobs: CredentialBlobs,
): Promise<Buffer> {
  return withWorkDir(async (dir) => {
    const [session, cred, secret] = [
      join(dir, 'session.ctx'),
      join(dir, 'cred.bin'),
      join(dir, 'secret.bin'),
    ];
    await writeFile(cred, credentialFile(blobs));
    await run(runner, 'tpm2_startauthsession', ['--policy-session', '-S', session]);
    try {
      await run(runner, 'tpm2_policysecret', ['-S', session, '-c', 'e']);
      await run(runner, 'tpm2_activatecredential', [
        ...['-c', hexHandle(handles.ak), '-C', hexHandle(handles.ek)],
        ...['-i', cred, '-o', secret, '-P', `session:${session}`],
      ]);
    } finally {
      await run(runner, 'tpm2_flushcontext', [session]).catch(() => undefined);
    }
    return readFile(secret);
  });
}

async function quote(
  runner: Runner,
  ak: number,
  input: { nonceHex: string; selection: string },
): Promise<TpmQuote> {
  return withWorkDir(async (dir) => {
    const [message, signature] = [join(dir, 'quote.msg'), join(dir, 'quote.sig')];
    await run(runner, 'tpm2_quote', [
      ...['-c', hexHandle(ak), '-l', assertPcrSelection(input.selection), '-q', assertNonce(input.nonceHex)],
      ...['-m', message, '-s', signature, '-g', 'sha256'],
    ]);
    return { quote: await readFile(message), signature: await readFile(signature) };
  });
}

async function readPcrs(runner: Runner, selection: string): Promise<PcrValues> {
  const text = (await run(runner, 'tpm2_pcrread', [assertPcrSelection(selection)])).toString('utf8');
  const values = parsePcrRead(text);
  for (const part of selection.split('+')) {
    const [bank = '', list = ''] = part.split(':');
    const read = (isBank(bank) ? values[bank] : undefined) ?? {};
    const missing = list.split(',').filter((pcr) => read[String(Number(pcr))] === undefined);
    if (missing.length > 0)
      throw new BulwarkError(
        'unavailable',
        `the TPM has no ${bank} bank values for PCR ${missing.join(',')}`,
      );
  }
  return values;
}

/** Runs calls one after the other: without a resource manager, two tools' sessions would collide. */
function serial(): <T>(work: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(work: () => Promise<T>) => {
    const result = tail.then(work, work);
    tail = result.catch(() => undefined);
    return result;
  };
}

/**
 * A TPM 2.0 through tpm2-tools (`tpm2-tss` underneath): the attester side of TPM remote attestation
 * (RFC 9334). Keys are created once and kept at persistent handles, so they survive reboots.
 *
 * @example
 * ```ts
 * const tpm = createTpm({ tcti: 'swtpm:host=127.0.0.1,port=2321' });
 * const { ekPublic, akPublic } = await tpm.ensureKeys();
 * const { quote, signature } = await tpm.quote(nonceHex, 'sha256:0,1,2,3,4,5,6,7');
 * ```
 */
export function createTpm(options: TpmOptions = {}): Tpm {
  const env = options.env ?? process.env;
  const tcti = options.tcti ?? (env.TPM2TOOLS_TCTI || DEFAULT_TCTI);
  const runner: Runner = { tcti, timeoutMs: options.timeoutMs ?? 30_000 };
  const handles: KeyHandles = {
    ek: options.ekHandle ?? DEFAULT_EK_HANDLE,
    ak: options.akHandle ?? DEFAULT_AK_HANDLE,
    akAlgorithm: options.akAlgorithm ?? 'ecc',
  };
  const exclusive = serial();
  return {
    tcti,
    ekHandle: handles.ek,
    akHandle: handles.ak,
    ensureKeys: () => exclusive(() => ensureKeys(runner, handles)),
    activateCredential: (blobs) => exclusive(() => activateCredential(runner, handles, blobs)),
    quote: (nonceHex, selection) => exclusive(() => quote(runner, handles.ak, { nonceHex, selection })),
    readPcrs: (selection) => exclusive(() => readPcrs(runner, selection)),
  };
}
