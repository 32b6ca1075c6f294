import { z } from 'zod';
import { contract, noContent, raw } from './contract.ts';
import { sse } from './audit.ts';
import { severity } from './shared.ts';

export const alertStatuses = ['open', 'acknowledged', 'resolved'] as const;
export const responseActions = ['quarantine', 'revoke', 'ban_address', 'disable_user', 'notify'] as const;
export const profileAttachmentKinds = ['all', 'group', 'zone', 'device'] as const;

/** The permission an operator needs, besides alerts:write, to run each response by hand (`respond`). */
export const responsePermissions = {
  quarantine: 'devices:quarantine',
  revoke: 'devices:revoke',
  ban_address: 'policies:write',
  disable_user: 'users:write',
  notify: 'alerts:write',
} as const satisfies Record<(typeof responseActions)[number], string>;

const tags = ['alerts'] as const;
const profileTags = ['security profiles'] as const;
const idParams = z.object({ id: z.string().max(64) });
const nameParams = z.object({ name: z.string().max(64) });

export const alert = z.object({
  id: z.string(),
  detector: z.string(),
  subject: z.string(),
  deviceId: z.string().nullable(),
  severity,
  status: z.enum(alertStatuses),
  title: z.string(),
  evidence: z.record(z.string(), z.unknown()),
  occurrences: z.number().int(),
  firstSeen: z.number().int(),
  lastSeen: z.number().int(),
  assignee: z.string().nullable(),
  notes: z.array(z.object({ at: z.number().int(), by: z.string(), text: z.string() })),
  acknowledgedAt: z.number().int().nullable(),
  acknowledgedBy: z.string().nullable(),
  resolvedAt: z.number().int().nullable(),
  resolvedBy: z.string().nullable(),
  resolution: z.string().nullable(),
  responsesRun: z
    .array(
      z.object({
        at: z.number().int(),
        action: z.string(),
        automatic: z.boolean(),
        actor: z.string(),
        ok: z.boolean(),
        detail: z.string().optional(),
      }),
    )
    .describe('responses run for this alert, oldest first'),
  responses: z.array(z.enum(responseActions)).describe('responses an operator may run on this alert'),
});

export const profile = z.object({
  id: z.string(),
  name: z.string(),
  version: z.number().int(),
  document: z.record(z.string(), z.unknown()),
  attachments: z.array(z.object({ kind: z.enum(profileAttachmentKinds), target: z.string() })),
  updatedAt: z.number().int(),
  updatedBy: z.string(),
});

export const listAlerts = contract({
  method: 'GET',
  path: '/api/v1/alerts',
  summary: 'Alerts, newest first, filtered',
  tags,
  access: 'alerts:read',
  query: z.object({
    status: z
      .string()
      .max(64)
      .optional()
      .describe('comma-separated: open, acknowledged, resolved (default: open,acknowledged)'),
    severity: severity.optional(),
    minSeverity: severity.optional(),
    detector: z.string().max(64).optional(),
    device: z.string().max(64).optional(),
    subject: z.string().max(128).optional(),
    assignee: z.string().min(1).max(64).optional().describe('alerts assigned to this user'),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
    before: z.coerce
      .number()
      .int()
      .optional()
      .describe('alerts last seen before this time (to page, use `cursor`: alerts sharing a millisecond)'),
    cursor: z
      .string()
      .max(200)
      .optional()
      .describe('paging: the `next` of the previous page; the alerts after it, in the same order'),
  }),
  response: {
    200: z.object({
      alerts: z.array(alert),
      next: z
        .string()
        .optional()
        .describe('when the page is full: the `cursor` of the next page (opaque; none on the last page)'),
    }),
  },
});

export const alertStream = contract({
  method: 'GET',
  path: '/api/v1/alerts/stream',
  summary: 'Alert transitions and responses as Server-Sent Events; resumes after Last-Event-ID',
  tags,
  access: 'alerts:read',
  response: { 200: sse },
});

export const getAlert = contract({
  method: 'GET',
  path: '/api/v1/alerts/:id',
  summary: 'One alert with its evidence, notes and the responses run and available',
  tags,
  access: 'alerts:read',
  params: idParams,
  response: { 200: alert },
});

export const acknowledge = contract({
  method: 'POST',
  path: '/api/v1/alerts/:id/acknowledge',
  summary: 'Acknowledge an alert',
  tags,
  access: 'alerts:write',
  params: idParams,
  response: { 200: alert },
});

