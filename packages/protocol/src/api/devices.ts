import { z } from 'zod';
import { contract, pageOf, pageQuery } from './contract.ts';
import { duration } from './shared.ts';

/**
 * Lifecycle status: `registered` (not yet enrolled), `active`, `disabled`, `revoked` (final), `decommissioned`
 * (retired: certificates revoked, its data erased, a proof in the audit log; final, its id never reused),
 * `lost` (reported lost or stolen: certificates revoked, any reappearance alerts; `found` makes it
 * `registered` again, still quarantined until released).
 */
export const deviceStatuses = [
  'registered',
  'active',
  'disabled',
  'revoked',
  'decommissioned',
  'lost',
] as const;
/** What an operator sees: the status, or `quarantined` over the statuses quarantine restricts. */
export const deviceStates = [...deviceStatuses, 'quarantined'] as const;
export const revocationReasons = [
  'unspecified',
  'keyCompromise',
  'superseded',
  'cessationOfOperation',
] as const;

const time = z.number().int().nullable();
const id = z.string().max(64);
const params = z.object({ id });
const tags = ['devices'] as const;

export const device = z.object({
  id: z.string(),
  group: z.string().nullable(),
  status: z.enum(deviceStatuses).describe('lifecycle status'),
  state: z.enum(deviceStates).describe('effective state: the status, or quarantined'),
  attributes: z.record(z.string(), z.string()),
  createdAt: z.number().int(),
  updatedAt: z.number().int(),
  enrolledAt: time,
  revokedAt: time,
  quarantinedAt: time,
  lastSeenAt: time.describe('last MQTT connect or disconnect (epoch ms)'),
  online: z.boolean(),
  connectedSince: time,
  certificateExpiresAt: time.describe('notAfter of its newest certificate not revoked'),
});
export const deviceView = device.extend({
  zone: z.string().nullable(),
  firmwareVersion: z.string().nullable(),
  firmwareReportedAt: time,
});
export const deviceDetail = deviceView.extend({
  recentDenials: z.array(
    z.object({
      at: z.number().int(),
      type: z.enum(['mqtt.publish_denied', 'mqtt.subscribe_denied', 'mqtt.connect_refused']),
      topic: z.string().nullable(),
      reason: z.string(),
    }),
  ),
});

export const list = contract({
  method: 'GET',
  path: '/api/v1/devices',
  summary: 'List devices (keyset pagination: pass the last id as `after`)',
  tags,
  access: 'devices:read',
  query: z.object({
    group: id.optional(),
    status: z.enum(deviceStatuses).optional().describe('lifecycle status'),
    state: z.enum(deviceStates).optional().describe('effective state, e.g. quarantined'),
    ...pageQuery(),
  }),
  response: { 200: pageOf('devices', deviceView) },
});

export const show = contract({
  method: 'GET',
  path: '/api/v1/devices/:id',
  summary:
    'One device with its zone, firmware and latest refusals (denied publish/subscribe, refused connect)',
  tags,
  access: 'devices:read',
  params,
  response: { 200: deviceDetail },
});

/** A certificate's state now: `valid`, `revoked`, or `expired` (past its notAfter), or not valid yet. */
export const certificateStates = ['valid', 'not-yet-valid', 'expired', 'revoked'] as const;

export const deviceCertificate = z.object({
  serial: z.string().describe('hex, as in the CRL and the audit log'),
  notBefore: z.number().int(),
  notAfter: z.number().int(),
  revokedAt: time,
  state: z.enum(certificateStates).describe('revoked over expired: a revoked certificate stays revoked'),
});

export const certificates = contract({
  method: 'GET',
  path: '/api/v1/devices/:id/certificates',
  summary: "The device's certificates, newest first, revoked and expired ones too (no key material)",
  tags,
  access: 'devices:read',
  params,
  response: { 200: z.object({ certificates: z.array(deviceCertificate) }) },
});

export const add = contract({
  method: 'POST',
  path: '/api/v1/devices',
  summary: 'Register a device',
  tags,
  access: 'devices:write',
  body: z.object({ id, group: id.nullable().optional() }),
  response: { 201: device },
});

export const update = contract({
  method: 'PATCH',
  path: '/api/v1/devices/:id',
  summary: 'Change group and/or attributes',
  tags,
  access: 'devices:write',
  params,
  body: z.object({
    group: id.nullable().optional(),
    attributes: z.record(z.string(), z.string()).optional(),
  }),
  response: { 200: device },
});

