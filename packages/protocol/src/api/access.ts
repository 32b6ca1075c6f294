import { z } from 'zod';
import { attestationStandings } from './attestation.ts';
import { contract, noContent, raw } from './contract.ts';

export const attachmentKinds = ['all', 'group', 'zone', 'device', 'app'] as const;
const tags = ['policies'] as const;
const segmentationTags = ['segmentation'] as const;
const deviceTags = ['devices'] as const;
const nameParams = z.object({ name: z.string().max(64) });
const idParams = z.object({ id: z.string().max(64) });

/** A policy document as saved: validated on the way in (see docs/policies.md), answered as written. */
const policyDocument = z.unknown().describe('the policy document (docs/policies.md)');

export const policy = z.object({
  name: z.string(),
  version: z.number().int(),
  builtin: z.boolean(),
  document: policyDocument,
  attachments: z.array(z.object({ kind: z.string(), target: z.string() })),
  updatedAt: z.number().int(),
});

export const decision = z.object({
  allow: z.boolean(),
  reason: z.string(),
  statement: z.string().optional(),
  policy: z.string().optional(),
  deviceId: z.string(),
  action: z.string(),
  topic: z.string().nullable(),
  zone: z.string().nullable(),
  /** The device's attestation standing (issue 17), and the hold it puts on its access when it does. */
  attestation: z.enum(attestationStandings).optional(),
  held: z
    .string()
    .optional()
    .describe('e.g. "held by attestation: contraindicated": only quarantine applies'),
});

export const zone = z.object({
  name: z.string(),
  securityLevel: z.number().int().min(1).max(4),
  description: z.string().optional(),
  members: z.object({
    groups: z.array(z.string()).optional(),
    attributes: z.record(z.string(), z.string()).optional(),
  }),
  addresses: z.array(z.string()),
});

export const conduit = z.object({
  name: z.string(),
  from: z.string(),
  to: z.string(),
  topics: z.array(z.string()),
  direction: z.enum(['one-way', 'two-way']),
  rateCap: z.number().int().optional(),
  ports: z.array(z.number().int()),
});

const appliedStatement = z.object({
  policy: z.string(),
  sid: z.string(),
  effect: z.enum(['allow', 'deny']),
  actions: z.array(z.string()),
  resources: z.array(z.string()),
});

export const deviceAccess = z.object({
  deviceId: z.string(),
  zone: z.string().nullable(),
  quarantined: z.boolean(),
  attestation: z.enum(attestationStandings).optional(),
  held: z.string().optional().describe('e.g. "held by attestation: overdue": only quarantine applies'),
  statements: z.array(appliedStatement),
  dropped: z.array(z.object({ policy: z.string(), statement: z.string(), reason: z.string() })),
});

export const listPolicies = contract({
  method: 'GET',
  path: '/api/v1/policies',
  summary: 'Policies (built-in ones included) and their attachments',
  tags,
  access: 'policies:read',
  response: { 200: z.array(policy) },
});

export const getPolicy = contract({
  method: 'GET',
  path: '/api/v1/policies/:name',
  summary: 'One policy with its attachments',
  tags,
  access: 'policies:read',
  params: nameParams,
  response: { 200: policy },
});

export const policyVersions = contract({
  method: 'GET',
  path: '/api/v1/policies/:name/versions',
  summary: 'Every saved version',
  tags,
  access: 'policies:read',
  params: nameParams,
  response: {
    200: z.array(
      z.object({
        version: z.number().int(),
        actor: z.string(),
        createdAt: z.number().int(),
        document: policyDocument,
      }),
    ),
  },
});

export const putPolicy = contract({
  method: 'PUT',
  path: '/api/v1/policies/:name',
  summary: 'Create or replace a policy (a new version); warns when it locks out devices or grants everything',
  tags,
  access: 'policies:write',
  params: nameParams,
  body: z.unknown(),
  response: {
    200: z.object({
      name: z.string(),
      version: z.number().int(),
      warnings: z.array(z.object({ code: z.string(), statement: z.string(), message: z.string() })),
    }),
  },
});

export const deletePolicy = contract({
  method: 'DELETE',
  path: '/api/v1/policies/:name',
  summary: 'Delete a policy and its attachments',
  tags,
  access: 'policies:write',
  params: nameParams,
  response: { 204: noContent },
});

