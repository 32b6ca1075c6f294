import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  api,
  BulwarkError,
  errorCodes,
  httpStatusOf,
  isErrorCode,
  type ErrorCode,
  type PcrValues,
} from '@bulwark/protocol';
import { writeFileAtomic } from './atomic-write.ts';
import { deviceListenerRedirect, httpsRequest, type HttpsResponse } from './https-request.ts';
import { openIdentityStore, type DeviceIdentity } from './identity-store.ts';
import type { Tpm, TpmKeys } from './tpm.ts';

/** What the agent remembers about its TPM registration, in `<dir>/attestation.json`. */
export interface AttestationState {
  /** The bound attestation key's TPM name, hex. A TPM whose AK has another name registers again. */
  readonly akName: string;
  readonly serverUrl: string;
  readonly boundAt: number;
}

export const ATTESTATION_STATE_FILE = 'attestation.json';

export interface AttestOptions {
  /** The identity directory (written by `enroll`); the registration state is kept there too. */
  readonly dir: string;
  readonly tpm: Tpm;
  /** The identity to authenticate with (mutual TLS); default: loaded from `dir`. */
  readonly identity?: DeviceIdentity | undefined;
  /** Per HTTPS request. Default 30 s. */
  readonly timeoutMs?: number | undefined;
  readonly now?: (() => number) | undefined;
}

export interface AttestOutcome {
  /** The verifier's verdict (RATS trust tier and reason). */
  readonly result: AttestationResultView;
  /** True when this run registered the TPM (credential activation) before attesting. */
  readonly registered: boolean;
}

/** The verifier's verdict: `api.attestation.submitQuote`'s answer. */
export type AttestationResultView = ReturnType<typeof api.attestation.attestationResult.parse>;

type Contract = { readonly method: string; readonly path: string };
/** A contract's response schema, as far as this client uses it. */
interface ResponseSchema<T> {
  safeParse(value: unknown): { success: true; data: T } | { success: false; error: { message: string } };
}

interface Session {
  readonly identity: DeviceIdentity;
  readonly timeoutMs: number;
  /** The device listener's origin once the main URL has redirected there (asked once per run). */
  base: string;
}

const MAX_RESPONSE_BYTES = 256 * 1024;

function problemError(operation: string, response: HttpsResponse): BulwarkError {
  const text = response.body.toString('utf8');
  let problem: { code?: unknown; detail?: unknown; title?: unknown } = {};
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === 'object' && parsed !== null) problem = parsed;
  } catch {
    // not problem+json (a proxy's page): its status and an excerpt below
  }
  const code: ErrorCode = isErrorCode(problem.code)
    ? problem.code
    : (errorCodes.find((c) => httpStatusOf(c) === response.status) ?? 'internal');
  const detail =
    (typeof problem.detail === 'string' && problem.detail) ||
    (typeof problem.title === 'string' && problem.title) ||
    text.trim().slice(0, 200) ||
    'no detail';
  return new BulwarkError(
    code,
    `attestation ${operation} failed: HTTP ${response.status} ${code}: ${detail}`,
    {
      details: { status: response.status },
    },
  );
}

