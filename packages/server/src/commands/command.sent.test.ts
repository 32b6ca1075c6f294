import { describe, expect, it } from 'vitest';
import type { AuditEntry } from '../events/index.ts';
import { createSentCommands } from './command.sent.ts';

type Sent = AuditEntry<'device.command_sent'>;

/** A bus with only `on('device.command_sent')`, fed by hand. */
function fakeBus() {
  let handler: ((entry: Sent) => void) | undefined;
  return {
    on: ((_type: string, h: (entry: Sent) => void) => {
      handler = h;
      return () => undefined;
    }) as never,
    sent(commandId: string, deviceId: string) {
      handler?.({
        type: 'device.command_sent',
        subject: `device:${deviceId}`,
        data: { commandId, name: 'ping', issuedAt: 0, expiresAt: 1, via: 'platform' },
      } as Sent);
    },
  };
}

describe('the ids of recently sent commands', () => {
  it('accepts one result per id sent to that device, within the window and the count bound', async () => {
    const bus = fakeBus();
    let now = 1_000;
    const sent = createSentCommands(bus, {
      now: () => now,
      settings: { maxIds: 3, windowMs: 60_000, graceMs: 10 },
    });
    bus.sent('a', 'pump-1');
    expect(await sent.claim('a', 'pump-2')).toBe(false);
    expect(await sent.claim('a', 'pump-1')).toBe(true);
    expect(await sent.claim('a', 'pump-1')).toBe(false);
    expect(await sent.claim('never', 'pump-1')).toBe(false);
    for (const id of ['b', 'c', 'd', 'e']) bus.sent(id, 'pump-1');
    expect(sent.size()).toBe(3);
    expect(await sent.claim('b', 'pump-1')).toBe(false);
    expect(await sent.claim('c', 'pump-1')).toBe(true);
    now += 60_001;
    expect(await sent.claim('d', 'pump-1')).toBe(false);
    expect(sent.size()).toBe(0);
  });

  it('waits a short while for a command recorded after the device got it (an app over MQTT)', async () => {
    const bus = fakeBus();
    const sent = createSentCommands(bus, { now: () => 0, settings: { graceMs: 5_000, maxPending: 1 } });
    const claim = sent.claim('x', 'pump-1');
    // The second unknown id finds the waiting room full: refused at once, without waiting.
    expect(await sent.claim('y', 'pump-1')).toBe(false);
    bus.sent('x', 'pump-1');
    expect(await claim).toBe(true);
  });
});
