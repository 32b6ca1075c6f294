import { compilePolicies, type AttachedPolicy, type DeviceAccess } from './compile.ts';
import { POLICY_VERSION } from './document.ts';

export const mqttActions = ['connect', 'publish', 'subscribe', 'receive'] as const;
export type MqttAction = (typeof mqttActions)[number];

export interface DevicePrincipal {
  deviceId: string;
  group: string | null;
}

/**
 * The built-in least-privilege policy, attached to every device: connect, and publish, subscribe and
 * receive only under `devices/{its id}/#`.
 */
export const DEFAULT_POLICY: AttachedPolicy = {
  name: 'device-default',
  version: 1,
  document: {
    version: POLICY_VERSION,
    statements: [
      {
        sid: 'own-topics',
        effect: 'allow',
        actions: ['mqtt:connect', 'mqtt:publish', 'mqtt:subscribe', 'mqtt:receive'],
        resources: ['devices/${device.id}/#'],
      },
    ],
  },
};

/**
 * What a quarantined device keeps: its quarantine subtree, its commands (it receives them on
 * `devices/{id}/commands/+` and answers on `…/commands/{name}/result`) so it can still be told what to do,
 * and its signed security reports (`devices/{id}/security/tamper` and `…/health`).
 */
export const QUARANTINE_POLICY: AttachedPolicy = {
  name: 'quarantine',
  version: 1,
  document: {
    version: POLICY_VERSION,
    statements: [
      { sid: 'quarantine-connect', effect: 'allow', actions: ['mqtt:connect'], resources: ['#'] },
      {
        sid: 'quarantine-topics',
        effect: 'allow',
        actions: ['mqtt:publish', 'mqtt:subscribe', 'mqtt:receive'],
        resources: ['devices/${device.id}/quarantine/#'],
      },
      {
        sid: 'quarantine-commands',
        effect: 'allow',
        actions: ['mqtt:subscribe', 'mqtt:receive'],
        resources: ['devices/${device.id}/commands/+'],
      },
      {
        sid: 'quarantine-command-results',
        effect: 'allow',
        actions: ['mqtt:publish'],
        resources: ['devices/${device.id}/commands/+/result'],
      },
      // Signed tamper and health reports still arrive (verified before they count): a held device says why.
      {
        sid: 'quarantine-security-reports',
        effect: 'allow',
        actions: ['mqtt:publish'],
        resources: ['devices/${device.id}/security/tamper', 'devices/${device.id}/security/health'],
      },
    ],
  },
};

/**
 * The built-in policy of every app: connect, and publish, subscribe and receive under `apps/{its name}/#`.
 * Anything else (device data, commands) comes from the policies attached to the app (its grants).
 */
export const APP_DEFAULT_POLICY: AttachedPolicy = {
  name: 'app-default',
  version: 1,
  document: {
    version: POLICY_VERSION,
    statements: [
      {
        sid: 'app-own-topics',
        effect: 'allow',
        actions: ['mqtt:connect', 'mqtt:publish', 'mqtt:subscribe', 'mqtt:receive'],
        resources: ['apps/${app.name}/#'],
      },
    ],
  },
};

/** The default access of a device with no other policy and no zones (used where no store is at hand). */
export function compileDeviceAccess(principal: DevicePrincipal): DeviceAccess {
  return compilePolicies({
    ctx: {
      deviceId: principal.deviceId,
      group: principal.group,
      zone: null,
      attributes: {},
      cert: { cn: principal.deviceId },
      state: 'active',
      sourceAddress: null,
    },
    policies: [DEFAULT_POLICY],
    segmentation: { zones: [], conduits: [] },
    deviceZone: () => undefined,
  });
}
