import type { ServerResponse } from 'node:http';
import { est } from '@bulwark/protocol';
import { x509 } from '../x509.ts';
import {
  sendProblem,
  startHttpsServer,
  type HttpsTestServer,
  type RecordedRequest,
} from './https-test-server.ts';
import { issueLocalhostCert, type TestCa } from './test-pki.ts';

export interface FakeEstServer extends HttpsTestServer {
  /** Serial numbers of the certificates issued, in order. */
  readonly issued: string[];
}

/**
 * Just enough of an EST server (RFC 7030) for device tests: `/cacerts`, `simpleenroll` with HTTP
 * Basic device id + token, `simplereenroll` with a client certificate. Answers carry the CA after the
 * issued certificate, as some servers do, so clients must pick their certificate by key.
 */
export async function startFakeEstServer(options: {
  ca: TestCa;
  /** device id → enrollment token */
  tokens?: Readonly<Record<string, string>>;
  validityMs?: number;
}): Promise<FakeEstServer> {
  const { ca } = options;
  const issued: string[] = [];
  const tls = await issueLocalhostCert(ca);

  async function issueFor(request: RecordedRequest, res: ServerResponse, subject?: string): Promise<void> {
    if (request.headers['content-type'] !== est.csrContentType) {
      sendProblem(res, 415, 'unsupported_media_type', `Content-Type must be ${est.csrContentType}`);
      return;
    }
    const csr = new x509.Pkcs10CertificateRequest(request.body.replace(/\s+/g, ''));
    if (!(await csr.verify())) {
      sendProblem(res, 400, 'csr_signature_invalid', 'CSR signature does not verify');
      return;
    }
    const now = Date.now();
    const cert = await ca.issue({
      subject: subject ?? csr.subject,
      publicKey: csr.publicKey,
      notBefore: new Date(now - 1_000),
      notAfter: new Date(now + (options.validityMs ?? 3_600_000)),
    });
    issued.push(cert.serialNumber.toUpperCase());
    sendCerts(res, est.certsContentType, [cert, ca.cert]);
  }

  const server = await startHttpsServer({
    ...tls,
    clientCa: ca.certPem,
    async handler(request, res) {
      if (request.method === 'GET' && request.path === est.cacerts) {
        sendCerts(res, est.cacertsContentType, [ca.cert]);
      } else if (request.method === 'POST' && request.path === est.simpleenroll) {
        const [scheme, value = ''] = (request.headers.authorization ?? '').split(' ');
        const decoded = Buffer.from(value, 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        const deviceId = decoded.slice(0, colon);
        if (scheme !== 'Basic' || colon <= 0 || options.tokens?.[deviceId] !== decoded.slice(colon + 1)) {
          sendProblem(res, 401, 'token_invalid', 'enrollment token is not valid for this device');
          return;
        }
        await issueFor(request, res, `CN=${deviceId}`);
      } else if (request.method === 'POST' && request.path === est.simplereenroll) {
        if (request.clientCertSerial === undefined) {
          sendProblem(res, 401, 'unauthenticated', 're-enrollment requires a client certificate');
          return;
        }
        await issueFor(request, res);
      } else {
        sendProblem(res, 404, 'not_found', `no route ${request.method} ${request.path}`);
      }
    },
  });
  return { ...server, issued };
}

/** A base64 certs-only PKCS#7 with CRLF every 64 characters, as RFC 7030 servers commonly send. */
function sendCerts(res: ServerResponse, contentType: string, certs: x509.X509Certificate[]): void {
  const base64 = new x509.X509Certificates(certs).export('base64');
  res.writeHead(200, { 'content-type': contentType, 'content-transfer-encoding': 'base64' });
  res.end(base64.replace(/.{1,64}/g, '$&\r\n'));
}
