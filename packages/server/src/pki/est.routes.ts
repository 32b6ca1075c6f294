import type { TLSSocket } from 'node:tls';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { api, BulwarkError, deviceIdProblem, est } from '@bulwark/protocol';
import type {} from '../http/index.ts'; // app.defineRoute
import type { PkiService } from './pki.service.ts';

const CSR_BODY_LIMIT = 32 * 1024;

/** HTTP Basic (RFC 7617) with username = device id, password = token; or `Authorization: Bearer <token>` plus `?id=`. */
function enrollmentCredentials(request: FastifyRequest): { deviceId: string; token: string } {
  const credentials = readCredentials(request);
  // Refused before anything is recorded: a malformed id is never written to the audit log.
  const problem = deviceIdProblem(credentials.deviceId);
  if (problem) throw new BulwarkError('validation_failed', `the user name must be the device id: ${problem}`);
  if (credentials.token.length > 128)
    throw new BulwarkError('token_invalid', 'enrollment token is not valid for this device id');
  return credentials;
}

function readCredentials(request: FastifyRequest): { deviceId: string; token: string } {
  const header = request.headers.authorization;
  if (!header)
    throw new BulwarkError(
      'unauthenticated',
      'enrollment requires HTTP Basic credentials: device id as user name, enrollment token as password',
    );
  const [scheme, value = ''] = header.split(' ', 2);
  if (scheme?.toLowerCase() === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0)
      throw new BulwarkError('unauthenticated', 'malformed Basic credentials: expected device-id:token');
    return { deviceId: decoded.slice(0, colon), token: decoded.slice(colon + 1) };
  }
  if (scheme?.toLowerCase() === 'bearer') {
    const query = request.query as Record<string, unknown>;
    const deviceId =
      typeof query.id === 'string' ? query.id : (request.headers['x-device-id'] as string | undefined);
    if (!deviceId)
      throw new BulwarkError(
        'unauthenticated',
        'with a Bearer token, name the device with ?id=DEVICE or an X-Device-Id header',
      );
    return { deviceId, token: value };
  }
  throw new BulwarkError(
    'unauthenticated',
    `unsupported authorization scheme "${scheme ?? ''}": use Basic or Bearer`,
  );
}

function peerCertSerial(request: FastifyRequest): string | undefined {
  const socket = request.raw.socket as TLSSocket;
  // `authorized` means the client presented a certificate that chains to our CA (checked by TLS).
  if (!socket.authorized) return undefined;
  const serial = socket.getPeerCertificate()?.serialNumber;
  return serial || undefined;
}

/** This scope reads only what EST defines; JSON or form bodies are answered 415, not parsed. */
function estBodies(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    ['application/pkcs10', 'application/x-pem-file'],
    { parseAs: 'string', bodyLimit: CSR_BODY_LIMIT },
    (_req, body, done) => {
      done(null, body);
    },
  );
}

const sendCerts = (reply: FastifyReply, base64: string, contentType: string) =>
  reply
    .header('Content-Type', contentType)
    .header('Content-Transfer-Encoding', 'base64')
    .send(base64.replace(/.{1,64}/g, '$&\n'));

const csrBody = (request: FastifyRequest): string => {
  if (typeof request.body !== 'string') {
    throw new BulwarkError(
      'unsupported_media_type',
      `Content-Type must be ${est.csrContentType} with a base64-encoded PKCS#10 body`,
    );
  }
  return request.body;
};

/**
 * EST (RFC 7030) under /.well-known/est and the CRL / CA chain under /pki, on the main listener. That listener
 * asks for no client certificate, so `simplereenroll` is served on the device listener (estReenrollRoutes)
 * and the main listener redirects there (http/ deviceListenerRedirects).
 */
export function estRoutes(pki: Pick<PkiService, 'caCertsPkcs7' | 'enroll' | 'crl' | 'chainPem'>) {
  return function register(app: FastifyInstance) {
    estBodies(app);

    app.defineRoute(api.pki.cacerts, {
      handler: ({ reply }) => sendCerts(reply, pki.caCertsPkcs7(), est.cacertsContentType),
    });

    app.defineRoute(api.pki.simpleenroll, {
      async handler({ request, reply }) {
        const credentials = enrollmentCredentials(request);
        const issued = await pki.enroll({ ...credentials, csr: csrBody(request), remoteAddress: request.ip });
        return sendCerts(reply, issued.pkcs7, est.certsContentType);
      },
    });

    app.defineRoute(api.pki.crl, {
      handler: async ({ reply }) =>
        reply.header('Content-Type', 'application/pkix-crl').send(await pki.crl()),
    });

    app.defineRoute(api.pki.caChain, {
      handler: ({ reply }) =>
        reply.header('Content-Type', 'application/pem-certificate-chain').send(pki.chainPem()),
    });
  };
}

/** EST `simplereenroll` (RFC 7030 §4.2.2) on the mutual-TLS device listener. */
export function estReenrollRoutes(pki: Pick<PkiService, 'reenroll'>) {
  return function register(app: FastifyInstance) {
    estBodies(app);
    app.defineRoute(api.pki.simplereenroll, {
      async handler({ request, reply }) {
        const issued = await pki.reenroll({
          peerCertSerial: peerCertSerial(request),
          csr: csrBody(request),
          remoteAddress: request.ip,
        });
        return sendCerts(reply, issued.pkcs7, est.certsContentType);
      },
    });
  };
}
