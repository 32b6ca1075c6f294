import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { api, BulwarkError } from '@bulwark/protocol';
import type {} from '../http/index.ts'; // app.defineRoute
import type { AuditLog } from './audit-log.ts';
import type { EventBus } from './event-bus.ts';
import { eventTypes, type AuditEntry, type EventType } from './event-types.ts';

export interface AuditRoutesDeps {
  log: Pick<AuditLog, 'query' | 'verify' | 'readAfter'>;
  bus: Pick<EventBus, 'subscribe'>;
  /** Whether the asking principal may see this entry (a user limited to device groups sees only theirs). */
  visible(request: FastifyRequest, entry: AuditEntry): boolean | Promise<boolean>;
  keepAliveMs?: number;
}

function isEventType(type: string): type is EventType {
  return (eventTypes as readonly string[]).includes(type);
}

/** An event type as a query names it: one of the catalog's, or a validation error (400). */
function eventTypeOf(type: string | undefined): EventType | undefined {
  if (type === undefined) return undefined;
  if (!isEventType(type)) throw new BulwarkError('validation_failed', `type: unknown event type "${type}"`);
  return type;
}

/** The catalog's event types starting with a prefix (`device.`, `auth.sign_in`), or undefined without one. */
function typesWithPrefix(prefix: string | undefined): EventType[] | undefined {
  return prefix === undefined ? undefined : eventTypes.filter((t) => t.startsWith(prefix));
}

/** The audit log over HTTP: query, verify, and the live event stream (Server-Sent Events). */
export function auditRoutes(deps: AuditRoutesDeps) {
  return function register(app: FastifyInstance) {
    app.defineRoute(api.audit.query, {
      async handler({ request, query }) {
        const { typePrefix, ...filter } = query;
        const raw = await deps.log.query({
          ...filter,
          type: eventTypeOf(query.type),
          types: typesWithPrefix(typePrefix),
        });
        const entries: AuditEntry[] = [];
        for (const e of raw) if (await deps.visible(request, e)) entries.push(e);
        return { entries, next: raw.length === query.limit ? (raw[raw.length - 1]?.seq ?? null) : null };
      },
    });

    app.defineRoute(api.audit.verify, { handler: () => deps.log.verify() });

    app.defineRoute(api.audit.events, {
      async handler({ request, reply, query }) {
        await streamEvents(request, reply, {
          ...deps,
          types: query.types ? query.types.split(',').map((t) => t.trim()) : undefined,
        });
        return reply;
      },
    });
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
