import { BulwarkError, errorCodes, est, httpStatusOf, isErrorCode, type ErrorCode } from '@bulwark/protocol';
import { describeCertificate, rootOf, toPem, type CertificateInfo } from './certificate.ts';
import { deviceListenerRedirect, httpsRequest, type HttpsResponse } from './https-request.ts';
import { x509 } from './x509.ts';

/** Settings common to every EST call. */
export interface EstCallOptions {
  /** Abort when the server has not answered in time. Default 30 s. */
  readonly timeoutMs?: number;
}

/** The CA chain from `/cacerts`. */
export interface CaCertificates {
  /** The whole chain as PEM, what the device stores in `ca.pem` and trusts from then on. */
  readonly pem: string;
  readonly certificates: readonly CertificateInfo[];
  /** The self-signed certificate of the chain; compare its fingerprint out of band. */
  readonly root: CertificateInfo;
}

export interface GetCaCertsOptions extends EstCallOptions {
  /**
   * Skip TLS server verification. Only for the trust-on-first-use bootstrap (RFC 7030 §4.1.1):
   * the result must then be authenticated out of band, by comparing `root.fingerprint`.
   */
  readonly insecureSkipVerify?: boolean;
}

export interface SimpleEnrollRequest extends EstCallOptions {
  readonly serverUrl: string;
  readonly deviceId: string;
  /** One-time enrollment token, sent as the HTTP Basic password (RFC 7030 §3.2.3). */
  readonly token: string;
  readonly csrDer: Uint8Array;
  /** PEM trust anchors for the server; the platform store when absent. */
  readonly ca?: string | undefined;
}

export interface SimpleReenrollRequest extends EstCallOptions {
  readonly serverUrl: string;
  /** A CSR for the new key, same subject as the current certificate (RFC 7030 §4.2.2). */
  readonly csrDer: Uint8Array;
  readonly ca?: string | undefined;
  /** Current private key and certificate (PEM): re-enrollment is authenticated by mutual TLS. */
  readonly key: string;
  readonly cert: string;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_RESPONSE_BYTES = 1024 * 1024;

/**
 * `GET /.well-known/est/cacerts` (RFC 7030 §4.1): the CA chain the server's certificates chain to.
 *
 * @example
 * ```ts
 * // First contact, nothing trusted yet: fetch unverified, then check the fingerprint out of band.
 * const chain = await getCaCerts('https://bulwark.example:8443', undefined, { insecureSkipVerify: true });
 * console.log(chain.root.fingerprint);
 * ```
 */
export async function getCaCerts(
  serverUrl: string,
  ca?: string,
  options: GetCaCertsOptions = {},
): Promise<CaCertificates> {
  const response = await call('cacerts', {
    method: 'GET',
    url: new URL(est.cacerts, serverUrl),
    headers: { accept: est.cacertsContentType },
    ca,
    insecureSkipVerify: options.insecureSkipVerify,
    timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    maxBodyBytes: MAX_RESPONSE_BYTES,
  });
  const certs = parseCertsOnly('cacerts', response.body);
  const root = await rootOf(certs);
  return { pem: toPem(certs), certificates: certs.map(describeCertificate), root: describeCertificate(root) };
}

/**
 * `POST /.well-known/est/simpleenroll` (RFC 7030 §4.2.1), authenticated with HTTP Basic
 * (username = device id, password = enrollment token). Returns the issued certificate as PEM.
 *
 * @example
 * ```ts
 * const key = await generateDeviceKey();
 * const csr = await createCsr('pump-17', key);
 * const certPem = await simpleEnroll({ serverUrl, deviceId: 'pump-17', token, csrDer: csr.der, ca });
 * ```
 */
export async function simpleEnroll(request: SimpleEnrollRequest): Promise<string> {
  assertBasicUserId(request.deviceId);
  const credentials = Buffer.from(`${request.deviceId}:${request.token}`, 'utf8').toString('base64');
  const response = await call('simpleenroll', {
    method: 'POST',
    url: new URL(est.simpleenroll, request.serverUrl),
    headers: {
      'content-type': est.csrContentType,
      accept: est.certsContentType,
      authorization: `Basic ${credentials}`,
    },
    body: Buffer.from(request.csrDer).toString('base64'),
    ca: request.ca,
    timeoutMs: request.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    maxBodyBytes: MAX_RESPONSE_BYTES,
  });
  return issuedCertificate('simpleenroll', response.body, request.csrDer);
}

/**
 * `POST /.well-known/est/simplereenroll` (RFC 7030 §4.2.2), authenticated by the current
 * certificate over mutual TLS. Returns the new certificate as PEM.
 *
 * @example
 * ```ts
 * const next = await generateDeviceKey('ec-p256');
 * const csr = await createCsr(identity.deviceId, next);
 * const certPem = await simpleReenroll({
 *   serverUrl: identity.serverUrl, csrDer: csr.der, ca: identity.caPem,
 *   key: identity.keyPem, cert: identity.certPem,
 * });
 * ```
 */
export async function simpleReenroll(request: SimpleReenrollRequest): Promise<string> {
  const send = (url: URL) =>
    call(
      'simplereenroll',
      {
        method: 'POST',
        url,
        headers: { 'content-type': est.csrContentType, accept: est.certsContentType },
        body: Buffer.from(request.csrDer).toString('base64'),
        ca: request.ca,
        key: request.key,
        cert: request.cert,
        timeoutMs: request.timeoutMs ?? DEFAULT_TIMEOUT_MS,
        maxBodyBytes: MAX_RESPONSE_BYTES,
      },
      { redirects: true },
    );
  const first = new URL(est.simplereenroll, request.serverUrl);
  let response = await send(first);
  if (response.status !== 200) response = await send(reenrollRedirect(first, response));
  if (response.status !== 200) throw problemError('simplereenroll', response);
  return issuedCertificate('simplereenroll', response.body, request.csrDer);
}

/** The main URL redirects `simplereenroll` to the mutual-TLS device listener (see deviceListenerRedirect). */
function reenrollRedirect(from: URL, response: HttpsResponse): URL {
  const location = response.headers.location;
  const to = deviceListenerRedirect(from, response.status, location);
  if (to === undefined)
    throw new BulwarkError(
      'bad_request',
      `EST simplereenroll failed: HTTP ${response.status} redirect to ${location ?? '(no Location)'} refused: only the same host and path over HTTPS are followed`,
    );
  return to;
}

/**
 * RFC 7617 §2: a user-id containing a colon is invalid in Basic auth; the server could not tell
 * where the device id ends and the token begins. Checked before anything is sent.
 */
export function assertBasicUserId(deviceId: string): void {
  if (deviceId.includes(':')) {
    throw new BulwarkError(
      'validation_failed',
      `device id "${deviceId}" contains ":" and cannot be sent as an HTTP Basic user-id (RFC 7617 §2)`,
    );
  }
}

type Operation = 'cacerts' | 'simpleenroll' | 'simplereenroll';

async function call(
  operation: Operation,
  options: Parameters<typeof httpsRequest>[0],
  accept: { redirects?: boolean } = {},
): Promise<HttpsResponse> {
  let response: HttpsResponse;
  try {
    response = await httpsRequest(options);
  } catch (err) {
    const error = err as NodeJS.ErrnoException;
    const code = typeof error.code === 'string' ? ` (${error.code})` : '';
    throw new Error(`EST ${operation} to ${options.url.origin} failed: ${error.message}${code}`, {
      cause: err,
    });
  }
  if (response.status === 200) return response;
  if (accept.redirects && (response.status === 307 || response.status === 308)) return response;
  throw problemError(operation, response);
}

/**
 * Turns a non-200 answer into a BulwarkError carrying the server's code. The server speaks
 * RFC 9457 problem+json; anything else (a proxy's HTML page) keeps its status and a short excerpt.
 */
function problemError(operation: Operation, response: HttpsResponse): BulwarkError {
  const text = response.body.toString('utf8');
  let problem: Record<string, unknown> = {};
  if (/json/i.test(response.headers['content-type'] ?? '')) {
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed === 'object' && parsed !== null) problem = parsed as Record<string, unknown>;
    } catch {
      // not JSON after all: fall back to the raw text below
    }
  }
  const code = isErrorCode(problem.code) ? problem.code : codeForStatus(response.status);
  const detail =
    stringOr(problem.detail) ?? stringOr(problem.title) ?? (text.trim().slice(0, 200) || 'no detail');
  const retryAfter = response.headers['retry-after'];
  // RFC 7030 §4.2.3: 202 (manual approval) and 503 may say when to come back.
  const retry = retryAfter === undefined ? '' : ` (Retry-After: ${retryAfter})`;
  return new BulwarkError(
    code,
    `EST ${operation} failed: HTTP ${response.status} ${code}: ${detail}${retry}`,
    {
      details: { status: response.status, type: problem.type, title: problem.title, detail: problem.detail },
    },
  );
}