const attachment = z.object({ kind: z.enum(attachmentKinds), target: z.string().max(64).default('*') });

export const attach = contract({
  method: 'POST',
  path: '/api/v1/policies/:name/attachments',
  summary: 'Attach to all devices, a group, a zone, a device or an app (kind app: the app’s grants)',
  tags,
  access: 'policies:write',
  params: nameParams,
  body: attachment,
  response: { 204: noContent },
});

export const detach = contract({
  method: 'DELETE',
  path: '/api/v1/policies/:name/attachments',
  summary: 'Detach from all devices, a group, a zone, a device or an app',
  tags,
  access: 'policies:write',
  params: nameParams,
  body: attachment,
  response: { 204: noContent },
});

export const simulate = contract({
  method: 'POST',
  path: '/api/v1/policies/simulate',
  summary: 'Would this device be allowed to connect/publish/subscribe/receive? Names the deciding statement',
  tags,
  access: 'policies:read',
  body: z.object({
    deviceId: z.string().max(64),
    action: z.enum(['connect', 'publish', 'subscribe', 'receive']),
    topic: z.string().max(1024).optional(),
    sourceAddress: z.string().max(64).optional(),
    attestation: z
      .enum(attestationStandings)
      .optional()
      .describe('a standing to try (default: the current one)'),
  }),
  response: { 200: decision },
});

const segmentBody = z.record(z.string(), z.unknown());

export const listZones = contract({
  method: 'GET',
  path: '/api/v1/zones',
  summary: 'Zones (IEC 62443-3-2)',
  tags: segmentationTags,
  access: 'policies:read',
  response: { 200: z.array(zone) },
});

export const putZone = contract({
  method: 'PUT',
  path: '/api/v1/zones/:name',
  summary: 'Create or replace a zone',
  tags: segmentationTags,
  access: 'policies:write',
  params: nameParams,
  body: segmentBody,
  response: { 200: zone },
});

export const deleteZone = contract({
  method: 'DELETE',
  path: '/api/v1/zones/:name',
  summary: 'Delete a zone',
  tags: segmentationTags,
  access: 'policies:write',
  params: nameParams,
  response: { 204: noContent },
});

export const listConduits = contract({
  method: 'GET',
  path: '/api/v1/conduits',
  summary: 'Conduits between zones',
  tags: segmentationTags,
  access: 'policies:read',
  response: { 200: z.array(conduit) },
});

export const putConduit = contract({
  method: 'PUT',
  path: '/api/v1/conduits/:name',
  summary: 'Create or replace a conduit',
  tags: segmentationTags,
  access: 'policies:write',
  params: nameParams,
  body: segmentBody,
  response: { 200: conduit },
});

export const deleteConduit = contract({
  method: 'DELETE',
  path: '/api/v1/conduits/:name',
  summary: 'Delete a conduit',
  tags: segmentationTags,
  access: 'policies:write',
  params: nameParams,
  response: { 204: noContent },
});

export const nftables = contract({
  method: 'GET',
  path: '/api/v1/segmentation/nftables',
  summary: 'The zones and conduits as an nftables ruleset (default drop)',
  tags: segmentationTags,
  access: 'policies:read',
  query: z.object({
    broker: z.string().max(512).optional().describe('comma-separated Bulwark host addresses'),
  }),
  response: { 200: raw('text/plain', 'an nftables ruleset (nft -f)') },
});

export const describeAccess = contract({
  method: 'GET',
  path: '/api/v1/devices/:id/access',
  summary: 'What the device can do now: zone, quarantine, applied and dropped statements',
  tags: deviceTags,
  access: 'devices:read',
  params: idParams,
  response: { 200: deviceAccess },
});

const reasonBody = z.object({ reason: z.string().max(256).optional() }).default({});

export const quarantine = contract({
  method: 'POST',
  path: '/api/v1/devices/:id/quarantine',
  summary: 'Quarantine: only devices/{id}/quarantine/# and its command topic remain',
  tags: deviceTags,
  access: 'devices:quarantine',
  params: idParams,
  body: reasonBody,
  response: { 204: noContent },
});

export const release = contract({
  method: 'POST',
  path: '/api/v1/devices/:id/release',
  summary: 'End quarantine',
  tags: deviceTags,
  access: 'devices:quarantine',
  params: idParams,
  body: reasonBody,
  response: { 204: noContent },
});
