import { DEVICE_TOPIC_ROOT } from '@bulwark/protocol';

export const mqttActions = ['connect', 'publish', 'subscribe', 'receive'] as const;
export type MqttAction = (typeof mqttActions)[number];

export interface Decision {
  readonly allow: boolean;
  /** Machine-readable reason, carried into the denial event. */
  readonly reason: string;
}

export interface DevicePrincipal {
  deviceId: string;
  group: string | null;
}

/** A device's access, compiled once per connection; each check is a string comparison, no allocation. */
export interface DeviceAccess {
  readonly deviceId: string;
  publish(topic: string): Decision;
  subscribe(filter: string): Decision;
  /** For deliveries (authorizeForward): may this device receive a message on `topic`? */
  receive(topic: string): boolean;
}

const ALLOW_OWN: Decision = Object.freeze({ allow: true, reason: 'own_subtree' });
const DENY_RESERVED: Decision = Object.freeze({ allow: false, reason: 'reserved_topic' });
const DENY_OUTSIDE: Decision = Object.freeze({ allow: false, reason: 'outside_own_subtree' });

/**
 * The default least-privilege rule: a device may publish, subscribe and receive only under
 * `devices/{its id}/#`. `$`-topics ($SYS, $share…) are never reachable. Device ids cannot contain
 * `/`, `+`, `#` or `..` (see protocol's deviceIdPattern), so the prefix cannot be widened by the id.
 * The policy engine replaces this rule; the broker calls only {@link DeviceAccess}.
 */
export function compileDeviceAccess(principal: DevicePrincipal): DeviceAccess {
  const exact = `${DEVICE_TOPIC_ROOT}/${principal.deviceId}`;
  const prefix = `${exact}/`;
  const own = (topic: string) => topic === exact || topic.startsWith(prefix);
  const decide = (topic: string): Decision => {
    if (topic.charCodeAt(0) === 36 /* $ */) return DENY_RESERVED;
    return own(topic) ? ALLOW_OWN : DENY_OUTSIDE;
  };
  return {
    deviceId: principal.deviceId,
    publish: decide,
    // A filter inside the own prefix cannot match another device's topic whatever wildcards follow.
    subscribe: decide,
    receive: (topic) => topic.charCodeAt(0) !== 36 && own(topic),
  };
}
