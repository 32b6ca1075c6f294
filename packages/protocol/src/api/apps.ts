import { z } from 'zod';
import { appNamePattern } from '../commands.ts';
import { contract, noContent } from './contract.ts';
import { duration } from './shared.ts';

/**
 * Applications: backends that read fleet data and command devices over MQTT, as principals of their own
 * (`app:<name>`), with grants (policy statements in the short form of docs/apps.md) and a declared purpose
 * (a fideslang data use). Credentials: tokens (MQTT user name = app name, password = token, TLS only) and
 * X.509 client certificates signed from a CSR.
 */
const tags = ['apps'] as const;

export const appStatuses = ['active', 'revoked'] as const;

const appName = z
  .string()
  .max(48)
  .regex(appNamePattern, 'app name must be 1-48 characters of a-z 0-9 -, starting with a letter');
const purpose = z.string().max(128).describe('a fideslang data use, e.g. analytics.reporting');
const grant = z
  .string()
  .max(512)
  .describe('"<subscribe|publish|pubsub> <filter> [group:G] [zone:Z] [device:D]…"');

export const app = z.object({
  name: z.string(),
  purpose: z.string().nullable().describe('fideslang data use; null: no device data may be granted'),
  zone: z.string().nullable(),
  description: z.string().nullable(),
  status: z.enum(appStatuses),
  grants: z.array(z.string()).describe('the grants of its policy app.<name>, in order'),
  createdAt: z.number().int(),
  updatedAt: z.number().int(),
  revokedAt: z.number().int().nullable(),
});

export const appToken = z.object({
  id: z.string(),
  createdAt: z.number().int(),
  createdBy: z.string(),
  expiresAt: z.number().int().nullable().describe('null: no expiry'),
  lastUsedAt: z.number().int().nullable(),
  lastUsedFrom: z.string().nullable().describe('the address of the last use'),
  revokedAt: z.number().int().nullable(),
});

export const appCertificate = z.object({
  serial: z.string(),
  notBefore: z.number().int(),
  notAfter: z.number().int(),
  revokedAt: z.number().int().nullable(),
});

export const appDelivery = z.object({
  messages: z.number().int(),
  bytes: z.number().int(),
  dropped: z.number().int().describe('messages dropped because a connection did not keep up'),
  queuedBytes: z.number().int().describe('bytes waiting in its connections when last reported'),
  connections: z.number().int(),
  updatedAt: z.number().int().nullable().describe('the newest report of any node; null: never delivered'),
});

export const appDetail = app.extend({
  tokens: z.array(appToken),
  certificates: z.array(appCertificate),
  delivery: appDelivery,
});

const params = z.object({ name: z.string().max(64) });

export const list = contract({
  method: 'GET',
  path: '/api/v1/apps',
  summary: 'Applications with their purpose, zone, status and grants',
  tags,
  access: 'apps:read',
  response: { 200: z.array(app) },
});

export const show = contract({
  method: 'GET',
  path: '/api/v1/apps/:name',
  summary: 'One application: grants, tokens (never the secrets), certificates and delivery counters',
  tags,
  access: 'apps:read',
  params,
  response: { 200: appDetail },
});

export const create = contract({
  method: 'POST',
  path: '/api/v1/apps',
  summary: 'Add an application (a principal of its own) with its purpose, zone and grants',
  tags,
  access: 'apps:write',
  body: z.object({
    name: appName,
    purpose: purpose.optional(),
    zone: z.string().max(64).optional(),
    description: z.string().max(256).optional(),
    grants: z.array(grant).max(256).optional(),
  }),
  response: { 201: app },
});

export const update = contract({
  method: 'PATCH',
  path: '/api/v1/apps/:name',
  summary: "Change an application's purpose, zone or description (null clears it)",
  tags,
  access: 'apps:write',
  params,
  body: z.object({
    purpose: purpose.nullable().optional(),
    zone: z.string().max(64).nullable().optional(),
    description: z.string().max(256).nullable().optional(),
  }),
  response: { 200: app },
});

export const revoke = contract({
  method: 'DELETE',
  path: '/api/v1/apps/:name',
  summary: 'Revoke an application: its certificates and tokens with it; its live sessions end within 1 s',
  tags,
  access: 'apps:write',
  params,
  query: z.object({ reason: z.string().max(256).optional() }),
  response: { 200: app },
});

export const putGrants = contract({
  method: 'PUT',
  path: '/api/v1/apps/:name/grants',
  summary: "Replace an application's grants (its policy app.<name>); an empty list removes them all",
  tags,
  access: 'apps:write',
  params,
  body: z.object({ grants: z.array(grant).max(256) }),
  response: { 200: app },
});

export const createdToken = z.object({
  id: z.string(),
  token: z.string().describe('the MQTT password (user name = app name); shown only now'),
  expiresAt: z.number().int().nullable(),
});

export const createToken = contract({
  method: 'POST',
  path: '/api/v1/apps/:name/tokens',
  summary: 'Create an MQTT token for an application (shown once, stored hashed)',
  tags,
  access: 'apps:write',
  params,
  body: z.object({ ttl: duration.optional() }),
  response: { 201: createdToken },
});

export const listTokens = contract({
  method: 'GET',
  path: '/api/v1/apps/:name/tokens',
  summary: "An application's tokens with expiry and last use (never the secrets)",
  tags,
  access: 'apps:read',
  params,
  response: { 200: z.array(appToken) },
});

export const revokeToken = contract({
  method: 'DELETE',
  path: '/api/v1/apps/:name/tokens/:id',
  summary: 'Revoke one token; the sessions it authenticated end within 1 s',
  tags,
  access: 'apps:write',
  params: z.object({ name: z.string().max(64), id: z.string().max(64) }),
  response: { 204: noContent },
});

export const issuedCertificate = z.object({
  serial: z.string(),
  certificatePem: z.string(),
  chainPem: z.string().describe('issuing CA then root'),
  notAfter: z.number().int(),
});

export const issueCertificate = contract({
  method: 'POST',
  path: '/api/v1/apps/:name/certificates',
  summary: 'Sign a client certificate for an application from its PKCS#10 request (PEM or base64 DER)',
  tags,
  access: 'apps:write',
  params,
  body: z.object({ csr: z.string().max(24_000) }),
  response: { 201: issuedCertificate },
});
