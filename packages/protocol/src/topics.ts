/**
 * MQTT topic layout. Every device owns `devices/{id}/#` and nothing else by default.
 *
 * @example
 * ```ts
 * import { topics } from '@bulwark/protocol';
 * client.publish(topics.heartbeat('pump-17'), JSON.stringify(beat));
 * ```
 */

/**
 * Device ids are also MQTT client ids, topic levels and HTTP Basic user names, so they may not contain
 * topic separators or wildcards (`/`, `+`, `#`), `$`, `:` (RFC 7617 §2), NUL, whitespace or `..`.
 * Up to 64 characters: MQTT 3.1.1 lets servers accept client ids longer than 23 bytes [MQTT-3.1.3-5].
 */
export const deviceIdPattern = /^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9])?$/;

export function deviceIdProblem(id: string): string | undefined {
  if (!deviceIdPattern.test(id)) {
    return 'device id must be 1-64 characters of A-Z a-z 0-9 _ . -, starting and ending with a letter or digit';
  }
  if (id.includes('..')) return 'device id must not contain ".."';
  return undefined;
}

export const isValidDeviceId = (id: string): boolean => deviceIdProblem(id) === undefined;

export const DEVICE_TOPIC_ROOT = 'devices';

export const topics = {
  /** Everything a device owns: `devices/{id}/#`. */
  deviceSubtree: (id: string) => `${DEVICE_TOPIC_ROOT}/${id}/#`,
  devicePrefix: (id: string) => `${DEVICE_TOPIC_ROOT}/${id}/`,
  heartbeat: (id: string) => `${DEVICE_TOPIC_ROOT}/${id}/heartbeat`,
  telemetry: (id: string) => `${DEVICE_TOPIC_ROOT}/${id}/telemetry`,
  /** Commands to the device: `devices/{id}/commands/{name}` (see `commandTopics`). */
  commands: (id: string) => `${DEVICE_TOPIC_ROOT}/${id}/commands`,
  /** Device-reported metrics (see `deviceMetricsSchema`). */
  metrics: (id: string) => `${DEVICE_TOPIC_ROOT}/${id}/metrics`,
} as const;