async function send(session: Session, url: URL, body: unknown): Promise<HttpsResponse> {
  try {
    return await httpsRequest({
      method: 'POST',
      url,
      // A POST without a body says so (content-length 0), so that no content type is expected.
      headers: body === undefined ? { 'content-length': '0' } : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      ca: session.identity.caPem,
      key: session.identity.keyPem,
      cert: session.identity.certPem,
      timeoutMs: session.timeoutMs,
      maxBodyBytes: MAX_RESPONSE_BYTES,
    });
  } catch (err) {
    throw new BulwarkError(
      'unavailable',
      `attestation: ${url.origin} unreachable: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

/** One call to a device contract; the main URL's redirect to the device listener is followed once. */
async function call<T>(
  session: Session,
  request: { contract: Contract; body?: unknown; response: ResponseSchema<T> },
): Promise<T> {
  const operation = request.contract.path;
  const url = new URL(request.contract.path, session.base);
  let response = await send(session, url, request.body);
  const to = deviceListenerRedirect(url, response.status, response.headers.location);
  if (to !== undefined) {
    session.base = to.origin;
    response = await send(session, to, request.body);
  }
  if (response.status < 200 || response.status > 299) throw problemError(operation, response);
  let json: unknown;
  try {
    json = JSON.parse(response.body.toString('utf8'));
  } catch (err) {
    throw new BulwarkError('internal', `attestation ${operation}: the answer is not JSON`, { cause: err });
  }
  const parsed = request.response.safeParse(json);
  if (!parsed.success)
    throw new BulwarkError(
      'internal',
      `attestation ${operation}: unexpected answer: ${parsed.error.message}`,
    );
  return parsed.data;
}

async function readState(dir: string): Promise<AttestationState | undefined> {
  try {
    const value: unknown = JSON.parse(await readFile(join(dir, ATTESTATION_STATE_FILE), 'utf8'));
    if (typeof value !== 'object' || value === null) return undefined;
    const { akName, serverUrl, boundAt } = value as Record<string, unknown>;
    if (typeof akName !== 'string' || typeof serverUrl !== 'string' || typeof boundAt !== 'number')
      return undefined;
    return { akName, serverUrl, boundAt };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || err instanceof SyntaxError) return undefined;
    throw err;
  }
}

function writeState(dir: string, state: AttestationState): Promise<void> {
  return writeFileAtomic(join(dir, ATTESTATION_STATE_FILE), JSON.stringify(state, null, 2) + '\n', 0o644);
}

/**
 * Registration (RFC 9334 attester → verifier): the server answers the EK and AK publics with a credential
 * made for the AK's name and encrypted to the EK (TPM2_MakeCredential); only the TPM holding both can
 * recover it (TPM2_ActivateCredential), which binds the AK to this TPM and this device certificate.
 */
async function register(session: Session, tpm: Tpm, keys: TpmKeys): Promise<'bound' | 'already-bound'> {
  const { attestation } = api;
  let offer;
  try {
    offer = await call(session, {
      contract: attestation.registerKey,
      body: { ekPublic: keys.ekPublic.toString('base64'), akPublic: keys.akPublic.toString('base64') },
      response: attestation.registerKey.response[201],
    });
  } catch (err) {
    // The server already holds a bound key for this device (state lost here): the quote tells whether it is ours.
    if (err instanceof BulwarkError && err.code === 'conflict') return 'already-bound';
    throw err;
  }
  const ourName = keys.akName.toString('hex');
  if (offer.akName.toLowerCase() !== ourName)
    throw new BulwarkError(
      'internal',
      `the server named the attestation key ${offer.akName}, the TPM ${ourName}`,
    );
  const secret = await tpm.activateCredential({
    idObject: Buffer.from(offer.credentialBlob, 'base64'),
    encryptedSecret: Buffer.from(offer.encryptedSecret, 'base64'),
  });
  await call(session, {
    contract: attestation.activateKey,
    body: { challengeId: offer.challengeId, secret: secret.toString('base64') },
    response: attestation.activateKey.response[200],
  });
  return 'bound';
}

const samePcrs = (a: PcrValues, b: PcrValues) => JSON.stringify(a) === JSON.stringify(b);

/**
 * A quote and the PCR values it covers. The values are read before and after the quote and must agree:
 * a PCR extended in between would make the digest disagree with the values sent.
 */
async function quoteWithValues(tpm: Tpm, challenge: { nonce: string; pcrSelection: string }) {
  for (let attempt = 0; attempt < 3; attempt++) {
    const before = await tpm.readPcrs(challenge.pcrSelection);
    const { quote, signature } = await tpm.quote(challenge.nonce, challenge.pcrSelection);
    const after = await tpm.readPcrs(challenge.pcrSelection);
    if (samePcrs(before, after))
      return {
        nonce: challenge.nonce,
        quote: quote.toString('base64'),
        signature: signature.toString('base64'),
        pcrs: after,
      };
  }
  throw new BulwarkError('unavailable', 'the PCRs kept changing while quoting; try again');
}

async function challengeFor(session: Session): Promise<{ nonce: string; pcrSelection: string }> {
  return call(session, {
    contract: api.attestation.challenge,
    response: api.attestation.challenge.response[200],
  });
}

/** Registers the TPM when this server has no bound key of its AK yet; true when it did. */
async function ensureRegistered(input: {
  session: Session;
  options: AttestOptions;
  keys: TpmKeys;
  force: boolean;
}) {
  const { session, options, keys } = input;
  const state = await readState(options.dir);
  const akName = keys.akName.toString('hex');
  if (!input.force && state?.akName === akName && state.serverUrl === session.identity.serverUrl)
    return false;
  await register(session, options.tpm, keys);
  const now = options.now ?? Date.now;
  await writeState(options.dir, { akName, serverUrl: session.identity.serverUrl, boundAt: now() });
  return true;
}

/**
 * One TPM 2.0 remote attestation round with the Bulwark server (the verifier): registers the TPM once
 * (state in `<dir>/attestation.json`), asks for a fresh nonce and the PCRs to quote, and sends the quote
 * with the PCR values. Resolves with the verdict, whatever its tier (a contraindicated verdict is an answer,
 * not an error); rejects when the server cannot be reached or refuses the device.
 *
 * @example
 * ```ts
 * const { result } = await attest({ dir: '/var/lib/bulwark', tpm: createTpm() });
 * if (result.tier === 'contraindicated') console.error(`attestation failed: ${result.reason}`);
 * ```
 */
export async function attest(options: AttestOptions): Promise<AttestOutcome> {
  const identity = options.identity ?? (await openIdentityStore(options.dir).load());
  const session: Session = { identity, timeoutMs: options.timeoutMs ?? 30_000, base: identity.serverUrl };
  const keys = await options.tpm.ensureKeys();
  let registered = await ensureRegistered({ session, options, keys, force: false });
  let challenge;
  try {
    challenge = await challengeFor(session);
  } catch (err) {
    // The server forgot the key (an operator removed it after a TPM change): register again, once.
    if (registered || !(err instanceof BulwarkError && err.code === 'conflict')) throw err;
    registered = await ensureRegistered({ session, options, keys, force: true });
    challenge = await challengeFor(session);
  }
  const result = await call(session, {
    contract: api.attestation.submitQuote,
    body: await quoteWithValues(options.tpm, challenge),
    response: api.attestation.submitQuote.response[200],
  });
  return { result, registered };
}

/** `attestation affirming (ok): detail`, the line `attest` and `run` print per verdict. */
export function describeVerdict({ result, registered }: AttestOutcome): string {
  const release = result.release === null ? '' : ` [release ${result.release}]`;
  return `${registered ? 'TPM registered; ' : ''}attestation ${result.tier} (${result.reason}): ${result.detail}${release}`;
}

/** Forgets the registration (the next attestation registers again). */
export async function forgetAttestationState(dir: string): Promise<void> {
  await rm(join(dir, ATTESTATION_STATE_FILE), { force: true });
}

export interface AttestScheduleOptions extends Omit<AttestOptions, 'identity'> {
  /** Time between two attestations; the first runs at once. */
  readonly everyMs: number;
  /** The identity in use now (it changes at renewal). */
  readonly identity?: (() => DeviceIdentity) | undefined;
  readonly onResult: (outcome: AttestOutcome) => void;
  readonly onError: (err: Error) => void;
}

export interface AttestSchedule {
  /** Cancels the next run and waits for one in progress. */
  stop(): Promise<void>;
}

/** A failed attempt is retried sooner than the period, but not in a tight loop. */
const RETRY_MS = 60_000;

/**
 * Attests now and then every `everyMs` (the server's `attestation.maxAge` should allow a few periods).
 *
 * @example
 * ```ts
 * const schedule = scheduleAttestation({ dir, tpm, everyMs: 3_600_000, onResult, onError });
 * await schedule.stop();
 * ```
 */
export function scheduleAttestation(options: AttestScheduleOptions): AttestSchedule {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  const round = async () => {
    let delay = options.everyMs;
    try {
      options.onResult(await attest({ ...options, identity: options.identity?.() }));
    } catch (err) {
      options.onError(err instanceof Error ? err : new Error(String(err)));
      delay = Math.min(options.everyMs, RETRY_MS);
    }
    if (!stopped)
      timer = setTimeout(
        () => {
          running = round();
        },
        Math.min(delay, 2 ** 31 - 1),
      );
  };
  running = round();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
