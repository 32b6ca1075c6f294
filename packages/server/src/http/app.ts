import fastifyCookie from '@fastify/cookie';
import fastifySwagger from '@fastify/swagger';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { TLSSocket } from 'node:tls';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import { api, BulwarkError, est, type Contract } from '@bulwark/protocol';
import { describeTlsListener, type ListenerFacts, type TlsListener } from '../broker/index.ts';
import { refuseRenegotiation, serverTlsProfile } from '../pki/index.ts';
import type { RouteAccess } from './access.ts';
import { defineRoute, installRouteDefinition } from './define-route.ts';
import { installGuard, type GuardDeps } from './guard.ts';
import { fromFrameworkError, toProblem } from './problem.ts';

export interface HttpTls {
  key: string;
  cert: string;
  /**
   * Only for the EST device listener: CAs whose client certificates it asks for (never requires; the
   * route answers a clear 401 without one). The main listener sends no CertificateRequest, so browsers are
   * never prompted for a certificate.
   */
  clientCa?: string;
  /** A handshake not finished in this time is closed (and reported through onTlsError). */
  handshakeTimeoutMs: number;
}

export interface HttpAppOptions {
  tls: HttpTls;
  logger: Logger;
  guard: GuardDeps;
  version: string;
  /** Called when a TLS handshake fails (untrusted client, old protocol version, timeout…). */
  onTlsError?: (remoteAddress: string, reason: string) => void;
  /**
   * Asked first for a path no route serves: true when it answered (the console's page for a browser's
   * navigation to a client-side route), false to leave the 404 problem+json.
   */
  notFound?: NotFoundFallback;
}

export type NotFoundFallback = (request: FastifyRequest, reply: FastifyReply) => Promise<boolean>;

export interface RouteEntry {
  method: string;
  url: string;
  access: RouteAccess;
  /** The operation's contract, for every route registered with defineRoute. */
  contract?: Contract;
}

export const OPENAPI_PATH = api.meta.openapi.path;

const openApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

/** RFC 6797: browsers that saw the header use only HTTPS for this host for a year. */
export const HSTS = 'max-age=31536000';

/** Answers that may carry tokens, recovery codes, setup secrets or certificates are never stored by caches. */
const NO_STORE_PREFIXES = ['/api/v1/', est.prefix];

/** Each app's listener as built: its name, the https options handed to Node, and what stands in for a certificate. */
const builtListeners = new WeakMap<FastifyInstance, Omit<TlsListener, 'port'>>();

/**
 * The HTTPS listener of an app built here, described from the options it was given and the port it got;
 * undefined while it is not listening (compliance, platform.started).
 */
export function httpListenerFacts(app: FastifyInstance): ListenerFacts | undefined {
  const built = builtListeners.get(app);
  const address = app.server.address();
  if (!built || address === null || typeof address === 'string') return undefined;
  return describeTlsListener({ ...built, port: address.port });
}

/**
 * One HTTPS listener: the TLS profile shared by every Bulwark listener (TLS 1.3; TLS 1.2 with ECDHE and AEAD
 * only), no client-initiated renegotiation, a handshake deadline, HSTS, `no-store` on the API and EST, one
 * guard for every route, every error (404 included) as RFC 9457 problem+json.
 */
async function createListener(
  options: HttpAppOptions,
  listener: Pick<TlsListener, 'name' | 'withoutCertificate'>,
): Promise<{ app: FastifyInstance; routes: RouteEntry[] }> {
  const mutual = options.tls.clientCa !== undefined;
  const https = {
    key: options.tls.key,
    cert: options.tls.cert,
    ...serverTlsProfile,
    // Node can ask for a client certificate only at the handshake (TLS 1.3 has no renegotiation), not per
    // route: only the device listener asks. Never required there, so a refusal is a clear 401.
    ...(mutual ? { ca: options.tls.clientCa, requestCert: true, rejectUnauthorized: false } : {}),
    handshakeTimeout: options.tls.handshakeTimeoutMs,
  };
  const app = Fastify({
    loggerInstance: options.logger,
    https,
    bodyLimit: 1024 * 1024,
    return503OnClosing: true,
  }) as unknown as FastifyInstance;
  builtListeners.set(app, { ...listener, options: https });

  const routes: RouteEntry[] = [];
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) {
      if (method === 'HEAD') continue;
      routes.push({
        method,
        url: route.url,
        access: route.config?.access as RouteAccess,
        ...(route.config?.contract ? { contract: route.config.contract } : {}),
      });
    }
  });

  app.server.on('secureConnection', (socket: TLSSocket) => refuseRenegotiation(socket));
  app.server.on('tlsClientError', (err: Error & { code?: string }, socket: { remoteAddress?: string }) => {
    options.onTlsError?.(socket.remoteAddress ?? 'unknown', err.code ?? err.message);
  });

  // Before the guard, so refusals carry the headers too.
  app.addHook('onRequest', async (request, reply) => {
    void reply.header('Strict-Transport-Security', HSTS);
    if (NO_STORE_PREFIXES.some((prefix) => request.url.startsWith(prefix)))
      void reply.header('Cache-Control', 'no-store');
  });

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  installRouteDefinition(app);
  await app.register(fastifyCookie);
  return { app, routes };
}

/** Error and not-found handlers: last, after the routes' own plugins. */
function installProblemHandlers(app: FastifyInstance, notFound?: NotFoundFallback): void {
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

  app.setNotFoundHandler(async (request, reply) => {
    if (notFound && (await notFound(request, reply))) return reply;
    const problem = toProblem(
      new BulwarkError('not_found', `no route for ${request.method} ${request.url}`),
      request.url,
    );
    return reply.status(404).type('application/problem+json').send(problem);
  });
}

/**
 * The mutual-TLS device listener, for routes where a device authenticates with its current certificate (EST
 * re-enrollment, RFC 7030 §4.2.2; the TUF firmware repository). Everything else answers 404 there.
 */
export async function createDeviceApp(
  options: HttpAppOptions & { tls: { clientCa: string } },
): Promise<{ app: FastifyInstance; routes: RouteEntry[] }> {
  // Without a certificate, the device routes answer 401 (the guard): the certificate is the only way in.
  const listener = await createListener(options, { name: 'https-device' });
  installGuard(listener.app, options.guard);
  installProblemHandlers(listener.app);
  return listener;
}

/**
 * The main HTTPS listener (API, console, EST enrollment): zod schemas that validate input, shape output and
 * make the OpenAPI 3.1 document, one guard for every route, every error as RFC 9457 problem+json. It never
 * asks for a client certificate (see createDeviceApp).
 */
export async function createHttpApp(
  options: HttpAppOptions,
): Promise<{ app: FastifyInstance; routes: RouteEntry[] }> {
  const { app, routes } = await createListener(
    { ...options, tls: { ...options.tls, clientCa: undefined } },
    { name: 'https', withoutCertificate: 'user-sign-in' },
  );
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
  installProblemHandlers(app, options.notFound);

  // Serialized here: the document is what @fastify/swagger made, with no schema of its own to encode through.
  defineRoute(app, api.meta.openapi, {
    handler: ({ reply }) => reply.type('application/json').send(JSON.stringify(app.swagger())),
  });

  return { app, routes };
}
