import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import {
  BulwarkError,
  isEmptyReply,
  isRawReply,
  successStatuses,
  type Contract,
  type EmptyReply,
  type RawReply,
  type Reply,
} from '@bulwark/protocol';
import type { Principal } from '../users/index.ts';
import type { RouteAccess } from './access.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The operation's contract (protocol `api`): set by defineRoute, read by the route table and its test. */
    contract?: Contract;
  }
  interface FastifyInstance {
    /**
     * Registers a route from its contract (see defineRoute). A method of the app, so a module's routes file
     * needs no runtime import of the http adapter (which imports the modules back).
     */
    defineRoute<C extends ServedContract>(c: C, definition: RouteDefinition<C>): void;
  }
}

/** The principal the guard resolved. */
export type RequestPrincipal = Principal & { sessionIdHash?: string };

/** Routes that authenticate nobody (or devices themselves) have no principal; every other route has one. */
export type PrincipalFor<A> = A extends 'public' | 'device-credentials' ? null : RequestPrincipal;

type Parsed<S> = S extends z.ZodType ? z.output<S> : undefined;

type ReplyBody<R> = R extends z.ZodType
  ? z.input<R>
  : R extends EmptyReply
    ? undefined | void
    : R extends RawReply
      ? string | Buffer | NodeJS.ReadableStream
      : never;

/** What a handler returns: a body of one of the contract's statuses, or the reply it sent itself. */
export type HandlerResult<C extends Contract> = ReplyBody<C['response'][keyof C['response']]> | FastifyReply;

/** A handler's input, typed from the contract: parsed params, query and body, and the principal. */
export interface RouteInput<C extends Contract> {
  params: Parsed<C['params']>;
  query: Parsed<C['query']>;
  body: Parsed<C['body']>;
  principal: PrincipalFor<C['access']>;
  request: FastifyRequest;
  /** Its status is the contract's first success status; set another one here (e.g. 202) when needed. */
  reply: FastifyReply;
}

export interface RouteDefinition<C extends Contract> {
  handler(input: RouteInput<C>): HandlerResult<C> | Promise<HandlerResult<C>>;
  /** Fastify hooks run before the guard's decision is used (e.g. a redirect answered before the body is read). */
  onRequest?: (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
}

/** A contract whose access level is one the server knows (checked at compile time). */
export type ServedContract = Contract & { readonly access: RouteAccess };

/** How Fastify and the OpenAPI generator see one declared answer. */
function fastifyReply(reply: Reply): unknown {
  // `type: null` is how @fastify/swagger documents an answer without content; nothing is serialized.
  if (isEmptyReply(reply)) return z.null().describe(reply.description);
  if (isRawReply(reply)) {
    const schema = reply.binary ? z.string().meta({ format: 'binary' }) : z.string();
    return { description: reply.description, content: { [reply.contentType]: { schema } } };
  }
  return reply;
}

function fastifyResponses(c: Contract): Record<number, unknown> {
  const out: Record<number, unknown> = {};
  for (const [status, reply] of Object.entries(c.response)) out[Number(status)] = fastifyReply(reply);
  return out;
}

function principalOf<C extends Contract>(c: C, request: FastifyRequest): PrincipalFor<C['access']> {
  if (c.access === 'public' || c.access === 'device-credentials') return null as PrincipalFor<C['access']>;
  const principal = request.principal;
  // The guard refuses every non-public route without one; this keeps the handler's type honest.
  if (!principal) throw new BulwarkError('unauthenticated', 'not signed in');
  return principal as PrincipalFor<C['access']>;
}

/**
 * Registers one route from its contract: input validated by the contract's schemas (a 400 problem+json
 * otherwise), each JSON answer serialized through its response schema (unknown fields are stripped, a wrong
 * shape is a 500, never a leak), the OpenAPI operation (tags, summary, responses) and the access level the
 * guard enforces. The handler gets typed input and its principal; its result is sent with the contract's
 * first success status unless it set another one or sent the reply itself.
 */
export function defineRoute<C extends ServedContract>(
  app: FastifyInstance,
  c: C,
  definition: RouteDefinition<C>,
): void {
  const [status = 200] = successStatuses(c);
  app.route({
    method: c.method,
    url: c.path,
    config: { access: c.access, contract: c },
    schema: {
      tags: [...c.tags],
      summary: c.summary,
      ...(c.params ? { params: c.params } : {}),
      ...(c.query ? { querystring: c.query } : {}),
      ...(c.body ? { body: c.body } : {}),
      response: fastifyResponses(c),
    },
    ...(definition.onRequest ? { onRequest: definition.onRequest } : {}),
    handler: async (request, reply) => {
      void reply.status(status);
      const result = await definition.handler({
        params: request.params as Parsed<C['params']>,
        query: request.query as Parsed<C['query']>,
        body: request.body as Parsed<C['body']>,
        principal: principalOf(c, request),
        request,
        reply,
      });
      if (result === reply || reply.sent) return reply;
      return reply.send(result);
    },
  });
}

/** Gives every app and its plugins `app.defineRoute(contract, definition)`. */
export function installRouteDefinition(app: FastifyInstance): void {
  app.decorate('defineRoute', function define<
    C extends ServedContract,
  >(this: FastifyInstance, c: C, definition: RouteDefinition<C>) {
    defineRoute(this, c, definition);
  });
}