/** For answers without a Bulwark code: the first code with that status, else `internal`. */
function codeForStatus(status: number): ErrorCode {
  if (status >= 500) return 'internal';
  return errorCodes.find((code) => httpStatusOf(code) === status) ?? 'internal';
}

function stringOr(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/**
 * RFC 7030 §4.1.3/§4.2.3: a base64 certs-only CMS. Servers often wrap the base64 in lines, so
 * whitespace is dropped. A malformed answer is `internal`: the fault is the server's, not the device's.
 */
function parseCertsOnly(operation: Operation, body: Buffer): x509.X509Certificate[] {
  try {
    const certs = [...new x509.X509Certificates(body.toString('ascii').replace(/\s+/g, ''))];
    if (certs.length > 0) return certs;
  } catch (err) {
    throw new BulwarkError(
      'internal',
      `EST ${operation}: response is not a base64 PKCS#7 certs-only message`,
      {
        cause: err,
      },
    );
  }
  throw new BulwarkError('internal', `EST ${operation}: response contains no certificate`);
}

/** The certificate for our key: a server may append its chain, so match on the public key. */
function issuedCertificate(operation: Operation, body: Buffer, csrDer: Uint8Array): string {
  const requested = Buffer.from(new x509.Pkcs10CertificateRequest(new Uint8Array(csrDer)).publicKey.rawData);
  const issued = parseCertsOnly(operation, body).find((cert) =>
    requested.equals(Buffer.from(cert.publicKey.rawData)),
  );
  if (issued === undefined) {
    throw new BulwarkError(
      'internal',
      `EST ${operation}: no certificate in the response matches the requested key`,
    );
  }
  return issued.toString('pem') + '\n';
}
