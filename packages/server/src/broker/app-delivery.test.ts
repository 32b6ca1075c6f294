import { describe, expect, it } from 'vitest';
import type { SecurityEvent } from '../events/index.ts';
import { createAppDelivery } from './app-delivery.ts';
import type { BrokerSession } from './stages.ts';

describe('app delivery: drops per client id', () => {
  it('records the pending drops of a client id when its connection closes, and lets the client id go', () => {
    const events: SecurityEvent[] = [];
    let t = 1_000_000;
    const delivery = createAppDelivery({
      emit: (event) => void events.push(event),
      queueBytes: 100,
      now: () => t,
    });
    const counters = delivery.countersOf('billing');
    const session = { subject: 'app:billing', delivery: counters } as unknown as BrokerSession; // only what admit reads
    for (let i = 0; i < 200; i++) {
      const clientId = `billing/i-${i}`;
      // The first drop is recorded at once, the second waits for the window.
      expect(delivery.admit(session, { clientId, queued: 500, bytes: 10 })).toBe(false);
      expect(delivery.admit(session, { clientId, queued: 500, bytes: 10 })).toBe(false);
    }
    expect(delivery.trackedClients).toBe(200);
    expect(events).toHaveLength(200);
    t += 1;
    for (let i = 0; i < 200; i++) delivery.forget(`billing/i-${i}`);
    expect(delivery.trackedClients).toBe(0);
    // The drops still pending were recorded at the close, none lost.
    expect(events).toHaveLength(400);
    expect(counters.dropped).toBe(400);
    delivery.forget('billing/unknown');
    expect(delivery.trackedClients).toBe(0);
  });
});
