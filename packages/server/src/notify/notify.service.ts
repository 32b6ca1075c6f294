import { createHash } from 'node:crypto';
import { hostname as osHostname } from 'node:os';
import type { AuditLog, EventBus } from '../events/index.ts';
import type { SecretBox } from '../secrets/index.ts';
import type { Db } from '../store/index.ts';
import { createChannelService } from './channels.ts';
import { createDeliveryWorker } from './worker.ts';
import { exporterFacts } from './notify.facts.ts';

export { retryDelay } from './worker.ts';
export type { ChannelInput, ChannelPatch, TestResult } from './channels.ts';

export interface NotifySettings {
  /** How often channels look for new entries (ms). */
  pollInterval: number;
  /** First retry after a failure (ms); doubles per failure up to retryMax. */
  retryBase: number;
  retryMax: number;
  /** One delivery attempt (ms). */
  timeout: number;
  /** This node's name in channel leases: stable across restarts, so a node reclaims its own lease at once. */
  nodeId: string;
  /** How long a lease lasts without renewal (default: 3 × timeout, at least 15 s). */
  leaseMs?: number;
  /** HOSTNAME in syslog headers and dvchost in CEF (default: the OS host name). */
  hostname?: string;
}

export interface NotifyServiceDeps {
  db: Db;
  box: Pick<SecretBox, 'seal' | 'open'>;
  events: Pick<EventBus, 'emit' | 'atomically'>;
  audit: Pick<AuditLog, 'readAfter' | 'head'>;
  now: () => number;
  settings: NotifySettings;
  /** Background delivery work failed in a way that is not a delivery failure (e.g. the store). */
  onError?: (err: unknown, channel?: string) => void;
}

/** A node id that survives restarts: the host name and a digest of the data directory. */
export function notifyNodeId(dataDir: string): string {
  const host = osHostname();
  return `${host}/${createHash('sha256').update(`${host}\0${dataDir}`).digest('hex').slice(0, 12)}`;
}

/**
 * Notification channels (webhooks, syslog) and the worker that feeds them (worker.ts): a channel follows
 * the audit log with a cursor, failures are retried with back-off and never skipped, one node per channel
 * delivers.
 */
export function createNotifyService(deps: NotifyServiceDeps) {
  const { settings } = deps;
  const transport = {
    box: deps.box,
    now: deps.now,
    timeoutMs: settings.timeout,
    host: settings.hostname ?? osHostname(),
  };
  const channels = createChannelService({ ...deps, transport });
  const worker = createDeliveryWorker({
    db: deps.db,
    events: deps.events,
    audit: deps.audit,
    now: deps.now,
    transport,
    nodeId: settings.nodeId,
    leaseMs: settings.leaseMs ?? Math.max(15_000, 3 * settings.timeout),
    retryBase: settings.retryBase,
    retryMax: settings.retryMax,
    pollInterval: settings.pollInterval,
    onError: deps.onError,
  });
  return {
    ...channels,
    ...worker,
    /** For the compliance checks: the channels that export the whole audit log, with lag and failures. */
    exporterFacts: () => exporterFacts(deps),
  };
}

export type NotifyService = ReturnType<typeof createNotifyService>;
