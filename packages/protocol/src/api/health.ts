import { z } from 'zod';
import { contract } from './contract.ts';

export const storeStates = ['up', 'down'] as const;
const tags = ['health'] as const;

const store = z.object({
  state: z.enum(storeStates),
  since: z.number().int().describe('when it last changed state (epoch ms)'),
});

export const health = contract({
  method: 'GET',
  path: '/health',
  summary: 'Liveness: 200 while the process serves at all (a database outage is no reason to restart)',
  tags,
  access: 'public',
  response: { 200: z.object({ status: z.literal('ok'), store }) },
});

export const ready = contract({
  method: 'GET',
  path: '/ready',
  summary: 'Readiness: 503 problem+json `unavailable` (with Retry-After) while the database does not answer',
  tags,
  access: 'public',
  response: { 200: z.object({ status: z.literal('ready'), store }) },
});
