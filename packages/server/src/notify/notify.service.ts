import { createHash, randomUUID } from 'node:crypto';
import { hostname as osHostname } from 'node:os';
import { BulwarkError } from '@bulwark/protocol';
import type { AuditLog, EventBus } from '../events/index.ts';
import type { SecretBox } from '../secrets/index.ts';
import { isUniqueViolation, type Db } from '../store/index.ts';
import { formatCef } from './cef.ts';
import { channelStore, toChannel, type ChannelRow } from './channel.store.ts';
import {
  channelKinds,
  type Channel,
  type ChannelFilter,
  type ChannelKind,
  type ChannelSettings,
  type ChannelStats,
  type NotificationEntry,
  type Severity,
} from './channel.types.ts';
import { validateName, validateTransport, DEFAULT_FACILITY } from './channel.validate.ts';
import { compileFilter, validateFilter } from './filter.ts';
import { formatRfc5424, frameOctetCounted } from './rfc5424.ts';
import { createSyslogSender, parseHostPort } from './syslog.ts';
import { newWebhookSecret, postWebhook, webhookBody, webhookId } from './webhook.ts';

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
  events: Pick<EventBus, 'emit'>;
  audit: Pick<AuditLog, 'readAfter' | 'head'>;
  now: () => number;
  settings: NotifySettings;
  /** Background delivery work failed in a way that is not a delivery failure (e.g. the store). */
  onError?: (err: unknown, channel?: string) => void;
}

export interface ChannelInput {
  name: string;
  kind: ChannelKind;
  target: string;
  format?: string | undefined;
  transport?: string | undefined;
  facility?: number | undefined;
  ca?: string | undefined;
  filter?: { types?: string[] | undefined; minSeverity?: Severity | undefined } | undefined;
  enabled?: boolean | undefined;
  /** Where delivery starts: `head` (default, nothing from the past), `beginning`, or a seq (inclusive). */
  from?: 'head' | 'beginning' | number | undefined;
}

export interface ChannelPatch {
  name?: string | undefined;
  target?: string | undefined;
  format?: string | undefined;
  transport?: string | undefined;
  facility?: number | undefined;
  /** null removes it. */
  ca?: string | null | undefined;
  filter?: { types?: string[] | undefined; minSeverity?: Severity | null | undefined } | undefined;
  enabled?: boolean | undefined;
  /** Webhooks: a new signing secret, returned once. */
  rotateSecret?: boolean | undefined;
}

export interface TestResult {
  ok: boolean;
  error?: string;
  durationMs: number;
}

/** Exponential back-off: retryBase, 2×, 4×, … capped at retryMax. Deterministic: one node per channel. */
export function retryDelay(attempts: number, base: number, max: number): number {
  return Math.min(max, base * 2 ** Math.min(Math.max(attempts - 1, 0), 40));
}

/** A node id that survives restarts: the host name and a digest of the data directory. */
export function notifyNodeId(dataDir: string): string {
  const host = osHostname();
  return `${host}/${createHash('sha256').update(`${host}\0${dataDir}`).digest('hex').slice(0, 12)}`;
}

const secretLabel = (id: string) => `notification-channel:${id}`;
const BATCH = 200;

interface Transport {
  deliver(entry: NotificationEntry): Promise<void>;
  close(): void;
}

interface Runtime {
  busy: boolean;
  key?: string;
  transport?: Transport;
  matches?: (entry: NotificationEntry) => boolean;
  failingSince?: number;
  delivered: number;
  failures: number;
  leased: boolean;
}

const errorText = (err: unknown): string => {
  const e = err as { message?: string; code?: string };
  const text = e?.message || e?.code || String(err);
  return text.replace(/\s+/g, ' ').slice(0, 300);
};

/**
 * Notification channels (webhooks, syslog) and the worker that feeds them. A channel follows the audit log
 * with a cursor: nothing is queued besides the log itself, so what was not delivered before a crash is
 * delivered after it. Failures are retried with back-off, never skipped; one node per channel delivers,
 * by a lease in the channel's row.
 */
