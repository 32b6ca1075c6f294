import type { Logger } from 'pino';
import type { EventBus, EventType, SecurityEvent } from '../events/index.ts';

/** Records an event without waiting for it (the broker's hot path never awaits the audit log). */
export type Emit = <T extends EventType>(event: SecurityEvent<T>) => void;

export function createEmit(events: Pick<EventBus, 'emit'>, logger: Pick<Logger, 'error'>): Emit {
  return (event) => {
    events.emit(event).catch((err: unknown) => logger.error({ err }, 'cannot record broker event'));
  };
}

/** Read at scrape time by Prometheus; plain integers, nothing allocated on the hot path. */
export interface BrokerCounters {
  handshakeTimeouts: number;
  packetsTooLarge: number;
  /** Denied publishes by reason (a bounded set, never by device). */
  publishDenied: Map<string, number>;
}

export const createCounters = (): BrokerCounters => ({
  handshakeTimeouts: 0,
  packetsTooLarge: 0,
  publishDenied: new Map(),
});
