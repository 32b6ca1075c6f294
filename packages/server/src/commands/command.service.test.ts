import { describe, expect, it } from 'vitest';
import { createCommandService } from './command.service.ts';

describe('the command service', () => {
  it('holds at most maxWaiting sends per process; beyond, unavailable and nothing is sent', async () => {
    const emitted: unknown[] = [];
    const service = createCommandService({
      events: {
        emit: (event: unknown) => {
          emitted.push(event);
          return Promise.resolve();
        },
        on: () => () => undefined,
        startTail: () => undefined,
      } as never,
      devices: {
        find: (id) => Promise.resolve({ id, status: 'active', online: true, lastSeenAt: null }),
      },
      now: () => 1_000,
      tailIntervalMs: 1_000,
      maxWaiting: 2,
    });
    const send = () => service.send({ deviceId: 'pump-1', name: 'ping', timeoutMs: 60_000, actor: 'cli' });
    const waiting = [send(), send()];
    await expect(send()).rejects.toMatchObject({
      code: 'unavailable',
      message: expect.stringContaining('nothing was sent') as unknown,
    });
    expect(emitted).toHaveLength(2);
    service.abandonWaits();
    for (const w of waiting) await expect(w).rejects.toMatchObject({ code: 'unavailable' });
    // Room again once they ended.
    const next = send();
    while (emitted.length < 3) await new Promise((resolve) => setTimeout(resolve, 1));
    service.abandonWaits();
    await expect(next).rejects.toThrow(/shutting down/);
  });
});
