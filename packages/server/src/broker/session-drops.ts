/**
 * Messages the core dropped for a session: its queue full (`mqtt.maxQueuedMessages`), too large for the
 * client's Maximum Packet Size, or expired while waiting. The core counts them per client id (its
 * `stats().dropsByClient`); this records them as `mqtt.delivery_dropped`, at most once per window (10 s)
 * per client id, with the count since the last one. One timer per broker, off the hot path: it reads the
 * counts every second, so the first drops of a client are recorded within a second.
 */
import { subjectIdOf, subjectOf } from '../events/index.ts';
import type { Emit } from './emit.ts';

export interface SessionDropDeps {
  emit: Emit;
  /** Drops per client id since each session began (the core's `stats().dropsByClient`). */
  dropsByClient(): Record<string, number>;
  /**
   * The subject of a client id's live session, if any (an app instance's is its app). A session kept
   * offline is a device's (apps always connect with a clean session): `device:<client id>`.
   */
  liveSubjectOf(clientId: string): string | undefined;
  /** How often at most a client id's drops are recorded (default 10 s). */
  windowMs?: number | undefined;
  now?: (() => number) | undefined;
}

interface Seen {
  /** The session's drop count at its last event, and now. */
  reported: number;
  latest: number;
  lastEventAt: number;
}

/**
 * The subject of a session key the registry no longer holds: an app instance's key is `app:<client id>`
 * (`app:billing/a` → `app:billing`, its app), anything else a device id.
 */
function subjectOfKey(key: string): string {
  const clientId = subjectIdOf(key, 'app');
  if (clientId === undefined) return subjectOf.device(key);
  return subjectOf.app(clientId.split('/')[0] ?? clientId);
}

export function createSessionDropReports(deps: SessionDropDeps) {
  const windowMs = deps.windowMs ?? 10_000;
  const now = deps.now ?? Date.now;
  const seen = new Map<string, Seen>();

  function record(clientId: string, entry: Seen, at: number): void {
    const dropped = entry.latest - entry.reported;
    if (dropped <= 0) return;
    deps.emit({
      type: 'mqtt.delivery_dropped',
      actor: 'system',
      subject: deps.liveSubjectOf(clientId) ?? subjectOfKey(clientId),
      data: { dropped, windowMs, clientId },
    });
    entry.reported = entry.latest;
    entry.lastEventAt = at;
  }

  /** Reads the counts; records each client id whose window has passed since its last event. */
  function sweep(flush = false): void {
    const counts = deps.dropsByClient();
    const at = now();
    for (const [clientId, drops] of Object.entries(counts)) {
      let entry = seen.get(clientId);
      if (!entry) {
        entry = { reported: 0, latest: 0, lastEventAt: Number.NEGATIVE_INFINITY };
        seen.set(clientId, entry);
      }
      // Fewer than before: a new session of that client id, counting from 0 again.
      if (drops < entry.latest) entry.reported = 0;
      entry.latest = drops;
      if (flush || at - entry.lastEventAt >= windowMs) record(clientId, entry, at);
    }
    // A session gone (ended, expired): what it dropped since its last event is recorded, and it is let go.
    for (const [clientId, entry] of seen)
      if (!Object.hasOwn(counts, clientId)) {
        record(clientId, entry, at);
        seen.delete(clientId);
      }
  }

  const timer = setInterval(() => sweep(), Math.min(1000, windowMs));
  timer.unref();
  return {
    sweep,
    /** Client ids whose drops are tracked (tests). */
    get tracked(): number {
      return seen.size;
    },
    /** Stops the timer; every drop not yet recorded is. */
    stop(): void {
      clearInterval(timer);
      sweep(true);
    },
  };
}
