import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { BulwarkError } from '@bulwark/protocol';
import { fromFrameworkError, toProblem } from './problem.ts';

export interface HttpTls {
  key: string;
  cert: string;
  /** CAs whose client certificates the listener asks for (device re-enrollment); optional, never required. */
  clientCa: string;
}

export interface HttpAppOptions {
  tls: HttpTls;
  logger: Logger;
  /** Called when a TLS handshake fails (untrusted client, old protocol version…). */
  onTlsError?: (remoteAddress: string, reason: string) => void;
}

/**
 * The HTTPS listener: TLS 1.2+ only, client certificates requested (never required) so EST
 * re-enrollment can authenticate devices, every error as RFC 9457 problem+json.
 */
export function createHttpApp(options: HttpAppOptions): FastifyInstance {
  const app = Fastify({
    loggerInstance: options.logger,
    https: {
      key: options.tls.key,
      cert: options.tls.cert,
      ca: options.tls.clientCa,
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
    },
    bodyLimit: 1024 * 1024,
    return503OnClosing: true,
  }) as unknown as FastifyInstance;

  app.server.on('tlsClientError', (err: Error & { code?: string }, socket: { remoteAddress?: string }) => {
    options.onTlsError?.(socket.remoteAddress ?? 'unknown', err.code ?? err.message);
  });

  app.setErrorHandler((err, request, reply) => {
    const e = fromFrameworkError(err);
    if (e.code === 'internal') request.log.error({ err: e.cause ?? err }, 'request failed');
    const problem = toProblem(e, request.url);
    if (problem.status === 401) reply.header('WWW-Authenticate', 'Basic realm="bulwark-est"');
    void reply.status(problem.status).type('application/problem+json').send(problem);
  });

  app.setNotFoundHandler((request, reply) => {
    const problem = toProblem(
      new BulwarkError('not_found', `no route for ${request.method} ${request.url}`),
      request.url,
    );
    void reply.status(404).type('application/problem+json').send(problem);
  });

  return app;
}
