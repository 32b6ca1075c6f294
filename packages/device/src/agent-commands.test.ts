import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { commandTopics } from '@bulwark/protocol';
import { createAgentCommands } from './agent-commands.ts';
import type { AgentView } from './builtin-commands.ts';

describe('agent commands wiring', () => {
  it('passes the retain flag to the router: a retained reboot is never run nor answered', async () => {
    const published: string[] = [];
    const errors: string[] = [];
    let reboots = 0;
    const client = {
      connected: true,
      publishAsync: (topic: string) => {
        published.push(topic);
        return Promise.resolve(undefined);
      },
    } as unknown as MqttClient;
    const view = {
      deviceId: () => 'pump-17',
      now: () => Date.now(),
      reboot: () => {
        reboots += 1;
      },
    } as unknown as AgentView;
    const commands = createAgentCommands({
      view,
      client: () => client,
      onResult: () => undefined,
      onError: (err) => errors.push(err.message),
    });
    const request = (id: string) =>
      Buffer.from(
        JSON.stringify({ id, issuedBy: 'user:ana', issuedAt: Date.now(), expiresAt: Date.now() + 10_000 }),
      );
    commands.onMessage(commandTopics.request('pump-17', 'reboot'), request('r-1'), { retain: true });
    await commands.router.idle();
    expect(published).toEqual([]);
    expect(errors).toEqual([
      expect.stringContaining('ignored a retained message on devices/pump-17/commands/reboot'),
    ]);
    commands.onMessage(commandTopics.request('pump-17', 'ping'), request('p-1'), { retain: false });
    await commands.router.idle();
    expect(published).toEqual([commandTopics.result('pump-17', 'ping')]);
    expect(reboots).toBe(0);
  });
});
