import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../logger.ts';
import { can, roles, type Principal, type Role } from '../users/index.ts';
import { startTestServer, type TestServer } from '../test-support/server.ts';
import { isEmptyReply, isRawReply, successStatuses, type Reply } from '@bulwark/protocol';
import { CREDENTIAL_ACCESS, createHttpApp, type RouteAccess } from './index.ts';

/**
 * Routes still registered the old way (issue 13, in progress): each area leaves this list when its routes
 * file is converted to contracts. Nothing may be added here.
 */
const PENDING_CONTRACTS: readonly string[] = [];

interface OpenApiOperation {
  summary?: string;
  tags?: string[];
  responses?: Record<string, { content?: Record<string, { schema?: unknown }> }>;
}

/** Where an API token is refused whatever its role: sign-in steps, and factor and credential management. */
const NEVER_FOR_TOKENS: readonly RouteAccess[] = [...CREDENTIAL_ACCESS, 'second-factor'];

/** Every route declares its access; the OpenAPI document says the same; each role meets each route as it should. */
describe('routes, permissions and roles', () => {
  let s: TestServer;
  const tokens = new Map<Role, string>();

  beforeAll(async () => {
    s = await startTestServer();
    for (const role of roles) {
      const { user } = await s.platform.users.create({ username: `matrix-${role}`, role }, 'test');
      const principal: Principal = {
        userId: user.id,
        username: user.username,
        role,
        groups: null,
        via: 'session',
        sessionState: 'active',
      };
      tokens.set(
        role,
        (await s.platform.users.createToken(principal, { name: 'matrix', expiresInMs: 3_600_000 })).token,
      );
    }
  });
  afterAll(async () => s?.stop());

  it('has an access level declared on every registered route', () => {
    expect(s.server.routes.length).toBeGreaterThan(25);
    for (const route of s.server.routes)
      expect({ route: `${route.method} ${route.url}`, access: route.access }).toEqual({
        route: `${route.method} ${route.url}`,
        access: expect.any(String) as string,
      });
  });

  it('registers every route from a contract that declares a response for each success status (issue 13)', () => {
    const missing = s.server.routes
      .filter((r) => !PENDING_CONTRACTS.some((prefix) => r.url.startsWith(prefix)))
      .filter((r) => !r.contract || successStatuses(r.contract).length === 0)
      .map((r) => `${r.method} ${r.url}`);
    expect(missing).toEqual([]);
    for (const route of s.server.routes) {
      const c = route.contract;
      if (!c) continue;
      expect({
        route: `${route.method} ${route.url}`,
        contract: `${c.method} ${c.path}`,
        access: c.access,
      }).toEqual({
        route: `${route.method} ${route.url}`,
        contract: `${route.method} ${route.url}`,
        access: route.access,
      });
    }
  });

  it('lists every management contract in the OpenAPI document with its response schemas', async () => {
    const doc = (await s.server.app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).json<{
      paths: Record<string, Record<string, OpenApiOperation>>;
    }>();
    const managed = s.server.routes.filter(
      (r) => r.url.startsWith('/api/v1/') && r.url !== '/api/v1/openapi.json',
    );
    for (const route of managed) {
      const c = route.contract;
      const operation = doc.paths[route.url.replace(/:(\w+)/g, '{$1}')]?.[route.method.toLowerCase()];
      const where = `${route.method} ${route.url}`;
      expect(operation, where).toBeDefined();
      if (!c || !operation) continue;
      expect({ where, summary: operation.summary, tags: operation.tags }).toEqual({
        where,
        summary: c.summary,
        tags: [...c.tags],
      });
      for (const status of successStatuses(c)) {
        const documented = operation.responses?.[String(status)];
        expect(documented, `${where} documents ${status}`).toBeDefined();
        const reply: Reply | undefined = c.response[status];
        if (reply === undefined || isEmptyReply(reply)) continue;
        const content = documented?.content ?? {};
        const type = isRawReply(reply) ? reply.contentType : 'application/json';
        expect(content[type]?.schema, `${where} ${status} ${type} has a schema`).toBeDefined();
      }
    }
  });

  it('describes every management route in OpenAPI 3.1 with the same permission', async () => {
    const res = await s.server.app.inject({ method: 'GET', url: '/api/v1/openapi.json' });
    expect(res.statusCode).toBe(200);
    const doc = res.json<{
      openapi: string;
      paths: Record<string, Record<string, { 'x-permission'?: string }>>;
    }>();
    expect(doc.openapi).toBe('3.1.0');
    const documented = new Set<string>();
    for (const [path, operations] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        const url = path.replace(/\{(\w+)\}/g, ':$1');
        const route = s.server.routes.find((r) => r.url === url && r.method.toLowerCase() === method);
        expect(route, `${method} ${path} is served`).toBeDefined();
        expect(operation['x-permission']).toBe(route?.access);
        documented.add(`${method.toUpperCase()} ${url}`);
      }
    }
    const api = s.server.routes.filter(
      (r) => r.url.startsWith('/api/v1/') && r.url !== '/api/v1/openapi.json',
    );
    for (const r of api)
      expect(documented.has(`${r.method} ${r.url}`), `${r.method} ${r.url} is documented`).toBe(true);
  });

  it('answers each role on each route as its permissions say (403 problem+json exactly when it lacks the permission)', async () => {
    const api = s.server.routes.filter((r) => r.url.startsWith('/api/v1/') && r.access !== 'public');
    let checked = 0;
    for (const route of api) {
      for (const role of roles) {
        const allowed = !route.access.includes(':') || can(role, route.access as Parameters<typeof can>[1]);
        // Streams that stay open; covered by their own tests.
        if ((route.url === '/api/v1/events' || route.url === '/api/v1/alerts/stream') && allowed) continue;
        const url = route.url.replace(':username', 'no-such-user').replace(':id', 'no-such-thing');
        const res = await s.server.app.inject({
          method: route.method as 'GET',
          url,
          headers: {
            authorization: `Bearer ${tokens.get(role)}`,
            ...(route.method === 'GET' || route.method === 'DELETE'
              ? {}
              : { 'content-type': 'application/json' }),
          },
          ...(route.method === 'GET' || route.method === 'DELETE' ? {} : { payload: '{}' }),
        });
        const body = /json/.test(String(res.headers['content-type']))
          ? (JSON.parse(res.body) as { code?: string })
          : {};
        const forbidden = res.statusCode === 403 && body.code === 'forbidden';
        if (NEVER_FOR_TOKENS.includes(route.access)) {
          expect(forbidden, `${role} ${route.method} ${route.url}: never with an API token`).toBe(true);
        } else {
          expect({ role, route: `${route.method} ${route.url}`, forbidden }).toEqual({
            role,
            route: `${route.method} ${route.url}`,
            forbidden: !allowed,
          });
        }
        if (res.statusCode >= 400) expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(100);
  });

  it('refuses unauthenticated calls to every non-public route before validating anything', async () => {
    for (const route of s.server.routes.filter(
      (r) => r.url.startsWith('/api/v1/') && r.access !== 'public',
    )) {
      const res = await s.server.app.inject({
        method: route.method as 'GET',
        url: route.url.replace(/:(\w+)/g, 'x'),
        ...(route.method === 'GET' || route.method === 'DELETE'
          ? {}
          : { payload: 'not json', headers: { 'content-type': 'application/json' } }),
      });
      expect({ route: `${route.method} ${route.url}`, status: res.statusCode }).toEqual({
        route: `${route.method} ${route.url}`,
        status: 401,
      });
    }
  });

  it('refuses every factor- and credential-management route to an API token of any role, viewer first (issue 11)', async () => {
    // Enumerated from the route table, so a route added later with one of these access levels is covered.
    const managed = s.server.routes.filter((r) => NEVER_FOR_TOKENS.includes(r.access));
    expect(managed.map((r) => `${r.method} ${r.url}`)).toEqual(
      expect.arrayContaining([
        'POST /api/v1/auth/recovery-codes',
        'GET /api/v1/auth/tokens',
        'POST /api/v1/auth/tokens',
        'DELETE /api/v1/auth/tokens/:id',
        'POST /api/v1/auth/totp',
        'POST /api/v1/auth/totp/confirm',
        'POST /api/v1/auth/second-factor',
        'GET /api/v1/auth/webauthn/credentials',
        'DELETE /api/v1/auth/webauthn/credentials/:id',
        'POST /api/v1/auth/webauthn/register/options',
      ]),
    );
    // What a token may still reach under /auth is reviewed here: a new route there must choose its level.
    const tokenReachable = s.server.routes.filter(
      (r) =>
        r.url.startsWith('/api/v1/auth/') && r.access !== 'public' && !NEVER_FOR_TOKENS.includes(r.access),
    );
    expect(tokenReachable.map((r) => `${r.method} ${r.url} ${r.access}`).sort()).toEqual([
      'GET /api/v1/auth/session signed-in',
      'POST /api/v1/auth/sign-out signed-in',
    ]);
    const adminTokens = await s.platform.users.listTokens({
      userId: (await s.platform.users.get('matrix-admin')).id,
    });
    const calls = [
      ...managed.map((r) => ({
        method: r.method,
        url: r.url.replace(':id', r.url.includes('tokens') ? adminTokens[0]!.id : 'x'),
        payload: r.method === 'GET' || r.method === 'DELETE' ? undefined : '{}',
      })),
      { method: 'POST', url: '/api/v1/auth/sign-out', payload: '{"everywhere":true}' },
    ];
    for (const role of ['viewer', 'admin'] as const) {
      for (const call of calls) {
        const res = await s.server.app.inject({
          method: call.method as 'GET',
          url: call.url,
          headers: {
            authorization: `Bearer ${tokens.get(role)}`,
            ...(call.payload ? { 'content-type': 'application/json' } : {}),
          },
          ...(call.payload ? { payload: call.payload } : {}),
        });
        expect({
          role,
          call: `${call.method} ${call.url}`,
          status: res.statusCode,
          code: res.json<{ code: string }>().code,
        }).toEqual({
          role,
          call: `${call.method} ${call.url}`,
          status: 403,
          code: 'forbidden',
        });
      }
    }
    // Nothing changed: the admin's token is still live, and no session of the owner was ended.
    expect(
      (
        await s.platform.users.listTokens({
          userId: (await s.platform.users.get('matrix-admin')).id,
        })
      ).every((t) => !t.revoked),
    ).toBe(true);
  });

  it('answers / and a browser navigation to a client-side route with the web console under its CSP (issue 20)', async () => {
    for (const [url, headers] of [
      ['/', {}],
      ['/devices', { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' }],
    ] as const) {
      const res = await s.server.app.inject({ method: 'GET', url, headers });
      expect({ url, status: res.statusCode, type: res.headers['content-type'] }).toEqual({
        url,
        status: 200,
        type: 'text/html; charset=utf-8',
      });
      expect(res.body).toMatch(/<script type="module" crossorigin src="\/assets\/[\w-]+\.js"><\/script>/);
      expect(res.headers['content-security-policy']).toMatch(/^default-src 'none'; script-src 'self'; /);
    }
  });

  it('answers an unknown path 404 problem+json, signed in or not; a route without declared access cannot be registered', async () => {
    for (const url of ['/nope', '/api/v1/nope', '/api/v1/devices/x/nope', '/.well-known/est/nope']) {
      for (const headers of [{}, { authorization: `Bearer ${tokens.get('viewer')}` }]) {
        const res = await s.server.app.inject({ method: 'GET', url, headers });
        expect({ url, status: res.statusCode, type: res.headers['content-type'] }).toEqual({
          url,
          status: 404,
          type: expect.stringMatching(/^application\/problem\+json/) as string,
        });
        expect(res.json()).toMatchObject({ code: 'not_found', status: 404, instance: url });
      }
    }
    const tls = (await s.platform.pki()).serverTls();
    const { app } = await createHttpApp({
      tls: { key: tls.keyPem, cert: tls.certPem, handshakeTimeoutMs: 10_000 },
      logger: createLogger('silent'),
      version: 'test',
      guard: { users: s.platform.users },
    });
    try {
      expect(() => app.get('/undeclared', () => 'open')).toThrow(/declares no access level/);
    } finally {
      await app.close();
    }
  });
});
