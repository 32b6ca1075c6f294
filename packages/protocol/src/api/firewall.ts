import { z } from 'zod';
import { contract, noContent } from './contract.ts';
import { duration } from './shared.ts';

export const banKinds = ['address', 'device', 'certificate'] as const;
const tags = ['firewall'] as const;

export const ban = z.object({
  id: z.string(),
  kind: z.enum(banKinds),
  value: z.string().describe('an address or CIDR, a device id, or a certificate serial (lowercase hex)'),
  reason: z.string(),
  origin: z.enum(['manual', 'automatic']).describe('an operator or a response, or a firewall rule'),
  rule: z.string().nullable().describe('the firewall rule of an automatic ban'),
  actor: z.string(),
  createdAt: z.number().int(),
  expiresAt: z.number().int().nullable(),
  active: z.boolean(),
});

export const list = contract({
  method: 'GET',
  path: '/api/v1/bans',
  summary: 'Bans, active and expired, with reason, origin (manual, or automatic and its rule) and expiry',
  tags,
  access: 'policies:read',
  response: { 200: z.array(ban) },
});

export const add = contract({
  method: 'POST',
  path: '/api/v1/bans',
  summary:
    'Ban an address/CIDR (refused at TCP accept), a device or a certificate serial (refused at CONNECT)',
  tags,
  access: 'policies:write',
  body: z.object({
    kind: z.enum(banKinds),
    value: z.string().max(64),
    reason: z.string().max(256),
    ttl: duration.optional(),
  }),
  response: { 201: ban },
});

export const remove = contract({
  method: 'DELETE',
  path: '/api/v1/bans/:id',
  summary: 'Lift a ban',
  tags,
  access: 'policies:write',
  params: z.object({ id: z.string().max(64) }),
  response: { 204: noContent },
});
