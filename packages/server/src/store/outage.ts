import type { StoreHealth, StoreHealthListener } from './availability.ts';

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

/** What the outage report needs of the monitor's alerts (the consumer's view of its door). */
export interface OutageAlerts {
  raise(finding: {
    detector: string;
    subject: string;
    deviceId: null;
    severity: 'high';
    title: string;
    evidence: Record<string, Json>;
    at: number;
  }): Promise<unknown>;
  autoResolve(detector: string, subject: string, resolution: string): Promise<unknown>;
}

export interface OutageLog {
  error(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}

export interface OutageReportDeps {
  store: { onHealthChange(listener: StoreHealthListener): () => void; health(): StoreHealth };
  alerts: OutageAlerts;
  /** This node, as the alert's subject (`node:<id>`): each node reports what it lived through. */
  nodeId: string;
  log: OutageLog;
  /** How long to wait before trying again to record an outage the store could not take yet. */
  retryMs?: number;
}

export const STORE_OUTAGE_DETECTOR = 'store_unavailable';

/**
 * Turns a store outage into an alert. An alert is a row in the store, so it cannot be written while the
 * store is down: the outage is logged when it starts, and raised (then resolved, since it is over) once
 * the store is back, with when it started and ended. Until it is written it is kept and retried, and an
 * outage that starts again before then is merged into it.
 */
export function reportStoreOutages(deps: OutageReportDeps): () => void {
  const subject = `node:${deps.nodeId}`;
  let pending: { since: number; until: number; reason: string } | undefined;
  let writing = false;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  async function record(): Promise<void> {
    if (writing || !pending || stopped) return;
    writing = true;
    const outage = pending;
    try {
      const seconds = Math.max(1, Math.round((outage.until - outage.since) / 1000));
      await deps.alerts.raise({
        detector: STORE_OUTAGE_DETECTOR,
        subject,
        deviceId: null,
        severity: 'high',
        title: `The database was unreachable from this node for ${seconds} s: requests were refused and security events in that time could not be recorded`,
        evidence: {
          node: deps.nodeId,
          since: outage.since,
          until: outage.until,
          durationMs: outage.until - outage.since,
          reason: outage.reason.slice(0, 500),
        },
        at: outage.since,
      });
      await deps.alerts.autoResolve(STORE_OUTAGE_DETECTOR, subject, 'the database is reachable again');
      if (pending === outage) pending = undefined;
    } catch (err) {
      if (!stopped && deps.store.health().state === 'up') {
        deps.log.warn({ err }, 'cannot record the database outage yet; retrying');
        timer = setTimeout(() => void record(), deps.retryMs ?? 5_000);
        timer.unref();
      }
    } finally {
      writing = false;
    }
    // The store went down and came back while this one was being written: record the merged outage too.
    if (pending && pending !== outage && deps.store.health().state === 'up') void record();
  }

  const unsubscribe = deps.store.onHealthChange((health, previous) => {
    if (health.state === 'down') {
      deps.log.error(
        { reason: health.reason },
        'database unreachable: requests that need it answer 503 until it is back',
      );
      return;
    }
    const down = previous.state === 'down' ? previous : undefined;
    deps.log.warn({ downSince: down?.since }, 'database reachable again');
    if (!down) return;
    pending = pending
      ? { since: pending.since, until: health.since, reason: pending.reason }
      : { since: down.since, until: health.since, reason: down.reason ?? 'unknown' };
    if (timer) clearTimeout(timer);
    void record();
  });

  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    unsubscribe();
  };
}
