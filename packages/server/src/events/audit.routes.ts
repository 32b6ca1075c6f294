import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { AuditLog } from './audit-log.ts';
import type { EventBus } from './event-bus.ts';
import { eventTypes, type AuditEntry } from './event-types.ts';

export interface AuditRoutesDeps {
  log: Pick<AuditLog, 'query' | 'verify' | 'readAfter'>;
  bus: Pick<EventBus, 'subscribe'>;
  /** Whether the asking principal may see this entry (a user limited to device groups sees only theirs). */
  visible(request: FastifyRequest, entry: AuditEntry): boolean | Promise<boolean>;
  keepAliveMs?: number;
}

const entryOut = z.object({
  seq: z.number().int(),
  ts: z.number().int(),
  type: z.enum(eventTypes),
  actor: z.string(),
  subject: z.string().nullable(),
  data: z.record(z.string(), z.unknown()),
  prevHash: z.string(),
  hash: z.string(),
});

/** The audit log over HTTP: query, verify, and the live event stream (Server-Sent Events). */
export function auditRoutes(deps: AuditRoutesDeps) {
  return function register(root: FastifyInstance) {
    const app = root.withTypeProvider<ZodTypeProvider>();
    const tags = ['audit'];

    app.get(
      '/api/v1/audit',
      {
        config: { access: 'audit:read' },
        schema: {
          tags,
          summary: 'Query the audit log by time, type, actor and subject (keyset pagination with `after`)',
          querystring: z.object({
            from: z.coerce.number().int().optional().describe('epoch ms, inclusive'),
            to: z.coerce.number().int().optional().describe('epoch ms, exclusive'),
            type: z.enum(eventTypes).optional(),
            actor: z.string().max(256).optional(),
            subject: z.string().max(256).optional(),
            after: z.coerce.number().int().min(0).optional(),
            limit: z.coerce.number().int().min(1).max(1000).default(100),
          }),
          response: { 200: z.object({ entries: z.array(entryOut), next: z.number().int().nullable() }) },
        },
      },
      async (request) => {
        const q = request.query;
        const raw = await deps.log.query(q);
        const entries: AuditEntry[] = [];
        for (const e of raw) if (await deps.visible(request, e)) entries.push(e);
        return { entries, next: raw.length === q.limit ? (raw[raw.length - 1]?.seq ?? null) : null };
      },
    );

    app.get(
      '/api/v1/audit/verify',
      {
        config: { access: 'audit:verify' },
        schema: {
          tags,
          summary: 'Walk the hash chain, entry MACs and anchor; names the first bad entry',
          response: {
            200: z.object({
              ok: z.boolean(),
              entries: z.number().int(),
              headSeq: z.number().int(),
              badSeq: z.number().int().optional(),
              reason: z.string().optional(),
            }),
          },
        },
      },
      () => deps.log.verify(),
    );

    app.get(
      '/api/v1/events',
      {
        config: { access: 'events:read' },
        schema: {
          tags,
          summary:
            'Live security events as Server-Sent Events (text/event-stream); resumes after Last-Event-ID',
          querystring: z.object({
            types: z.string().max(2000).optional().describe('comma-separated event types'),
          }),
        },
      },
      (request, reply) =>
        streamEvents(request, reply, {
          ...deps,
          types: request.query.types ? request.query.types.split(',').map((t) => t.trim()) : undefined,
        }),
    );
  };
}

/**
 * Streams security events as Server-Sent Events: first what the durable log holds after Last-Event-ID
 * (so a reconnecting client misses nothing), then live ones, filtered by type and by what the principal may see.
 */
export async function streamEvents(
  request: FastifyRequest,
  reply: FastifyReply,
  deps: Pick<AuditRoutesDeps, 'bus' | 'visible' | 'keepAliveMs'> & {
    log: Pick<AuditLog, 'readAfter'>;
    types?: readonly string[] | undefined;
  },
): Promise<void> {
  const wanted = deps.types ? new Set(deps.types) : undefined;
  const lastId = Number(request.headers['last-event-id']);
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-store',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  let lastSent = 0;
  let chain = Promise.resolve();
  const send = (entry: AuditEntry) => {
    chain = chain.then(async () => {
      if (
        entry.seq <= lastSent ||
        (wanted && !wanted.has(entry.type)) ||
        !(await deps.visible(request, entry))
      )
        return;
      lastSent = entry.seq;
      res.write(`id: ${entry.seq}\nevent: ${entry.type}\ndata: ${JSON.stringify(entry)}\n\n`);
    });
  };
  const unsubscribe = deps.bus.subscribe(send);
  if (Number.isInteger(lastId) && lastId >= 0)
    for (const e of await deps.log.readAfter(lastId, 1000)) send(e);
  res.write(': connected\n\n');
  const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), deps.keepAliveMs ?? 15_000);
  request.raw.on('close', () => {
    clearInterval(keepAlive);
    unsubscribe();
  });
}
