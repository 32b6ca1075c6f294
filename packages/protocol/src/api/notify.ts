import { z } from 'zod';
import { contract, noContent } from './contract.ts';
import { severity } from './shared.ts';

export const channelKinds = ['webhook', 'syslog'] as const;
export const channelFormats = ['json', 'rfc5424', 'cef'] as const;
export const syslogTransports = ['tls', 'tcp'] as const;

const tags = ['notifications'] as const;
const params = z.object({ id: z.string().max(128) });

/** What a client sees of a channel: never the signing secret (only once, on creation or rotation). */
export const channel = z.object({
  id: z.string(),
  name: z.string(),
  kind: z.enum(channelKinds),
  format: z.enum(channelFormats),
  target: z.string(),
  settings: z.object({
    transport: z.enum(syslogTransports).optional(),
    facility: z.number().int().optional(),
    ca: z.string().optional(),
  }),
  filter: z.object({ types: z.array(z.string()), minSeverity: severity.optional() }),
  enabled: z.boolean(),
  cursor: z.number().int(),
  createdAt: z.number().int(),
  updatedAt: z.number().int(),
  status: z.object({
    attempts: z.number().int(),
    failing: z.boolean(),
    lastError: z.string().nullable(),
    nextAttemptAt: z.number().int().nullable(),
    lastDeliveredAt: z.number().int().nullable(),
    lag: z.number().int(),
  }),
});

const channelWithSecret = channel.extend({
  secret: z
    .string()
    .optional()
    .describe('The Standard Webhooks signing secret (whsec_…): shown this once, stored sealed'),
});

const filterIn = z.object({
  types: z.array(z.string().max(64)).max(50).optional(),
  minSeverity: severity.optional(),
});

export const list = contract({
  method: 'GET',
  path: '/api/v1/notification-channels',
  summary: 'Notification channels with their delivery status',
  tags,
  access: 'alerts:read',
  response: { 200: z.array(channel) },
});

export const create = contract({
  method: 'POST',
  path: '/api/v1/notification-channels',
  summary:
    'Add a webhook (Standard Webhooks signature) or syslog (RFC 5424 / CEF over TCP or TLS) channel; a webhook secret is returned once',
  tags,
  access: 'monitor:write',
  body: z.object({
    name: z.string().max(64),
    kind: z.enum(channelKinds),
    target: z.string().max(2048).describe('https:// URL for webhooks, host:port for syslog'),
    format: z.enum(channelFormats).optional(),
    transport: z.enum(syslogTransports).optional(),
    facility: z.number().int().min(0).max(23).optional(),
    ca: z.string().max(65536).optional(),
    filter: filterIn.optional(),
    enabled: z.boolean().optional(),
    from: z
      .union([z.enum(['head', 'beginning']), z.number().int().min(1)])
      .optional()
      .describe('head (default): only new events; beginning: the whole audit log; or a seq'),
  }),
  response: { 201: channelWithSecret },
});

export const get = contract({
  method: 'GET',
  path: '/api/v1/notification-channels/:id',
  summary: 'One channel (by id or name)',
  tags,
  access: 'alerts:read',
  params,
  response: { 200: channel },
});

export const update = contract({
  method: 'PATCH',
  path: '/api/v1/notification-channels/:id',
  summary: 'Change a channel; a changed channel is retried at once. rotateSecret returns a new secret once',
  tags,
  access: 'monitor:write',
  params,
  body: z.object({
    name: z.string().max(64).optional(),
    target: z.string().max(2048).optional(),
    format: z.enum(channelFormats).optional(),
    transport: z.enum(syslogTransports).optional(),
    facility: z.number().int().min(0).max(23).optional(),
    ca: z.string().max(65536).nullable().optional(),
    filter: filterIn.extend({ minSeverity: severity.nullable().optional() }).optional(),
    enabled: z.boolean().optional(),
    rotateSecret: z.boolean().optional(),
  }),
  response: { 200: channelWithSecret },
});

export const remove = contract({
  method: 'DELETE',
  path: '/api/v1/notification-channels/:id',
  summary: 'Remove a channel (what it has not delivered is not sent)',
  tags,
  access: 'monitor:write',
  params,
  response: { 204: noContent },
});

export const test = contract({
  method: 'POST',
  path: '/api/v1/notification-channels/:id/test',
  summary: 'Send a synthetic test message now and report whether the receiver took it',
  tags,
  access: 'monitor:write',
  params,
  response: {
    200: z.object({ ok: z.boolean(), error: z.string().optional(), durationMs: z.number().int() }),
  },
});
