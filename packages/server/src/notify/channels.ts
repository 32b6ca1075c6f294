import { randomUUID } from 'node:crypto';
import { BulwarkError } from '@bulwark/protocol';
import { subjectOf, type AuditLog, type EventBus } from '../events/index.ts';
import type { SecretBox } from '../secrets/index.ts';
import { isUniqueViolation, type Db } from '../store/index.ts';
import { channelStore, toChannel, type ChannelRow } from './channel.store.ts';
import {
  channelKinds,
  type Channel,
  type ChannelFilter,
  type ChannelKind,
  type ChannelSettings,
  type NotificationEntry,
  type Severity,
} from './channel.types.ts';
import { validateName, validateTransport } from './channel.validate.ts';
import { validateFilter } from './filter.ts';
import { errorText, makeTransport, secretLabel, type Transport, type TransportDeps } from './transport.ts';
import { newWebhookSecret } from './webhook.ts';

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

export interface ChannelServiceDeps {
  db: Db;
  box: Pick<SecretBox, 'seal' | 'open'>;
  events: Pick<EventBus, 'atomically'>;
  audit: Pick<AuditLog, 'head'>;
  now: () => number;
  transport: TransportDeps;
}

const exists = (name: string | undefined) =>
  new BulwarkError('conflict', `a notification channel named ${name} exists already`);

/** The audit cursor a new channel starts at. */
function startCursor(from: ChannelInput['from'], head: number): number {
  if (from === undefined || from === 'head') return head;
  if (from === 'beginning') return 0;
  if (typeof from === 'number' && Number.isInteger(from) && from >= 1 && from <= head + 1) return from - 1;
  throw new BulwarkError(
    'validation_failed',
    typeof from === 'number'
      ? `from must be head, beginning or an audit seq from 1 to ${head + 1}`
      : 'from must be head, beginning or an audit seq',
  );
}

function newRow(input: ChannelInput, opts: { cursor: number; now: number; box: ChannelServiceDeps['box'] }) {
  if (!(channelKinds as readonly string[]).includes(input.kind))
    throw new BulwarkError('validation_failed', `kind must be one of ${channelKinds.join(', ')}`);
  const name = validateName(input.name);
  const transport = validateTransport(input.kind, input);
  const filter = validateFilter(input.filter ?? {});
  const id = randomUUID();
  const secret = input.kind === 'webhook' ? newWebhookSecret() : undefined;
  const row: ChannelRow = {
    id,
    name,
    kind: input.kind,
    format: transport.format,
    target: transport.target,
    settings: JSON.stringify(transport.settings),
    secret_sealed: secret ? opts.box.seal(Buffer.from(secret, 'utf8'), secretLabel(id)) : null,
    filter: JSON.stringify(filter),
    enabled: input.enabled === false ? 0 : 1,
    cursor: opts.cursor,
    lease_owner: null,
    lease_until: null,
    attempts: 0,
    next_attempt_at: null,
    last_error: null,
    last_delivered_at: null,
    created_at: opts.now,
    updated_at: opts.now,
  };
  return { row, secret };
}

interface Changes {
  row: Partial<ChannelRow>;
  changed: string[];
  secret?: string | undefined;
}

function transportChanges(row: ChannelRow, patch: ChannelPatch, out: Changes) {
  const touched = (['target', 'format', 'transport', 'facility', 'ca'] as const).filter(
    (k) => patch[k] !== undefined,
  );
  if (!touched.length) return;
  const kind = row.kind as ChannelKind;
  const old = JSON.parse(row.settings) as ChannelSettings;
  const syslog = kind === 'syslog';
  const next = validateTransport(kind, {
    target: patch.target ?? row.target,
    format: patch.format ?? (syslog ? row.format : undefined),
    transport: patch.transport ?? (syslog ? old.transport : undefined),
    facility: patch.facility ?? (syslog ? old.facility : undefined),
    ca: patch.ca === null ? undefined : (patch.ca ?? old.ca),
  });
  Object.assign(out.row, {
    target: next.target,
    format: next.format,
    settings: JSON.stringify(next.settings),
  });
  out.changed.push(...touched);
}

function filterChanges(row: ChannelRow, patch: ChannelPatch, out: Changes) {
  if (patch.filter === undefined) return;
  const current = JSON.parse(row.filter) as ChannelFilter;
  const minSeverity =
    patch.filter.minSeverity === null ? undefined : (patch.filter.minSeverity ?? current.minSeverity);
  out.row.filter = JSON.stringify(
    validateFilter({ types: patch.filter.types ?? current.types, minSeverity }),
  );
  out.changed.push('filter');
}

