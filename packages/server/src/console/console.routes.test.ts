import Fastify, { type FastifyInstance } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BulwarkError } from '@bulwark/protocol';
import { fromFrameworkError, toProblem } from '../http/index.ts';
import { testTmpDir } from '../test-support/tmp.ts';
import { CONSOLE_CSP, consoleRoutes } from './console.routes.ts';
import { safeRelativePath } from './static-files.ts';

const PAGE =
  '<!doctype html><title>console</title><script type="module" src="/assets/index-A1b2.js"></script>';
const SECRET = 'master key material';

/** The console's routes and fallback on an app with the listener's problem handlers (http/app.ts). */
async function appServing(dir: string): Promise<FastifyInstance> {
  const app = Fastify();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  const web = consoleRoutes({ dir });
  app.setErrorHandler((err, request, reply) => {
    const problem = toProblem(fromFrameworkError(err), request.url);
    void reply.status(problem.status).type('application/problem+json').send(problem);
  });
  app.setNotFoundHandler(async (request, reply) => {
    if (await web.fallback(request, reply)) return reply;
    const problem = toProblem(new BulwarkError('not_found', `no route for ${request.url}`), request.url);
    return reply.status(404).type('application/problem+json').send(problem);
  });
  await app.register(web.register);
  await app.ready();
  return app;
}

describe('the console files (static handler)', () => {
  let tmp: string;
  let dist: string;
  let app: FastifyInstance;

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(testTmpDir(), 'bulwark-console-'));
    dist = path.join(tmp, 'dist');
    mkdirSync(path.join(dist, 'assets'), { recursive: true });
    writeFileSync(path.join(dist, 'index.html'), PAGE);
    writeFileSync(path.join(dist, 'assets', 'index-A1b2.js'), 'console.log(1);');
    writeFileSync(path.join(dist, 'assets', 'index-C3d4.css'), 'body{}');
    // Beside the build: what a traversal would be after.
    writeFileSync(path.join(tmp, 'secret.txt'), SECRET);
    symlinkSync(path.join(tmp, 'secret.txt'), path.join(dist, 'assets', 'link.txt'));
    app = await appServing(dist);
  });
  afterAll(async () => {
    await app?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('answers / with the page, under the strict CSP, revalidated on every load', async () => {
    const res = await app.inject({ method: 'GET', url: '/' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.body).toBe(PAGE);
    expect(res.headers['content-security-policy']).toBe(CONSOLE_CSP);
    expect(CONSOLE_CSP).toBe(
      "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
        "font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    );
    expect(res.headers['cache-control']).toBe('no-cache');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['x-frame-options']).toBe('DENY');
  });

  it('serves the hashed files with their type, the CSP and a year of caching', async () => {
    for (const [file, type] of [
      ['index-A1b2.js', 'text/javascript; charset=utf-8'],
      ['index-C3d4.css', 'text/css; charset=utf-8'],
    ] as const) {
      const res = await app.inject({ method: 'GET', url: `/assets/${file}` });
      expect({ file, status: res.statusCode, type: res.headers['content-type'] }).toEqual({
        file,
        status: 200,
        type,
      });
      expect(res.headers['cache-control']).toBe('public, max-age=31536000, immutable');
      expect(res.headers['content-security-policy']).toBe(CONSOLE_CSP);
    }
  });

  it('refuses every path that leaves the build (traversal, encoded separators, links out), with a 404 problem', async () => {
    const attempts = [
      '/assets/../index.html',
      '/assets/..%2f..%2fsecret.txt',
      '/assets/%2e%2e/%2e%2e/secret.txt',
      '/assets/..%5c..%5csecret.txt',
      '/assets/....//....//secret.txt',
      '/assets/.%2e/.%2e/secret.txt',
      '/assets/%00index-A1b2.js',
      '/assets/link.txt',
      '/assets/',
      '/assets/nope.js',
      `/assets/${'a/'.repeat(10)}x.js`,
    ];
    for (const url of attempts) {
      const res = await app.inject({ method: 'GET', url });
      expect({ url, status: res.statusCode, type: res.headers['content-type'] }).toEqual({
        url,
        status: 404,
        type: expect.stringMatching(/^application\/problem\+json/) as string,
      });
      expect(res.body).not.toContain(SECRET);
    }
    expect(safeRelativePath('assets/index-A1b2.js')).toBe(path.join('assets', 'index-A1b2.js'));
    for (const bad of [
      '',
      '..',
      '../x',
      'assets/../../x',
      '.env',
      'a\\b',
      'a\0b',
      'assets//x',
      '/etc/passwd',
    ])
      expect({ bad, safe: safeRelativePath(bad) }).toEqual({ bad, safe: undefined });
  });

  it('answers a browser navigation to a client-side route with the page; API paths and non-HTML requests keep the 404 problem', async () => {
    const html = { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' };
    for (const url of ['/devices', '/alerts', '/risk', '/devices/pump-1?tab=access']) {
      const res = await app.inject({ method: 'GET', url, headers: html });
      expect({ url, status: res.statusCode, body: res.body }).toEqual({ url, status: 200, body: PAGE });
      expect(res.headers['content-security-policy']).toBe(CONSOLE_CSP);
      expect(res.headers.vary).toBe('Accept');
    }
    const refused = [
      { method: 'GET', url: '/devices', headers: { accept: 'application/json' } },
      { method: 'GET', url: '/devices', headers: {} },
      { method: 'POST', url: '/devices', headers: html },
      { method: 'GET', url: '/api/v1/nope', headers: html },
      { method: 'GET', url: '/.well-known/est/nope', headers: html },
      { method: 'GET', url: '/metrics/x', headers: html },
      { method: 'GET', url: '/assets', headers: html },
    ] as const;
    for (const r of refused) {
      const res = await app.inject({ method: r.method, url: r.url, headers: r.headers });
      expect({ ...r, status: res.statusCode, type: res.headers['content-type'] }).toEqual({
        ...r,
        status: 404,
        type: expect.stringMatching(/^application\/problem\+json/) as string,
      });
    }
  });

  it('says clearly that the console must be built when it was not', async () => {
    const empty = path.join(tmp, 'not-built');
    mkdirSync(empty);
    const bare = await appServing(empty);
    try {
      for (const [url, headers] of [
        ['/', {}],
        ['/devices', { accept: 'text/html' }],
      ] as const) {
        const res = await bare.inject({ method: 'GET', url, headers });
        expect({ url, status: res.statusCode, type: res.headers['content-type'] }).toEqual({
          url,
          status: 503,
          type: expect.stringMatching(/^application\/problem\+json/) as string,
        });
        expect(res.json()).toMatchObject({
          code: 'unavailable',
          detail: expect.stringContaining('npm run build') as string,
        });
        expect(res.headers['content-security-policy']).toBe(CONSOLE_CSP);
      }
    } finally {
      await bare.close();
    }
  });
});