export const resolve = contract({
  method: 'POST',
  path: '/api/v1/alerts/:id/resolve',
  summary: 'Resolve an alert with a resolution',
  tags,
  access: 'alerts:write',
  params: idParams,
  body: z.object({ resolution: z.string().min(1).max(1000) }).strict(),
  response: { 200: alert },
});

export const assign = contract({
  method: 'POST',
  path: '/api/v1/alerts/:id/assign',
  summary: 'Assign an alert to a user (null: unassign)',
  tags,
  access: 'alerts:write',
  params: idParams,
  body: z.object({ assignee: z.string().min(1).max(64).nullable() }).strict(),
  response: { 200: alert },
});

export const note = contract({
  method: 'POST',
  path: '/api/v1/alerts/:id/notes',
  summary: 'Add a note to an alert',
  tags,
  access: 'alerts:write',
  params: idParams,
  body: z.object({ text: z.string().min(1).max(2000) }).strict(),
  response: { 200: alert },
});

export const respond = contract({
  method: 'POST',
  path: '/api/v1/alerts/:id/respond',
  summary:
    'Run a response now (quarantine, revoke, ban_address, disable_user, notify); each action also needs its own permission (e.g. devices:quarantine)',
  tags,
  access: 'alerts:write',
  params: idParams,
  body: z.object({ action: z.enum(responseActions) }).strict(),
  response: { 200: alert },
});

export const listProfiles = contract({
  method: 'GET',
  path: '/api/v1/security-profiles',
  summary: 'Security profiles and their attachments',
  tags: profileTags,
  access: 'alerts:read',
  response: { 200: z.object({ profiles: z.array(profile) }) },
});

export const getProfile = contract({
  method: 'GET',
  path: '/api/v1/security-profiles/:name',
  summary: 'One security profile',
  tags: profileTags,
  access: 'alerts:read',
  params: nameParams,
  response: { 200: profile },
});

export const putProfile = contract({
  method: 'PUT',
  path: '/api/v1/security-profiles/:name',
  summary: 'Create or replace a security profile (behaviours, built-in detectors, responses)',
  tags: profileTags,
  access: 'monitor:write',
  params: nameParams,
  body: z.record(z.string(), z.unknown()),
  response: { 200: profile },
});

export const deleteProfile = contract({
  method: 'DELETE',
  path: '/api/v1/security-profiles/:name',
  summary: 'Delete a security profile',
  tags: profileTags,
  access: 'monitor:write',
  params: nameParams,
  response: { 204: noContent },
});

const profileAttachment = z
  .object({ kind: z.enum(profileAttachmentKinds), target: z.string().max(64).default('*') })
  .strict();

export const attachProfile = contract({
  method: 'POST',
  path: '/api/v1/security-profiles/:name/attachments',
  summary: 'Attach a profile to all devices, a group, a zone or a device',
  tags: profileTags,
  access: 'monitor:write',
  params: nameParams,
  body: profileAttachment,
  response: { 200: profile },
});

export const detachProfile = contract({
  method: 'DELETE',
  path: '/api/v1/security-profiles/:name/attachments',
  summary: 'Detach a profile',
  tags: profileTags,
  access: 'monitor:write',
  params: nameParams,
  body: profileAttachment,
  response: { 200: profile },
});

/**
 * A device's measured figures. The detector engine's description grows with its detectors: the fields
 * named here are the stable ones, the rest (windows, novelty, …) passes through as the engine reports it.
 */
export const deviceMetrics = z.looseObject({
  totals: z
    .object({
      messagesSent: z.number(),
      bytesSent: z.number(),
      messagesReceived: z.number(),
      bytesReceived: z.number(),
    })
    .nullable(),
  behaviours: z.array(z.looseObject({ name: z.string() })),
  openDetectors: z.array(z.string()),
});

export const deviceMetricsOf = contract({
  method: 'GET',
  path: '/api/v1/devices/:id/metrics',
  summary: "A device's measured figures: totals, rolling windows, its behaviours now, what it was seen doing",
  tags: ['devices'],
  access: 'devices:read',
  params: idParams,
  response: { 200: deviceMetrics },
});

export const prometheus = contract({
  method: 'GET',
  path: '/metrics',
  summary: 'Prometheus metrics (text exposition format)',
  tags: ['observability'],
  access: 'metrics:read',
  response: { 200: raw('text/plain', 'Prometheus text exposition format 0.0.4') },
});
