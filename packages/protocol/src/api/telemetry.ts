/**
 * The optional telemetry store: topic patterns whose device messages are kept (with a retention each), and
 * the stored messages of one device by time range (docs/telemetry.md).
 *
 * @example
 * ```ts
 * import { api } from '@bulwark/protocol';
 * const page = api.telemetry.query.response[200].parse(await res.json()); // { items: [...], next }
 * ```
 */
import { z } from 'zod';
import { contract, pageQuery } from './contract.ts';
import { duration } from './shared.ts';

const tags = ['telemetry'] as const;

/** Shortest and longest retention a pattern may have. */
export const RETENTION_MIN_MS = 60_000;
export const RETENTION_MAX_MS = 10 * 365 * 86_400_000;

/** A time in a query: epoch milliseconds or an ISO 8601 date-time. */
export const timeParam = z
  .string()
  .max(40)
  .describe('epoch milliseconds or an ISO 8601 date-time')
  .transform((text, ctx) => {
    const ms = /^\d+$/.test(text) ? Number(text) : Date.parse(text);
    if (!Number.isSafeInteger(ms)) {
      ctx.addIssue({
        code: 'custom',
        message: `"${text}" is neither epoch milliseconds nor an ISO date-time`,
      });
      return z.NEVER;
    }
    return ms;
  });

export const pattern = z.object({
  pattern: z.string().describe('an MQTT topic filter under devices/+/… or devices/<id>/…'),
  retentionMs: z.number().int().describe('stored messages older than this are deleted'),
  createdAt: z.number().int(),
  updatedAt: z.number().int(),
  createdBy: z.string(),
  messages: z.number().int().describe('messages stored under this pattern'),
  oldestAt: z.number().int().nullable().describe('when the oldest stored message arrived (epoch ms)'),
});

export const message = z.object({
  id: z.string().describe('sorts in arrival order'),
  topic: z.string(),
  receivedAt: z.number().int(),
  payload: z.unknown().describe('the payload as a JSON value when it is JSON, else null'),
  payloadBase64: z.string(),
  bytes: z.number().int(),
});

export const query = contract({
  method: 'GET',
  path: '/api/v1/devices/:id/telemetry',
  summary:
    'Stored messages a device published, in arrival order (keyset pagination: pass `next` as `after`; a page may hold fewer than `limit` when `topic` is a filter)',
  tags,
  access: 'devices:read',
  params: z.object({ id: z.string().max(64) }),
  query: z.object({
    from: timeParam.optional().describe('received at or after (epoch ms or ISO)'),
    to: timeParam.optional().describe('received before (epoch ms or ISO)'),
    topic: z.string().max(256).optional().describe('a topic, or an MQTT filter such as devices/pump-1/#'),
    ...pageQuery({ max: 1000, default: 100 }),
  }),
  response: { 200: z.object({ items: z.array(message), next: z.string().nullable() }) },
});

export const patterns = contract({
  method: 'GET',
  path: '/api/v1/telemetry/patterns',
  summary: 'Topic patterns whose messages are stored, with retention, stored count and oldest message',
  tags,
  access: 'devices:read',
  response: { 200: z.array(pattern) },
});

export const setPattern = contract({
  method: 'PUT',
  path: '/api/v1/telemetry/patterns',
  summary: 'Store the messages of a topic pattern (or change its retention, 1m to 10 years)',
  tags,
  access: 'policies:write',
  body: z.object({ pattern: z.string().max(256), retention: duration }),
  response: { 200: pattern },
});

export const removePattern = contract({
  method: 'DELETE',
  path: '/api/v1/telemetry/patterns/:pattern',
  summary: 'Stop storing a pattern and delete its stored messages (the pattern URL-encoded)',
  tags,
  access: 'policies:write',
  params: z.object({ pattern: z.string().max(256) }),
  response: { 200: z.object({ pattern: z.string(), deleted: z.number().int() }) },
});
