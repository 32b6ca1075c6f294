import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { can, roles, type Principal, type Role } from '../users/index.ts';
import { startTestServer, type TestServer } from '../test-support/server.ts';

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
        if (route.access === 'factor-enrolment') {
          expect(forbidden, `${role} ${route.method} ${route.url}: tokens cannot enrol factors`).toBe(true);
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
});
