import { heartbeatSchema, type Heartbeat } from '@bulwark/protocol';
import { AGENT_NAME } from './version.ts';

export interface HeartbeatInput {
  /** Sequence number, per agent run; gaps tell the server heartbeats were lost. */
  readonly seq: number;
  /** When the agent started, epoch ms. */
  readonly startedAt: number;
  /** Now, epoch ms. */
  readonly now: number;
  /** Expiry of the certificate in use, epoch ms; lets the fleet view spot devices failing to renew. */
  readonly certNotAfter: number;
}

/**
 * Builds the heartbeat payload and validates it against the shared contract, so a payload the
 * server would reject is caught on the device.
 *
 * @example
 * ```ts
 * const beat = buildHeartbeat({ seq: 0, startedAt, now: Date.now(), certNotAfter });
 * client.publish(topics.heartbeat(deviceId), JSON.stringify(beat), { qos: 1 });
 * ```
 */
export function buildHeartbeat(input: HeartbeatInput): Heartbeat {
  return heartbeatSchema.parse({
    ts: Math.floor(input.now),
    seq: input.seq,
    uptimeS: Math.max(0, Math.floor((input.now - input.startedAt) / 1000)),
    agent: AGENT_NAME,
    certNotAfter: Math.floor(input.certNotAfter),
  });
}
