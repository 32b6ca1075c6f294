import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { firmwareCommandSchema, firmwareTopics, type FirmwareStatus } from '@bulwark/protocol';
import { createAbInstaller, type Installer } from './ab-installer.ts';
import { createFirmwareUpdater } from './firmware-updater.ts';
import type { DeviceIdentity } from './identity-store.ts';

/** Firmware updates in the agent. */
export interface AgentFirmwareOptions {
  /** This device's hardware/model id; only targets listing it are installed. */
  readonly hardwareId: string;
  /** Default: A/B image slots in `<identity dir>/firmware`. */
  readonly installer?: Installer | undefined;
  /** What the device shipped with, for the default installer. */
  readonly factory?: { readonly version: string; readonly securityVersion: number } | undefined;
  /** TUF root JSON provisioned with the device; else `1.root.json` is fetched over mutual TLS at first use. */
  readonly trustedRoot?: string | undefined;
}

export interface FirmwareAgentDeps {
  readonly options: AgentFirmwareOptions;
  readonly dir: string;
  readonly identity: () => DeviceIdentity;
  readonly client: () => MqttClient | undefined;
  readonly onStatus: (status: FirmwareStatus) => void;
  readonly onError: (err: Error) => void;
}

/**
 * The MQTT side of firmware updates: subscribes to `devices/{id}/firmware/command`, reports what runs on
 * `…/firmware/state` at every connect and each update step on `…/firmware/status` (QoS 1). The device's
 * own subtree is all it uses.
 */
export function createFirmwareAgent(deps: FirmwareAgentDeps) {
  const installer =
    deps.options.installer ??
    createAbInstaller({ dir: join(deps.dir, 'firmware'), factory: deps.options.factory });
  let running: Promise<void> | undefined;
  /** Commands already taken (rollout, attempt, target): the server repeats a command a device may have missed. */
  const taken = new Set<string>();

  const publish = (topic: string, payload: unknown) =>
    new Promise<void>((resolve) => {
      const client = deps.client();
      if (!client?.connected) {
        resolve(); // the state report at the next connect tells the server where things stand
        return;
      }
      client.publish(topic, JSON.stringify(payload), { qos: 1 }, (err) => {
        if (err) deps.onError(err);
        resolve();
      });
    });

  function updaterFor(identity: DeviceIdentity) {
    return createFirmwareUpdater({
      dir: deps.dir,
      serverUrl: identity.serverUrl,
      tls: { ca: identity.caPem, key: identity.keyPem, cert: identity.certPem },
      hardwareId: deps.options.hardwareId,
      installer,
      trustedRoot: deps.options.trustedRoot,
      report: async (status) => {
        deps.onStatus(status);
        await publish(firmwareTopics.status(identity.deviceId), status);
      },
    });
  }

  async function publishState(): Promise<void> {
    const identity = deps.identity();
    await publish(firmwareTopics.state(identity.deviceId), await updaterFor(identity).state());
  }

  return {
    installer,
    /** After CONNACK: listen for commands and say what runs. */
    onConnect(client: MqttClient): void {
      const { deviceId } = deps.identity();
      client.subscribe(firmwareTopics.command(deviceId), { qos: 1 }, (err) => {
        if (err) deps.onError(err);
      });
      publishState().catch((err: unknown) => deps.onError(err as Error));
    },
    /** Handles a message if it is a firmware command; returns false otherwise. */
    onMessage(topic: string, payload: Buffer): boolean {
      const identity = deps.identity();
      if (topic !== firmwareTopics.command(identity.deviceId)) return false;
      let json: unknown;
      try {
        json = JSON.parse(payload.toString('utf8'));
      } catch {
        deps.onError(new Error('ignored a firmware command that is not JSON'));
        return true;
      }
      const parsed = firmwareCommandSchema.safeParse(json);
      if (!parsed.success) {
        deps.onError(
          new Error(`ignored an invalid firmware command: ${parsed.error.issues[0]?.message ?? ''}`),
        );
        return true;
      }
      const key = `${parsed.data.rolloutId ?? ''}:${parsed.data.attempt ?? ''}:${parsed.data.target}`;
      if (parsed.data.rolloutId !== undefined && taken.has(key)) return true;
      taken.add(key);
      if (taken.size > 1000) taken.clear();
      const previous = running ?? Promise.resolve();
      // One update at a time; a command arriving meanwhile runs after (the updater refuses duplicates itself).
      running = previous
        .then(async () => {
          await updaterFor(deps.identity()).update(parsed.data);
          await publishState();
        })
        .catch((err: unknown) => deps.onError(err as Error))
        .finally(() => {
          if (running === current) running = undefined;
        });
      const current = running;
      return true;
    },
    /** Resolves when no update is running. */
    async idle(): Promise<void> {
      while (running) await running;
    },
  };
}

export type FirmwareAgent = ReturnType<typeof createFirmwareAgent>;
