import fastifyCookie from '@fastify/cookie';
import fastifySwagger from '@fastify/swagger';
import Fastify, { type FastifyInstance } from 'fastify';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import { BulwarkError, est } from '@bulwark/protocol';
import type { RouteAccess } from './access.ts';
import { installGuard, type GuardDeps } from './guard.ts';
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
  guard: GuardDeps;
  version: string;
  /** Called when a TLS handshake fails (untrusted client, old protocol version…). */
  onTlsError?: (remoteAddress: string, reason: string) => void;
}

export interface RouteEntry {
  method: string;
  url: string;
  access: RouteAccess;
}

export const OPENAPI_PATH = '/api/v1/openapi.json';

const openApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

/**
 * The HTTPS listener: TLS 1.2+ only, client certificates requested (never required) so EST
 * re-enrollment can authenticate devices, zod schemas that validate input, shape output and make the
 * OpenAPI 3.1 document, one guard for every route, every error as RFC 9457 problem+json.
 */
export async function createHttpApp(
  options: HttpAppOptions,
): Promise<{ app: FastifyInstance; routes: RouteEntry[] }> {
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

  const routes: RouteEntry[] = [];
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) {
      if (method === 'HEAD') continue;
      routes.push({ method, url: route.url, access: route.config?.access as RouteAccess });
    }
  });

  app.server.on('tlsClientError', (err: Error & { code?: string }, socket: { remoteAddress?: string }) => {
    options.onTlsError?.(socket.remoteAddress ?? 'unknown', err.code ?? err.message);
  });

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  await app.register(fastifyCookie);
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Bulwark management API',
        version: options.version,
        description:
          'Errors are RFC 9457 problem+json with a stable `code`; see docs/errors.md. Each operation names the permission it needs in `x-permission`.',
      },
      components: {
        securitySchemes: {
          session: {
            type: 'apiKey',
            in: 'cookie',
            name: '__Host-bulwark_session',
            description: 'Session cookie; writes also need the X-CSRF-Token header',
          },
          apiToken: { type: 'http', scheme: 'bearer', description: 'API token (bwt_…)' },
        },
      },
      security: [{ session: [] }, { apiToken: [] }],
    },
    transform: (input) => {
      // Only the management API is described; EST and the PKI files have their own RFCs.
      if (!input.url.startsWith('/api/v1/') || input.url === OPENAPI_PATH) {
        return { schema: { ...(input.schema ?? {}), hide: true }, url: input.url };
      }
      return jsonSchemaTransform(input);
    },
    transformObject: (documents) => {
      const doc = 'openapiObject' in documents ? documents.openapiObject : documents.swaggerObject;
      const paths = (doc.paths ?? {}) as Record<string, Record<string, Record<string, unknown>>>;
      for (const route of routes) {
        const operation = paths[openApiPath(route.url)]?.[route.method.toLowerCase()];
        if (!operation) continue;
        operation['x-permission'] = route.access;
        if (route.access === 'public') operation.security = [];
      }
      return doc;
    },
  });

  installGuard(app, options.guard);

  app.setErrorHandler((err, request, reply) => {
    const e = fromFrameworkError(err);
    if (e.code === 'internal') request.log.error({ err: e.cause ?? err }, 'request failed');
    const problem = toProblem(e, request.url);
    if (problem.status === 401) {
      reply.header(
        'WWW-Authenticate',
        request.url.startsWith(est.prefix) ? 'Basic realm="bulwark-est"' : 'Bearer realm="bulwark"',
      );
    }
    const retryAfter = e.details?.retryAfterS;
    if (typeof retryAfter === 'number') reply.header('Retry-After', String(retryAfter));
    void reply.status(problem.status).type('application/problem+json').send(problem);
  });

  app.setNotFoundHandler((request, reply) => {
    const problem = toProblem(
      new BulwarkError('not_found', `no route for ${request.method} ${request.url}`),
      request.url,
    );
    void reply.status(404).type('application/problem+json').send(problem);
  });

  app.get(OPENAPI_PATH, { config: { access: 'public' } }, () => app.swagger());

  return { app, routes };
}