export function createNotifyService(deps: NotifyServiceDeps) {
  const { db, box, events, audit, now, settings } = deps;
  const leaseMs = settings.leaseMs ?? Math.max(15_000, 3 * settings.timeout);
  const host = settings.hostname ?? osHostname();
  const runtimes = new Map<string, Runtime>();
  const inflight = new Set<Promise<void>>();
  let timer: NodeJS.Timeout | undefined;
  let ticking: Promise<void> | undefined;
  let started = false;
  let stopping = false;
  /** Whether this instance ever took a lease (and so has leases to hand back). */
  let delivering = false;

  const head = async () => (await audit.head()).seq;

  async function findRow(idOrName: string): Promise<ChannelRow> {
    const row = await channelStore.find(db, idOrName);
    if (!row) throw new BulwarkError('not_found', `notification channel ${idOrName} does not exist`);
    return row;
  }

  function makeTransport(row: ChannelRow): Transport {
    const s = JSON.parse(row.settings) as ChannelSettings;
    if (row.kind === 'webhook') {
      if (!row.secret_sealed) throw new BulwarkError('internal', `channel ${row.name} has no signing secret`);
      const secret = box.open(row.secret_sealed, secretLabel(row.id)).toString('utf8');
      return {
        async deliver(entry) {
          const id = entry.seq > 0 ? webhookId(entry) : `bulwark_test_${randomUUID()}`;
          await postWebhook(
            { url: row.target, secret, ca: s.ca, timeoutMs: settings.timeout },
            id,
            webhookBody(entry),
            now,
          );
        },
        close() {},
      };
    }
    const hp = parseHostPort(row.target);
    if (!hp) throw new BulwarkError('internal', `channel ${row.name} has an invalid target`);
    const sender = createSyslogSender({
      ...hp,
      transport: s.transport ?? 'tls',
      ca: s.ca,
      timeoutMs: settings.timeout,
    });
    const origin = { facility: s.facility ?? DEFAULT_FACILITY, hostname: host, procId: String(process.pid) };
    return {
      deliver: (entry) =>
        sender.send(
          frameOctetCounted(
            formatRfc5424(
              entry,
              row.format === 'cef' ? formatCef(entry, host) : JSON.stringify(entry.data),
              origin,
            ),
          ),
        ),
      close: () => sender.close(),
    };
  }

  const runtimeFor = (id: string): Runtime => {
    let rt = runtimes.get(id);
    if (!rt) {
      rt = { busy: false, delivered: 0, failures: 0, leased: false };
      runtimes.set(id, rt);
    }
    return rt;
  };

  /** Rebuilds the transport and filter when the channel changed since they were made. */
  function prepare(
    row: ChannelRow,
    rt: Runtime,
  ): { transport: Transport; matches: (e: NotificationEntry) => boolean } {
    const key = `${row.updated_at}|${row.target}|${row.format}|${row.settings}|${row.filter}|${row.secret_sealed}`;
    if (rt.key !== key || !rt.transport || !rt.matches) {
      rt.transport?.close();
      rt.transport = undefined;
      rt.matches = compileFilter(JSON.parse(row.filter) as ChannelFilter);
      rt.transport = makeTransport(row);
      rt.key = key;
    }
    return { transport: rt.transport, matches: rt.matches };
  }

  async function emitSafely(event: Parameters<typeof events.emit>[0]) {
    try {
      await events.emit(event);
    } catch (err) {
      deps.onError?.(err);
    }
  }

  async function recordFailure(
    row: ChannelRow,
    rt: Runtime,
    attempts: number,
    cursor: number,
    pendingSeq: number,
    err: unknown,
  ): Promise<void> {
    const next = attempts + 1;
    const error = errorText(err);
    rt.failures += 1;
    const t = now();
    const kept = await channelStore.updateLeased(db, row.id, settings.nodeId, {
      cursor,
      attempts: next,
      next_attempt_at: t + retryDelay(next, settings.retryBase, settings.retryMax),
      last_error: error,
    });
    if (kept && next === 1) {
      rt.failingSince = t;
      await emitSafely({
        type: 'notification.channel_failing',
        actor: 'system',
        subject: `channel:${row.id}`,
        data: { name: row.name, error, pendingFromSeq: pendingSeq },
      });
    }
  }

  /** Delivers what the channel has not had yet, in order, until caught up, a failure, or the lease is lost. */
  async function runChannel(seen: ChannelRow, rt: Runtime): Promise<void> {
    const id = seen.id;
    let leaseUntil = seen.lease_owner === settings.nodeId ? (seen.lease_until ?? 0) : 0;
    // Renew only when less than half the lease is left: no write per round for a channel this node holds.
    if (leaseUntil - now() < leaseMs / 2) {
      if (!(await channelStore.claimLease(db, id, settings.nodeId, now(), leaseMs))) {
        rt.leased = false;
        return;
      }
      leaseUntil = now() + leaseMs;
    }
    rt.leased = true;
    delivering = true;
    // Read again under the lease: the previous holder may have moved the cursor since the round began.
    const row = await channelStore.byId(db, id);
    if (!row) return;
    let cursor = row.cursor;
    let attempts = row.attempts;
    let prepared: ReturnType<typeof prepare>;
    try {
      prepared = prepare(row, rt);
    } catch (err) {
      await recordFailure(row, rt, attempts, cursor, cursor + 1, err);
      return;
    }
    const { transport, matches } = prepared;
    while (!stopping) {
      const entries = await audit.readAfter(cursor, BATCH);
      let skipped = cursor;
      for (const entry of entries) {
        if (stopping) break;
        if (!matches(entry)) {
          skipped = entry.seq;
          continue;
        }
        if (leaseUntil - now() < leaseMs / 2) {
          if (!(await channelStore.claimLease(db, row.id, settings.nodeId, now(), leaseMs))) {
            rt.leased = false;
            return;
          }
          leaseUntil = now() + leaseMs;
        }
        try {
          await transport.deliver(entry);
        } catch (err) {
          await recordFailure(row, rt, attempts, skipped, entry.seq, err);
          return;
        }
        const t = now();
        const kept = await channelStore.updateLeased(db, row.id, settings.nodeId, {
          cursor: entry.seq,
          attempts: 0,
          next_attempt_at: null,
          last_delivered_at: t,
        });
        if (!kept) return; // deleted, disabled and taken over, or lease lost: the next holder goes on
        cursor = skipped = entry.seq;
        rt.delivered += 1;
        if (attempts > 0) {
          // Restarted while failing: estimate from the back-off schedule how long it has been.
          let failedForMs = 0;
          if (rt.failingSince !== undefined) failedForMs = t - rt.failingSince;
          else
            for (let i = 1; i <= attempts; i++)
              failedForMs += retryDelay(i, settings.retryBase, settings.retryMax);
          rt.failingSince = undefined;
          await emitSafely({
            type: 'notification.channel_recovered',
            actor: 'system',
            subject: `channel:${row.id}`,
            data: { name: row.name, failedForMs, attempts },
          });
          attempts = 0;
        }
      }
      if (skipped > cursor) {
        if (!(await channelStore.updateLeased(db, row.id, settings.nodeId, { cursor: skipped }))) return;
        cursor = skipped;
      }
      if (entries.length < BATCH) break;
    }
  }

  function tick(): Promise<void> {
    if (stopping) return Promise.resolve();
    ticking ??= round().finally(() => (ticking = undefined));
    return ticking;
  }

  /** One round: start a delivery run for each channel that is behind, not in back-off and not leased elsewhere. */
  async function round(): Promise<void> {
    try {
      const rows = await channelStore.listEnabled(db);
      const top = await head();
      const present = new Set<string>();
      for (const row of rows) {
        present.add(row.id);
        const rt = runtimeFor(row.id);
        if (rt.busy || stopping) continue;
        const t = now();
        if (row.cursor >= top) continue;
        if (row.next_attempt_at !== null && row.next_attempt_at > t) continue;
        if (row.lease_owner !== null && row.lease_owner !== settings.nodeId && (row.lease_until ?? 0) >= t) {
          rt.leased = false;
          continue;
        }
        rt.busy = true;
        const run = runChannel(row, rt)
          .catch((err: unknown) => deps.onError?.(err, row.name))
          .finally(() => {
            rt.busy = false;
            inflight.delete(run);
          });
        inflight.add(run);
      }
      for (const [id, rt] of runtimes) {
        if (present.has(id) || rt.busy) continue;
        rt.transport?.close();
        rt.transport = undefined;
        rt.key = undefined;
        rt.leased = false;
      }
    } catch (err) {
      deps.onError?.(err);
    }
  }

  async function list(): Promise<Channel[]> {
    const top = await head();
    return (await channelStore.list(db)).map((r) => toChannel(r, top));
  }

  return {
    list,

    async get(idOrName: string): Promise<Channel> {
      return toChannel(await findRow(idOrName), await head());
    },

    async create(input: ChannelInput, actor: string): Promise<Channel & { secret?: string }> {
      if (!(channelKinds as readonly string[]).includes(input.kind))
        throw new BulwarkError('validation_failed', `kind must be one of ${channelKinds.join(', ')}`);
      const name = validateName(input.name);
      const transport = validateTransport(input.kind, input);
      const filter = validateFilter(input.filter ?? {});
      const top = await head();
      let cursor = top;
      if (input.from === 'beginning') cursor = 0;
      else if (typeof input.from === 'number') {
        if (!Number.isInteger(input.from) || input.from < 1 || input.from > top + 1)
          throw new BulwarkError(
            'validation_failed',
            `from must be head, beginning or an audit seq from 1 to ${top + 1}`,
          );
        cursor = input.from - 1;
      } else if (input.from !== undefined && input.from !== 'head')
        throw new BulwarkError('validation_failed', 'from must be head, beginning or an audit seq');
      if (await channelStore.find(db, name))
        throw new BulwarkError('conflict', `a notification channel named ${name} exists already`);
      const id = randomUUID();
      const secret = input.kind === 'webhook' ? newWebhookSecret() : undefined;
      const t = now();
      const row: ChannelRow = {
        id,
        name,
        kind: input.kind,
        format: transport.format,
        target: transport.target,
        settings: JSON.stringify(transport.settings),
        secret_sealed: secret ? box.seal(Buffer.from(secret, 'utf8'), secretLabel(id)) : null,
        filter: JSON.stringify(filter),
        enabled: input.enabled === false ? 0 : 1,
        cursor,
        lease_owner: null,
        lease_until: null,
        attempts: 0,
        next_attempt_at: null,
        last_error: null,
        last_delivered_at: null,
        created_at: t,
        updated_at: t,
      };
      try {
        await channelStore.insert(db, row);
      } catch (err) {
        if (isUniqueViolation(err))
          throw new BulwarkError('conflict', `a notification channel named ${name} exists already`);
        throw err;
      }
      await events.emit({
        type: 'notification.channel_created',
        actor,
        subject: `channel:${id}`,
        data: { name, kind: input.kind, format: transport.format, target: transport.target },
      });
      return { ...toChannel(row, top), ...(secret ? { secret } : {}) };
    },

    async update(
      idOrName: string,
      patch: ChannelPatch,
      actor: string,
    ): Promise<Channel & { secret?: string }> {
      const row = await findRow(idOrName);
      const kind = row.kind as ChannelKind;
      const old = JSON.parse(row.settings) as ChannelSettings;
      const changes: Partial<ChannelRow> = {};
      const changed: string[] = [];
      if (patch.name !== undefined && patch.name !== row.name) {
        changes.name = validateName(patch.name);
        const clash = await channelStore.find(db, changes.name);
        if (clash && clash.id !== row.id)
          throw new BulwarkError('conflict', `a notification channel named ${changes.name} exists already`);
        changed.push('name');
      }
      const touchesTransport = ['target', 'format', 'transport', 'facility', 'ca'].filter(
        (k) => patch[k as keyof ChannelPatch] !== undefined,
      );
      if (touchesTransport.length) {
        const next = validateTransport(kind, {
          target: patch.target ?? row.target,
          format: patch.format ?? (kind === 'webhook' ? undefined : row.format),
          transport: patch.transport ?? (kind === 'syslog' ? old.transport : undefined),
          facility: patch.facility ?? (kind === 'syslog' ? old.facility : undefined),
          ca: patch.ca === null ? undefined : (patch.ca ?? old.ca),
        });
        changes.target = next.target;
        changes.format = next.format;
        changes.settings = JSON.stringify(next.settings);
        changed.push(...touchesTransport);
      }
      if (patch.filter !== undefined) {
        const current = JSON.parse(row.filter) as ChannelFilter;
        const minSeverity =
          patch.filter.minSeverity === null ? undefined : (patch.filter.minSeverity ?? current.minSeverity);
        changes.filter = JSON.stringify(
          validateFilter({ types: patch.filter.types ?? current.types, minSeverity }),
        );
        changed.push('filter');
      }
      if (patch.enabled !== undefined && (patch.enabled ? 1 : 0) !== row.enabled) {
        changes.enabled = patch.enabled ? 1 : 0;
        changed.push('enabled');
      }
      let secret: string | undefined;
      if (patch.rotateSecret) {
        if (kind !== 'webhook')
          throw new BulwarkError('validation_failed', 'only webhook channels have a signing secret');
        secret = newWebhookSecret();
        changes.secret_sealed = box.seal(Buffer.from(secret, 'utf8'), secretLabel(row.id));
        changed.push('secret');
      }
      if (changed.length) {
        // A changed channel is tried again at once, not after the rest of its back-off.
        Object.assign(changes, { updated_at: now(), next_attempt_at: null });
        try {
          await channelStore.update(db, row.id, changes);
        } catch (err) {
          if (isUniqueViolation(err))
            throw new BulwarkError('conflict', `a notification channel named ${patch.name} exists already`);
          throw err;
        }
        await events.emit({
          type: 'notification.channel_updated',
          actor,
          subject: `channel:${row.id}`,
          data: { name: changes.name ?? row.name, changes: changed },
        });
      }
      const updated = (await channelStore.byId(db, row.id)) ?? row;
      return { ...toChannel(updated, await head()), ...(secret ? { secret } : {}) };
    },

    async remove(idOrName: string, actor: string): Promise<void> {
      const row = await findRow(idOrName);
      await channelStore.remove(db, row.id);
      await events.emit({
        type: 'notification.channel_deleted',
        actor,
        subject: `channel:${row.id}`,
        data: { name: row.name },
      });
    },

    /** Sends a synthetic message now, outside the cursor and lease, and says whether it arrived. */
    async test(idOrName: string, actor: string): Promise<TestResult> {
      const row = await findRow(idOrName);
      const started = now();
      const entry: NotificationEntry = {
        seq: 0,
        ts: started,
        type: 'notification.test',
        actor,
        subject: `channel:${row.id}`,
        data: { title: 'Bulwark test notification', channel: row.name },
        hash: '',
      };
      let transport: Transport | undefined;
      try {
        transport = makeTransport(row);
        await transport.deliver(entry);
        return { ok: true, durationMs: now() - started };
      } catch (err) {
        return { ok: false, error: errorText(err), durationMs: now() - started };
      } finally {
        transport?.close();
      }
    },

    /** Per-channel figures for Prometheus. */
    async stats(): Promise<ChannelStats[]> {
      const top = await head();
      return (await channelStore.list(db)).map((row) => {
        const rt = runtimes.get(row.id);
        return {
          id: row.id,
          name: row.name,
          kind: row.kind as ChannelKind,
          enabled: row.enabled === 1,
          cursor: row.cursor,
          head: top,
          lag: Math.max(0, top - row.cursor),
          delivered: rt?.delivered ?? 0,
          failures: rt?.failures ?? 0,
          attempts: row.attempts,
          failing: row.attempts > 0,
          lastError: row.last_error,
          lastDeliveredAt: row.last_delivered_at,
          leased: row.lease_owner === settings.nodeId && (row.lease_until ?? 0) > now(),
        };
      });
    },

    /** Runs one round now (tests; the timer does the same). Resolves when its deliveries are done. */
    async runOnce(): Promise<void> {
      await tick();
      await Promise.allSettled([...inflight]);
    },

    /** Starts the worker on its own timer: it never blocks the broker or the event bus. */
    start(): void {
      if (started) return;
      started = true;
      timer = setInterval(() => void tick(), settings.pollInterval);
      timer.unref();
      void tick();
    },

    /** Stops the worker, waits for attempts in flight, closes connections and hands its leases back. */
    async stop(): Promise<void> {
      started = false;
      stopping = true;
      if (timer) clearInterval(timer);
      timer = undefined;
      await ticking; // a round under way starts nothing more once stopping is set
      await Promise.allSettled([...inflight]);
      for (const rt of runtimes.values()) {
        rt.transport?.close();
        rt.transport = undefined;
        rt.key = undefined;
      }
      // Only a node that delivered holds leases (the CLI shares the server's node id but never delivers).
      if (delivering) {
        delivering = false;
        await channelStore.releaseLeases(db, settings.nodeId).catch((err: unknown) => deps.onError?.(err));
      }
      stopping = false;
    },
  };
}

export type NotifyService = ReturnType<typeof createNotifyService>;
