import type { z } from 'zod';
import { COMMAND_MAX_BYTES, commandResultSchema, commandTopics } from './commands.ts';
import { firmwareStateSchema, firmwareStatusSchema, firmwareTopics } from './firmware.ts';
import { heartbeatSchema } from './heartbeat.ts';
import { DEVICE_METRICS_MAX_BYTES, deviceMetricsSchema } from './metrics.ts';
import { SECURITY_REPORT_MAX_BYTES, securityTopics, signedReportSchema } from './security-reports.ts';
import { topics } from './topics.ts';

/**
 * One kind of message a device sends the platform over MQTT: where (a topic of the device's own subtree,
 * from {@link topics} or {@link firmwareTopics}) and what (the payload schema). The server parses and
 * validates a payload once, against this, before any handler sees it.
 */
export interface IngressRoute<S extends z.ZodType = z.ZodType> {
  /**
   * The topic for a device id, e.g. `topics.heartbeat` (`devices/{id}/heartbeat`). One level inside the
   * device's subtree may be `+` (`devices/{id}/commands/+/result`): the handler gets what it matched.
   */
  readonly topic: (deviceId: string) => string;
  /** The JSON payload's schema. */
  readonly schema: S;
  /** Payloads larger than this (bytes) are refused before they are parsed. */
  readonly maxBytes?: number;
}

/**
 * The device messages the platform consumes, by name.
 *
 * @example
 * ```ts
 * import { deviceIngress, type IngressPayload } from '@bulwark/protocol';
 * const beat: IngressPayload<'heartbeat'> = { ts: Date.now(), seq: 1, uptimeS: 42 };
 * client.publish(deviceIngress.heartbeat.topic('pump-17'), JSON.stringify(beat));
 * ```
 */
export const deviceIngress = {
  heartbeat: { topic: topics.heartbeat, schema: heartbeatSchema },
  firmwareStatus: { topic: firmwareTopics.status, schema: firmwareStatusSchema },
  firmwareState: { topic: firmwareTopics.state, schema: firmwareStateSchema },
  metrics: { topic: topics.metrics, schema: deviceMetricsSchema, maxBytes: DEVICE_METRICS_MAX_BYTES },
  /** A device's answer to a command (`devices/{id}/commands/{name}/result`); `+` is the command name. */
  commandResult: { topic: commandTopics.results, schema: commandResultSchema, maxBytes: COMMAND_MAX_BYTES },
  /** Signed physical-security reports (security-reports.ts): the JWS is verified by the server, not here. */
  tamper: {
    topic: securityTopics.tamper,
    schema: signedReportSchema,
    maxBytes: SECURITY_REPORT_MAX_BYTES + 64,
  },
  health: {
    topic: securityTopics.health,
    schema: signedReportSchema,
    maxBytes: SECURITY_REPORT_MAX_BYTES + 64,
  },
} as const satisfies Record<string, IngressRoute>;

export type IngressName = keyof typeof deviceIngress;

/** The validated payload of one ingress route. */
export type IngressPayload<N extends IngressName> = z.infer<(typeof deviceIngress)[N]['schema']>;

/** The part of a route's topic inside the device's subtree: `firmware/status` for `devices/{id}/firmware/status`. */
export function ingressSuffix(route: Pick<IngressRoute, 'topic'>): string {
  // Any valid device id shows where the id sits; the suffix is the same for every device.
  const sample = 'x';
  const topic = route.topic(sample);
  const prefix = topics.devicePrefix(sample);
  if (!topic.startsWith(prefix)) throw new Error(`ingress topic ${topic} is outside the device's subtree`);
  return topic.slice(prefix.length);
}
