import type { MqttClient } from 'mqtt';
import { commandTopics } from '@bulwark/protocol';
import { builtinCommands, type AgentView } from './builtin-commands.ts';
import { createCommandRouter, type CommandHandler, type CommandOutcome } from './commands.ts';
import { asError } from './emitter.ts';

export interface AgentCommandsDeps {
  readonly view: AgentView;
  /** The device's own handlers; they replace built-ins of the same name. */
  readonly handlers?: Readonly<Record<string, CommandHandler>> | undefined;
  /** The connection in use, if any. */
  readonly client: () => MqttClient | undefined;
  readonly onResult: (outcome: CommandOutcome) => void;
  readonly onError: (err: Error) => void;
}

/** Results kept while disconnected, sent at the next connect; the oldest go first when full. */
const MAX_PENDING_RESULTS = 100;
/** How long `stop` waits for running commands (their `signal` is aborted first). */
const STOP_WAIT_MS = 2_000;

/**
 * Commands in the agent: subscribes to `devices/{id}/commands/+` at every connect, runs the built-ins
 * (`ping`, `report-state`, `reboot`) and the device's handlers, and publishes each result with QoS 1. A
 * result that cannot be sent (the connection dropped) is sent again after the next connect.
 */
export function createAgentCommands(deps: AgentCommandsDeps) {
  const pending: { topic: string; payload: string }[] = [];

  function queue(topic: string, payload: string): void {
    if (pending.length >= MAX_PENDING_RESULTS) {
      pending.shift();
      deps.onError(new Error('dropped a command result: too many waiting for a connection'));
    }
    pending.push({ topic, payload });
  }

  async function publish(topic: string, payload: string): Promise<void> {
    const client = deps.client();
    if (!client?.connected) {
      queue(topic, payload);
      return;
    }
    try {
      await client.publishAsync(topic, payload, { qos: 1 });
    } catch {
      // Cut short by a lost connection: the next session sends it (the server ignores a result it has).
      queue(topic, payload);
    }
  }

  const router = createCommandRouter({
    deviceId: deps.view.deviceId,
    handlers: { ...builtinCommands(deps.view), ...deps.handlers },
    publish,
    now: deps.view.now,
    onResult: deps.onResult,
    onError: deps.onError,
  });

  function flush(): void {
    for (const { topic, payload } of pending.splice(0)) void publish(topic, payload);
  }

  return {
    router,
    /** After CONNACK: subscribe to this device's commands, then send the results that waited. */
    onConnect(client: MqttClient): void {
      client.subscribe(commandTopics.all(deps.view.deviceId()), { qos: 1 }, (err, granted) => {
        if (err) deps.onError(err);
        // SUBACK 0x80 [MQTT-3.9.3]: the broker's policy refused the subscription.
        else if (granted?.some((grant) => grant.qos === 128))
          deps.onError(
            new Error(`the broker refused the subscription to ${commandTopics.all(deps.view.deviceId())}`),
          );
      });
      flush();
    },
    /** A retained command (`packet.retain`) is ignored by the router, never run. */
    onMessage(topic: string, payload: Buffer, packet?: { readonly retain?: boolean }): void {
      router.handle(topic, payload, packet).catch((err: unknown) => deps.onError(asError(err)));
    },
    /** Aborts running handlers and waits (briefly) for their results to go out. */
    async stop(): Promise<void> {
      router.close();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        router.idle(),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, STOP_WAIT_MS))),
      ]);
      clearTimeout(timer);
    },
  };
}

export type AgentCommands = ReturnType<typeof createAgentCommands>;
