import fastifySwagger from '@fastify/swagger';
import Fastify, { type FastifyInstance } from 'fastify';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { contract, noContent, raw } from '@bulwark/protocol';
import { defineRoute } from './define-route.ts';

const item = z.object({ id: z.string(), name: z.string() });

const show = contract({
  method: 'GET',
  path: '/api/v1/items/:id',
  summary: 'One item',
  tags: ['items'],
  access: 'public',
  params: z.object({ id: z.string().max(8) }),
  response: { 200: item },
});
const create = contract({
  method: 'POST',
  path: '/api/v1/items',
  summary: 'Add an item',
  tags: ['items'],
  access: 'public',
  body: z.object({ name: z.string().min(1) }),
  response: { 201: item },
});
const remove = contract({
  method: 'DELETE',
  path: '/api/v1/items/:id',
  summary: 'Remove an item',
  tags: ['items'],
  access: 'public',
  params: z.object({ id: z.string() }),
  response: { 204: noContent },
});
const text = contract({
  method: 'GET',
  path: '/api/v1/items.txt',
  summary: 'Items as text',
  tags: ['items'],
  access: 'public',
  response: { 200: raw('text/plain', 'one item per line') },
});

let app: FastifyInstance | undefined;
afterEach(async () => app?.close());

/** An in-process app with the compilers and OpenAPI generator the real listeners use. */
async function build(): Promise<FastifyInstance> {
  const a = Fastify();
  a.setValidatorCompiler(validatorCompiler);
  a.setSerializerCompiler(serializerCompiler);
  await a.register(fastifySwagger, {
    openapi: { openapi: '3.1.0', info: { title: 'test', version: '1' } },
    transform: jsonSchemaTransform,
  });
  // A stored row carries more than the contract's answer: the secret must never leave.
  defineRoute(a, show, {
    handler: ({ params }) => ({ id: params.id, name: 'pump', secret: 'never-sent' }) as z.input<typeof item>,
  });
  defineRoute(a, create, { handler: ({ body }) => ({ id: 'new', name: body.name }) });
  defineRoute(a, remove, { handler: () => undefined });
  defineRoute(a, text, { handler: ({ reply }) => reply.type('text/plain').send('a\nb\n') });
  await a.ready();
  return a;
}

describe('defineRoute: a route from its contract', () => {
  it('answers through the response schema: fields the contract does not name never leave', async () => {
    app = await build();
    const res = await app.inject({ method: 'GET', url: '/api/v1/items/p1' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ id: 'p1', name: 'pump' });
  });

  it("sends the contract's success status (201, 204 without a body) and raw bodies as declared", async () => {
    app = await build();
    const created = await app.inject({ method: 'POST', url: '/api/v1/items', payload: { name: 'valve' } });
    expect({ status: created.statusCode, body: created.json<unknown>() }).toEqual({
      status: 201,
      body: { id: 'new', name: 'valve' },
    });
    const removed = await app.inject({ method: 'DELETE', url: '/api/v1/items/p1' });
    expect({ status: removed.statusCode, body: removed.body }).toEqual({ status: 204, body: '' });
    const listed = await app.inject({ method: 'GET', url: '/api/v1/items.txt' });
    expect({ type: listed.headers['content-type'], body: listed.body }).toEqual({
      type: 'text/plain',
      body: 'a\nb\n',
    });
  });

  it('validates input with the contract before the handler runs', async () => {
    app = await build();
    const res = await app.inject({ method: 'POST', url: '/api/v1/items', payload: { name: '' } });
    expect(res.statusCode).toBe(400);
    const long = await app.inject({ method: 'GET', url: '/api/v1/items/much-too-long' });
    expect(long.statusCode).toBe(400);
  });

  it('documents each operation with its tags, summary and every declared answer', async () => {
    app = await build();
    const doc = app.swagger() as unknown as {
      paths: Record<
        string,
        Record<string, { summary: string; tags: string[]; responses: Record<string, unknown> }>
      >;
    };
    expect(doc.paths['/api/v1/items/{id}']?.get).toMatchObject({
      summary: 'One item',
      tags: ['items'],
      responses: { 200: { content: { 'application/json': { schema: expect.any(Object) as object } } } },
    });
    expect(doc.paths['/api/v1/items/{id}']?.delete?.responses['204']).toEqual({ description: 'No content' });
    expect(doc.paths['/api/v1/items.txt']?.get?.responses['200']).toMatchObject({
      content: { 'text/plain': { schema: { type: 'string' } } },
    });
  });
});