/** A rotated webhook secret: sealed into the changes, returned once in the clear. */
function secretChanges(
  row: ChannelRow,
  patch: ChannelPatch,
  out: Changes & { box: ChannelServiceDeps['box'] },
) {
  const { box } = out;
  if (!patch.rotateSecret) return undefined;
  if (row.kind !== 'webhook')
    throw new BulwarkError('validation_failed', 'only webhook channels have a signing secret');
  const secret = newWebhookSecret();
  out.row.secret_sealed = box.seal(Buffer.from(secret, 'utf8'), secretLabel(row.id));
  out.changed.push('secret');
  return secret;
}

/** What a patch changes (validated), without writing anything. */
async function changesOf(deps: ChannelServiceDeps, row: ChannelRow, patch: ChannelPatch): Promise<Changes> {
  const out: Changes = { row: {}, changed: [] };
  if (patch.name !== undefined && patch.name !== row.name) {
    const name = validateName(patch.name);
    const clash = await channelStore.find(deps.db, name);
    if (clash && clash.id !== row.id) throw exists(name);
    out.row.name = name;
    out.changed.push('name');
  }
  transportChanges(row, patch, out);
  filterChanges(row, patch, out);
  if (patch.enabled !== undefined && (patch.enabled ? 1 : 0) !== row.enabled) {
    out.row.enabled = patch.enabled ? 1 : 0;
    out.changed.push('enabled');
  }
  out.secret = secretChanges(row, patch, { ...out, box: deps.box });
  return out;
}

/** A channel write that may clash on the unique name. */
async function named<T>(name: string | undefined, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (err) {
    if (isUniqueViolation(err)) throw exists(name);
    throw err;
  }
}

/** Notification channels: create, change, remove and test them; each change commits with its event. */
export function createChannelService(deps: ChannelServiceDeps) {
  const { db, events, now } = deps;
  const head = async () => (await deps.audit.head()).seq;

  async function findRow(idOrName: string): Promise<ChannelRow> {
    const row = await channelStore.find(db, idOrName);
    if (!row) throw new BulwarkError('not_found', `notification channel ${idOrName} does not exist`);
    return row;
  }

  return {
    async list(): Promise<Channel[]> {
      const top = await head();
      return (await channelStore.list(db)).map((r) => toChannel(r, top));
    },

    async get(idOrName: string): Promise<Channel> {
      return toChannel(await findRow(idOrName), await head());
    },

    async create(input: ChannelInput, actor: string): Promise<Channel & { secret?: string }> {
      const top = await head();
      const { row, secret } = newRow(input, {
        cursor: startCursor(input.from, top),
        now: now(),
        box: deps.box,
      });
      if (await channelStore.find(db, row.name)) throw exists(row.name);
      await named(row.name, () =>
        events.atomically(async (tx, emit) => {
          await channelStore.insert(tx, row);
          emit({
            type: 'notification.channel_created',
            actor,
            subject: subjectOf.channel(row.id),
            data: { name: row.name, kind: input.kind, format: row.format, target: row.target },
          });
        }),
      );
      return { ...toChannel(row, top), ...(secret ? { secret } : {}) };
    },

    async update(
      idOrName: string,
      patch: ChannelPatch,
      actor: string,
    ): Promise<Channel & { secret?: string }> {
      const row = await findRow(idOrName);
      const changes = await changesOf(deps, row, patch);
      if (changes.changed.length) {
        // A changed channel is tried again at once, not after the rest of its back-off.
        const set = { ...changes.row, updated_at: now(), next_attempt_at: null };
        await named(patch.name, () =>
          events.atomically(async (tx, emit) => {
            await channelStore.update(tx, row.id, set);
            emit({
              type: 'notification.channel_updated',
              actor,
              subject: subjectOf.channel(row.id),
              data: { name: set.name ?? row.name, changes: changes.changed },
            });
          }),
        );
      }
      const updated = (await channelStore.byId(db, row.id)) ?? row;
      return { ...toChannel(updated, await head()), ...(changes.secret ? { secret: changes.secret } : {}) };
    },

    async remove(idOrName: string, actor: string): Promise<void> {
      const row = await findRow(idOrName);
      await events.atomically(async (tx, emit) => {
        await channelStore.remove(tx, row.id);
        emit({
          type: 'notification.channel_deleted',
          actor,
          subject: subjectOf.channel(row.id),
          data: { name: row.name },
        });
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
        subject: subjectOf.channel(row.id),
        data: { title: 'Bulwark test notification', channel: row.name },
        hash: '',
      };
      let transport: Transport | undefined;
      try {
        transport = makeTransport(row, deps.transport);
        await transport.deliver(entry);
        return { ok: true, durationMs: now() - started };
      } catch (err) {
        return { ok: false, error: errorText(err), durationMs: now() - started };
      } finally {
        transport?.close();
      }
    },
  };
}