export const enrollmentToken = contract({
  method: 'POST',
  path: '/api/v1/devices/:id/enrollment-token',
  summary: 'One-time enrollment token (shown once)',
  tags,
  access: 'devices:enroll',
  params,
  body: z.object({ ttl: duration.optional() }).default({}),
  response: { 201: z.object({ token: z.string(), expiresAt: z.number().int() }) },
});

export const revoke = contract({
  method: 'POST',
  path: '/api/v1/devices/:id/revoke',
  summary: 'Revoke the device and all its certificates (live sessions dropped within 1 s)',
  tags,
  access: 'devices:revoke',
  params,
  body: z
    .object({ reason: z.enum(revocationReasons).default('cessationOfOperation') })
    .default({ reason: 'cessationOfOperation' }),
  response: { 200: z.object({ revokedCertificates: z.array(z.string()) }) },
});

const reasonBody = z.object({ reason: z.string().max(256).optional() }).default({});

export const markLost = contract({
  method: 'POST',
  path: '/api/v1/devices/:id/lost',
  summary:
    'Report the device lost or stolen: revoke its certificates, quarantine any reappearance, alert when its identity or TPM is seen again',
  tags,
  access: 'devices:revoke',
  params,
  body: z
    .object({ reason: z.string().max(256).optional(), stolen: z.boolean().default(false) })
    .default({ stolen: false }),
  response: { 200: z.object({ revokedCertificates: z.array(z.string()) }) },
});

export const markFound = contract({
  method: 'POST',
  path: '/api/v1/devices/:id/found',
  summary:
    'A lost device is back: it becomes registered (a new enrollment token re-enrolls it) and stays quarantined until released',
  tags,
  access: 'devices:revoke',
  params,
  body: reasonBody,
  response: { 200: device },
});

export const decommission = contract({
  method: 'POST',
  path: '/api/v1/devices/:id/decommission',
  summary:
    'Retire the device: revoke its certificates, erase its data per the privacy rules, keep a proof event; its id is never reused',
  tags,
  access: 'devices:revoke',
  params,
  body: reasonBody,
  response: {
    200: z.object({
      revokedCertificates: z.array(z.string()),
      /** Records erased, by module (devices, telemetry, retained, attestation, …). */
      erased: z.record(z.string(), z.number().int()),
      /** The audit entry that proves it (its sequence number and hash). */
      proof: z.object({ seq: z.number().int(), hash: z.string() }).nullable(),
    }),
  },
});

export const disable = contract({
  method: 'POST',
  path: '/api/v1/devices/:id/disable',
  summary: 'Refuse the device until enabled again',
  tags,
  access: 'devices:write',
  params,
  body: reasonBody,
  response: { 200: device },
});

export const enable = contract({
  method: 'POST',
  path: '/api/v1/devices/:id/enable',
  summary: 'Let a disabled device connect again',
  tags,
  access: 'devices:write',
  params,
  body: reasonBody,
  response: { 200: device },
});

/** What a command came to: the device's answer (`ok`, `failed`, `refused`) or `timeout`. */
export const commandOutcomeStatuses = ['ok', 'failed', 'refused', 'timeout'] as const;

export const commandOutcome = z.object({
  commandId: z.string().describe('the command id the device answers with (audit log: device.command_*)'),
  status: z.enum(commandOutcomeStatuses),
  message: z
    .string()
    .optional()
    .describe(
      "the device's message, or for a timeout whether the device is online and when it was last seen",
    ),
  result: z.unknown().optional().describe("the device's result (JSON), when it sent one"),
  online: z.boolean().describe('whether the device is connected (true when it answered)'),
});

export const command = contract({
  method: 'POST',
  path: '/api/v1/devices/:id/commands',
  summary:
    'Send the device a command on devices/{id}/commands/{name} and wait for its answer. Every outcome answers ' +
    '200 with its status (ok, failed, refused, timeout): the command was sent and recorded either way; a ' +
    'timeout says whether the device is online. Timeout 1s to 10m (default 30s)',
  tags,
  access: 'devices:write',
  params,
  body: z
    .object({
      name: z.string().max(64).describe('the command name, one topic level: A-Z a-z 0-9 _ . -'),
      data: z
        .unknown()
        .optional()
        .describe('JSON the device receives as the request `data` (at most 16 KiB)'),
      timeout: duration.optional().describe('how long to wait for the answer, e.g. 30s (default 30s)'),
      timeoutMs: z.number().int().optional().describe('the same in milliseconds'),
    })
    .refine((b) => b.timeout === undefined || b.timeoutMs === undefined, {
      message: 'give timeout or timeoutMs, not both',
    }),
  response: { 200: commandOutcome },
});
