/**
 * What the broker delivers to applications, per app: messages, bytes and drops, and the bound on what waits
 * in an app's connection. A slow app never holds up devices or other apps: once its connection holds more
 * than `queueBytes` unsent, messages to it are dropped and counted (`app.delivery_dropped`, at most once per
 * 10 s per client id, with the count).
 */
import type { Emit } from './emit.ts';
import type { DeliveryReport } from '../apps/index.ts';
import type { AppDeliveryCounters, BrokerSession } from './stages.ts';

/** One app's delivery figures (broker.appDeliveryStats(), Prometheus, apps.recordDelivery). */
export type AppDeliveryStats = DeliveryReport;

export interface AppDeliveryDeps {
  emit: Emit;
  /** Bytes an app connection may hold unsent before messages to it are dropped (limits.appQueueBytes). */
  queueBytes: number;
  /** How often at most a client id's drops are recorded (default 10 s). */
  eventWindowMs?: number;
  now?: () => number;
}

interface PendingDrops {
  subject: string;
  count: number;
  queuedBytes: number;
  lastEventAt: number;
  timer: NodeJS.Timeout | undefined;
}

export function createAppDelivery(deps: AppDeliveryDeps) {
  const windowMs = deps.eventWindowMs ?? 10_000;
  const now = deps.now ?? Date.now;
  const counters = new Map<string, AppDeliveryCounters>();
  const drops = new Map<string, PendingDrops>();

  function record(clientId: string, pending: PendingDrops): void {
    if (pending.count === 0) return;
    deps.emit({
      type: 'app.delivery_dropped',
      actor: 'system',
      subject: pending.subject,
      data: { dropped: pending.count, queuedBytes: pending.queuedBytes, windowMs, clientId },
    });
    pending.count = 0;
    pending.lastEventAt = now();
  }

  function dropped(session: BrokerSession, clientId: string, queued: number): void {
    if (session.delivery) session.delivery.dropped += 1;
    let pending = drops.get(clientId);
    if (!pending) {
      pending = { subject: session.subject, count: 0, queuedBytes: 0, lastEventAt: 0, timer: undefined };
      drops.set(clientId, pending);
    }
    pending.count += 1;
    pending.queuedBytes = queued;
    const wait = pending.lastEventAt + windowMs - now();
    if (wait <= 0) {
      record(clientId, pending);
      return;
    }
    // The drops since the last event are recorded when the window ends, even if no more come.
    const p = pending;
    p.timer ??= setTimeout(() => {
      p.timer = undefined;
      record(clientId, p);
    }, wait).unref();
  }

  return {
    /** The counters of an app, shared by its sessions (made on first use). */
    countersOf(app: string): AppDeliveryCounters {
      let c = counters.get(app);
      if (!c) {
        c = { messages: 0, bytes: 0, dropped: 0 };
        counters.set(app, c);
      }
      return c;
    },
    /**
     * At delivery of `bytes` to an app session whose connection holds `queued` bytes unsent: whether it goes
     * out (counted) or is dropped (counted, recorded).
     */
    admit(session: BrokerSession, delivery: { clientId: string; queued: number; bytes: number }): boolean {
      const c = session.delivery;
      if (!c) return true;
      if (delivery.queued > deps.queueBytes) {
        dropped(session, delivery.clientId, delivery.queued);
        return false;
      }
      c.messages += 1;
      c.bytes += delivery.bytes;
      return true;
    },
    /**
     * A connection of this client id closed: its drops not yet recorded are recorded now, and the client id
     * is let go (the map would otherwise keep every client id that ever had a drop).
     */
    forget(clientId: string): void {
      const pending = drops.get(clientId);
      if (!pending) return;
      if (pending.timer) clearTimeout(pending.timer);
      record(clientId, pending);
      drops.delete(clientId);
    },
    /** Client ids with drops tracked (tests). */
    get trackedClients(): number {
      return drops.size;
    },
    /** Over the bound: the share groups pass such a member over. */
    overBound: (queued: number): boolean => queued > deps.queueBytes,
    /** Per app: the counters since start, with what its live connections hold and how many there are. */
    stats(live: (app: string) => { queuedBytes: number; connections: number }): AppDeliveryStats[] {
      return [...counters].map(([app, c]) => ({ app, ...c, ...live(app) }));
    },
  };
}

export type AppDelivery = ReturnType<typeof createAppDelivery>;
