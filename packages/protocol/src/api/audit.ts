import { z } from 'zod';
import { contract, raw } from './contract.ts';

const tags = ['audit'] as const;
const eventType = z.string().max(64).describe('an event type, e.g. device.revoked (docs/events.md)');

export const auditEntry = z.object({
  seq: z.number().int(),
  ts: z.number().int(),
  type: z.string(),
  actor: z.string(),
  subject: z.string().nullable(),
  data: z.record(z.string(), z.unknown()),
  prevHash: z.string(),
  hash: z.string(),
});

export const query = contract({
  method: 'GET',
  path: '/api/v1/audit',
  summary:
    'Query the audit log by time, type (or type prefix), actor and subject, oldest or newest first (keyset pagination: `next` is the cursor for `after`, or for `before` with order=desc)',
  tags,
  access: 'audit:read',
  query: z.object({
    from: z.coerce.number().int().optional().describe('epoch ms, inclusive'),
    to: z.coerce.number().int().optional().describe('epoch ms, exclusive'),
    type: eventType.optional(),
    actor: z.string().max(256).optional(),
    subject: z.string().max(256).optional(),
    typePrefix: z
      .string()
      .max(64)
      .optional()
      .describe('event types starting with this, e.g. "device." or "auth.sign_in" (with `type`: both hold)'),
    after: z.coerce
      .number()
      .int()
      .min(0)
      .optional()
      .describe('entries after this seq: oldest first, the last seq seen'),
    before: z.coerce
      .number()
      .int()
      .min(0)
      .optional()
      .describe('entries before this seq: with order=desc, the last seq seen'),
    order: z
      .enum(['asc', 'desc'])
      .default('asc')
      .describe('asc: oldest first (page with `after`); desc: newest first (page with `before`)'),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  }),
  // The one page shape, with the sequence number as cursor (the last seq of the page, in its order).
  response: { 200: z.object({ entries: z.array(auditEntry), next: z.number().int().nullable() }) },
});

export const verify = contract({
  method: 'GET',
  path: '/api/v1/audit/verify',
  summary: 'Walk the hash chain, entry MACs and anchor; names the first bad entry',
  tags,
  access: 'audit:verify',
  response: {
    200: z.object({
      ok: z.boolean(),
      entries: z.number().int(),
      headSeq: z.number().int(),
      badSeq: z.number().int().optional(),
      reason: z.string().optional(),
    }),
  },
});

/** Server-Sent Events: each event is `id: <seq>`, `event: <type>`, `data: <auditEntry as JSON>`. */
export const sse = raw(
  'text/event-stream',
  'Server-Sent Events: `id` is the entry seq, `event` its type, `data` the audit entry as JSON',
);

export const events = contract({
  method: 'GET',
  path: '/api/v1/events',
  summary: 'Live security events as Server-Sent Events (text/event-stream); resumes after Last-Event-ID',
  tags,
  access: 'events:read',
  query: z.object({
    types: z.string().max(2000).optional().describe('comma-separated event types'),
  }),
  response: { 200: sse },
});
