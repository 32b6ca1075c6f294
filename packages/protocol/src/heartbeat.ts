import { z } from 'zod';

/**
 * What a device publishes on `devices/{id}/heartbeat`.
 *
 * @example
 * ```ts
 * const beat: Heartbeat = { ts: Date.now(), uptimeS: 42, seq: 1 };
 * ```
 */
export const heartbeatSchema = z.object({
  ts: z.number().int().nonnegative(),
  seq: z.number().int().nonnegative(),
  uptimeS: z.number().nonnegative(),
  agent: z.string().max(64).optional(),
  certNotAfter: z.number().int().optional(),
});
export type Heartbeat = z.infer<typeof heartbeatSchema>;
