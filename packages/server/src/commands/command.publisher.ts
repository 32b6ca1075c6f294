import { commandTopics } from '@bulwark/protocol';
import { deviceIdOf, type EventBus } from '../events/index.ts';
import { encodeRequest, requestOf } from './command.rules.ts';

export interface CommandPublisherDeps {
  events: Pick<EventBus, 'on'>;
  /** Publishes through this process's broker (QoS 1). */
  publish(topic: string, payload: string): Promise<void>;
  now: () => number;
  onError(err: unknown, what: string): void;
}

/**
 * The server process's part: every `device.command_sent` the platform recorded (here, in the CLI or on
 * another node: the audit-log tail brings those) is published to `devices/{id}/commands/{name}`, unless it
 * expired meanwhile. Each node publishes; only the node holding the device's session delivers. Commands an
 * app published over MQTT (`via: mqtt`) went to the device already. Returns what stops it.
 */
export function startCommandPublisher(deps: CommandPublisherDeps): () => void {
  return deps.events.on('device.command_sent', (entry) => {
    const { commandId, name, issuedAt, expiresAt, via, data } = entry.data;
    const deviceId = deviceIdOf(entry.subject);
    if (via !== 'platform' || deviceId === undefined) return;
    if (expiresAt !== null && expiresAt <= deps.now()) return;
    let payload: string;
    try {
      payload = encodeRequest(requestOf({ commandId, actor: entry.actor, issuedAt, expiresAt, data }));
    } catch (err) {
      deps.onError(err, `command ${commandId} to ${deviceId}`);
      return;
    }
    deps
      .publish(commandTopics.request(deviceId, name), payload)
      .catch((err: unknown) => deps.onError(err, `command ${commandId} to ${deviceId}`));
  });
}
