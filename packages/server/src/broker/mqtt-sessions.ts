/**
 * Persistent MQTT sessions in the store (SQLite or PostgreSQL): the core's SessionJournal (core/types.ts).
 * Changes are recorded in memory as the core makes them and written in one transaction per batch (group
 * commit: whatever was recorded while the previous batch was written goes in the next). Within a batch a
 * message kept and done with cancels out, and a session that ended drops what was recorded for it. A batch
 * that fails (the store is down) is retried with back-off and nothing recorded is dropped: the
 * acknowledgements waiting for it wait. A batch is idempotent: written again after a COMMIT whose answer was
 * lost, it changes nothing more.
 *
 * Tables (0019): `mqtt_sessions` (one row per session), `mqtt_messages` (a message once, however many
 * sessions keep it) and `mqtt_session_messages` (what each session keeps, in message id order).
 */
import type { Logger } from 'pino';
import type {
  Db,
  MqttMessagesTable,
  MqttSessionMessagesTable,
  MqttSessionsTable,
  Tx,
} from '../store/index.ts';
import type {
  CoreMessage,
  MessageProperties,
  Pending,
  PersistedSession,
  QoS,
  SessionJournal,
  SessionState,
  Subscription,
} from './core/index.ts';

export interface SqlSessionJournalDeps {
  db: Db;
  logger: Pick<Logger, 'error' | 'warn'>;
  now?: () => number;
  /** Back-off bounds of a failed batch (tests shorten them). */
  retryMs?: { min: number; max: number };
}

// Rows as the store's tables have them (store/schema.ts).
type SessionRow = MqttSessionsTable;
type KeptRow = MqttSessionMessagesTable;
type MessageRow = MqttMessagesTable;

/** What a batch holds for one client id, applied in this order: ended, session, kept, inflight, done. */
interface ClientChanges {
  ended: boolean;
  session: SessionRow | undefined;
  kept: Map<number, KeptRow>;
  /** Packet ids and phases of messages kept in an earlier batch. */
  inflight: Map<number, { packet_id: number; phase: string }>;
  /** Messages kept in an earlier batch, done with. */
  done: Set<number>;
}

interface Batch {
  clients: Map<string, ClientChanges>;
  /** Messages first kept in this batch, with how many of its kept rows refer to them. */
  messages: Map<number, { message: CoreMessage; row: MessageRow; refs: number }>;
  resolve: () => void;
  promise: Promise<void>;
}

function newBatch(): Batch {
  let resolve = () => {};
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { clients: new Map(), messages: new Map(), resolve, promise };
}

const CHUNK = 200;

function chunks<T>(items: T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += CHUNK) out.push(items.slice(i, i + CHUNK));
  return out;
}

/** Message properties as JSON: correlation data (bytes) as base64. */
function propertiesJson(properties: MessageProperties | undefined): string | null {
  if (!properties) return null;
  const { correlationData, ...rest } = properties;
  return JSON.stringify(
    correlationData ? { ...rest, correlationData: correlationData.toString('base64') } : rest,
  );
}

function propertiesOf(json: string | null): MessageProperties | undefined {
  if (json === null) return undefined;
  const parsed = JSON.parse(json) as MessageProperties & { correlationData?: string };
  const { correlationData, ...rest } = parsed;
  return correlationData === undefined
    ? rest
    : { ...rest, correlationData: Buffer.from(correlationData, 'base64') };
}

function sessionRow(state: SessionState, disconnectedAt: number | null, now: number): SessionRow {
  return {
    client_id: state.clientId,
    expiry_sec: Number.isFinite(state.expirySec) ? state.expirySec : null,
    subscriptions: JSON.stringify([...(state.subscriptions?.values() ?? [])]),
    received: state.received && state.received.size > 0 ? JSON.stringify([...state.received]) : null,
    disconnected_at: disconnectedAt,
    updated_at: now,
  };
}

/** What the batch holds for one client id (made when first needed). */
function clientChanges(b: Batch, clientId: string): ClientChanges {
  let c = b.clients.get(clientId);
  if (!c) {
    c = { ended: false, session: undefined, kept: new Map(), inflight: new Map(), done: new Set() };
    b.clients.set(clientId, c);
  }
  return c;
}

function messageRow(id: number, message: CoreMessage): MessageRow {
  return {
    id,
    topic: message.topic,
    payload: message.payload.toString('base64'),
    qos: message.qos,
    retain: message.retain ? 1 : 0,
    properties: propertiesJson(message.properties),
    expires_at: message.expiresAt ?? null,
    origin: message.origin ?? null,
  };
}

function keptRow(clientId: string, id: number, pending: Pending): KeptRow {
  return {
    client_id: clientId,
    message_id: id,
    qos: pending.qos,
    retain: pending.retain ? 1 : 0,
    subscription_ids: pending.subscriptionIds ? JSON.stringify(pending.subscriptionIds) : null,
    packet_id: null,
    phase: null,
  };
}

/** Sessions that ended: they and what they kept go (their messages may be orphans now). */
async function deleteEnded(trx: Tx, b: Batch, orphans: Set<number>): Promise<void> {
  const ended = [...b.clients].filter(([, c]) => c.ended).map(([id]) => id);
  for (const part of chunks(ended)) {
    const rows = await trx
      .selectFrom('mqtt_session_messages')
      .select('message_id')
      .where('client_id', 'in', part)
      .execute();
    for (const r of rows) orphans.add(Number(r.message_id));
    await trx.deleteFrom('mqtt_session_messages').where('client_id', 'in', part).execute();
    await trx.deleteFrom('mqtt_sessions').where('client_id', 'in', part).execute();
  }
}

async function upsertSessions(trx: Tx, b: Batch): Promise<void> {
  const sessions = [...b.clients.values()].flatMap((c) => (c.session ? [c.session] : []));
  for (const part of chunks(sessions))
    await trx
      .insertInto('mqtt_sessions')
      .values(part)
      .onConflict((oc) =>
        oc.column('client_id').doUpdateSet((eb) => ({
          expiry_sec: eb.ref('excluded.expiry_sec'),
          subscriptions: eb.ref('excluded.subscriptions'),
          received: eb.ref('excluded.received'),
          disconnected_at: eb.ref('excluded.disconnected_at'),
          updated_at: eb.ref('excluded.updated_at'),
        })),
      )
      .execute();
}

/** New messages, and what each session keeps. */
async function insertKept(trx: Tx, b: Batch): Promise<void> {
  const messages = [...b.messages.values()].map((m) => m.row);
  // A message first kept in a batch being written when this one was made may be there already.
  for (const part of chunks(messages))
    await trx
      .insertInto('mqtt_messages')
      .values(part)
      .onConflict((oc) => oc.column('id').doNothing())
      .execute();
  const kept = [...b.clients.values()].flatMap((c) => [...c.kept.values()]);
  // A batch is written again when its COMMIT's answer was lost (the connection dropped): it may be there.
  for (const part of chunks(kept))
    await trx
      .insertInto('mqtt_session_messages')
      .values(part)
      .onConflict((oc) =>
        oc.columns(['client_id', 'message_id']).doUpdateSet((eb) => ({
          qos: eb.ref('excluded.qos'),
          retain: eb.ref('excluded.retain'),
          subscription_ids: eb.ref('excluded.subscription_ids'),
          packet_id: eb.ref('excluded.packet_id'),
          phase: eb.ref('excluded.phase'),
        })),
      )
      .execute();
}

/** Packet ids and phases of messages kept in an earlier batch, and those done with. */
async function updateKept(trx: Tx, b: Batch, orphans: Set<number>): Promise<void> {
  for (const [clientId, c] of b.clients) {
    for (const [messageId, set] of c.inflight)
      await trx
        .updateTable('mqtt_session_messages')
        .set(set)
        .where('client_id', '=', clientId)
        .where('message_id', '=', messageId)
        .execute();
    if (c.done.size === 0) continue;
    const done = [...c.done];
    for (const id of done) orphans.add(id);
    for (const part of chunks(done))
      await trx
        .deleteFrom('mqtt_session_messages')
        .where('client_id', '=', clientId)
        .where('message_id', 'in', part)
        .execute();
  }
}

/** A message no session keeps any more goes. */
async function deleteOrphans(trx: Tx, orphans: Set<number>): Promise<void> {
  for (const part of chunks([...orphans]))
    await trx
      .deleteFrom('mqtt_messages')
      .where('id', 'in', part)
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom('mqtt_session_messages')
              .select('mqtt_session_messages.message_id')
              .whereRef('mqtt_session_messages.message_id', '=', 'mqtt_messages.id'),
          ),
        ),
      )
      .execute();
}

/** One batch in one transaction, in the order ended, sessions, kept, packet ids and done, orphans. */
function writeBatch(db: Db, b: Batch): Promise<void> {
  return db.transaction().execute(async (trx) => {
    const orphans = new Set<number>();
    await deleteEnded(trx, b, orphans);
    await upsertSessions(trx, b);
    await insertKept(trx, b);
    await updateKept(trx, b, orphans);
    await deleteOrphans(trx, orphans);
  });
}

/** What the journal remembers of the store: message ids, messages written, sessions with a row. */
interface JournalMemory {
  readonly ids: WeakMap<CoreMessage, number>;
  /** Messages whose row was committed (or read at load). */
  readonly stored: WeakSet<CoreMessage>;
  /** Client ids with a row in mqtt_sessions (or one on its way): only these have anything to forget. */
  readonly known: Set<string>;
  nextId: number;
}

function messageOf(r: MessageRow): CoreMessage {
  return {
    topic: r.topic,
    payload: Buffer.from(r.payload, 'base64'),
    qos: Number(r.qos) as QoS,
    retain: Number(r.retain) === 1,
    properties: propertiesOf(r.properties),
    expiresAt: r.expires_at === null ? undefined : Number(r.expires_at),
    origin: r.origin ?? undefined,
  };
}

function pendingOf(r: KeptRow, message: CoreMessage): PersistedSession['pending'][number] {
  return {
    message,
    qos: Number(r.qos) as QoS,
    retain: Number(r.retain) === 1,
    subscriptionIds: r.subscription_ids ? (JSON.parse(r.subscription_ids) as number[]) : undefined,
    ...(r.packet_id !== null ? { packetId: Number(r.packet_id) } : {}),
    ...(r.phase === 'publish' || r.phase === 'pubrel' ? { phase: r.phase } : {}),
  };
}

/** The sessions in the store with what they keep, in message id order; the memory learns their ids. */
async function readSessions(db: Db, memory: JournalMemory): Promise<PersistedSession[]> {
  const sessions = await db.selectFrom('mqtt_sessions').selectAll().orderBy('client_id').execute();
  const rows = await db
    .selectFrom('mqtt_session_messages')
    .selectAll()
    .orderBy('client_id')
    .orderBy('message_id')
    .execute();
  const messageRows = await db.selectFrom('mqtt_messages').selectAll().execute();
  const messages = new Map<number, CoreMessage>();
  for (const r of messageRows) {
    const id = Number(r.id);
    const message = messageOf(r);
    memory.nextId = Math.max(memory.nextId, id + 1);
    memory.ids.set(message, id);
    memory.stored.add(message);
    messages.set(id, message);
  }
  const pendingBy = new Map<string, PersistedSession['pending']>();
  for (const r of rows) {
    const message = messages.get(Number(r.message_id));
    if (!message) continue;
    const list = pendingBy.get(r.client_id) ?? [];
    pendingBy.set(r.client_id, list);
    list.push(pendingOf(r, message));
  }
  return sessions.map((s) => {
    memory.known.add(s.client_id);
    return {
      clientId: s.client_id,
      expirySec: s.expiry_sec === null ? Infinity : Number(s.expiry_sec),
      subscriptions: JSON.parse(s.subscriptions) as Subscription[],
      received: s.received ? (JSON.parse(s.received) as number[]) : [],
      disconnectedAt: s.disconnected_at === null ? undefined : Number(s.disconnected_at),
      pending: pendingBy.get(s.client_id) ?? [],
    };
  });
}

export function createSqlSessionJournal(deps: SqlSessionJournalDeps) {
  const { db, logger } = deps;
  const now = deps.now ?? Date.now;
  const retry = deps.retryMs ?? { min: 100, max: 5000 };
  const memory: JournalMemory = { ids: new WeakMap(), stored: new WeakSet(), known: new Set(), nextId: 1 };
  const { ids, stored, known } = memory;
  let recorded = 0;
  let batch = newBatch();
  let writing: Batch | undefined;
  let scheduled = false;
  let closed = false;
  let failures = 0;

  const changesOf = (clientId: string) => clientChanges(batch, clientId);

  function schedule(): void {
    recorded += 1;
    if (scheduled || writing) return;
    scheduled = true;
    setImmediate(() => void writeNext());
  }

  /** A message kept in this batch is no longer referred to by `clientId`'s row. */
  function unref(id: number): void {
    const m = batch.messages.get(id);
    if (m && --m.refs === 0) batch.messages.delete(id);
  }

  /** Writes `b`, retried with back-off until it is written (or the journal is closed). */
  async function writeUntilDone(b: Batch): Promise<void> {
    for (;;) {
      try {
        await writeBatch(db, b);
        for (const m of b.messages.values()) stored.add(m.message);
        if (failures > 0) logger.warn({ failures }, 'mqtt session store: writing again');
        failures = 0;
        return;
      } catch (err) {
        failures += 1;
        if (failures === 1) logger.error({ err }, 'mqtt session store: a batch failed, retrying');
        if (closed) return;
        const wait = Math.min(retry.max, retry.min * 2 ** Math.min(failures - 1, 10));
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  async function writeNext(): Promise<void> {
    scheduled = false;
    if (writing) return;
    const b = batch;
    if (b.clients.size === 0 && b.messages.size === 0) {
      b.resolve();
      batch = newBatch();
      return;
    }
    writing = b;
    batch = newBatch();
    await writeUntilDone(b);
    writing = undefined;
    b.resolve();
    if (batch.clients.size > 0 || batch.messages.size > 0) await writeNext();
  }

  const journal: SessionJournal = {
    get recorded() {
      return recorded;
    },
    session(state, connected) {
      known.add(state.clientId);
      changesOf(state.clientId).session = sessionRow(state, connected ? null : now(), now());
      schedule();
    },
    ended(clientId) {
      if (!known.delete(clientId)) return;
      const c = changesOf(clientId);
      for (const id of c.kept.keys()) unref(id);
      c.ended = true;
      c.session = undefined;
      c.kept.clear();
      c.inflight.clear();
      c.done.clear();
      schedule();
    },
    kept(clientId, pending) {
      const { message } = pending;
      let id = ids.get(message);
      if (id === undefined) {
        id = memory.nextId++;
        ids.set(message, id);
      }
      if (!stored.has(message) && !batch.messages.has(id))
        batch.messages.set(id, { message, refs: 0, row: messageRow(id, message) });
      const fresh = batch.messages.get(id);
      if (fresh) fresh.refs += 1;
      changesOf(clientId).kept.set(id, keptRow(clientId, id, pending));
      schedule();
    },
    inflight(clientId, message, { packetId, phase }) {
      const id = ids.get(message);
      if (id === undefined) return;
      const c = changesOf(clientId);
      const row = c.kept.get(id);
      if (row) {
        row.packet_id = packetId;
        row.phase = phase;
      } else c.inflight.set(id, { packet_id: packetId, phase });
      schedule();
    },
    done(clientId, message) {
      const id = ids.get(message);
      if (id === undefined) return;
      const c = changesOf(clientId);
      if (c.kept.delete(id)) unref(id);
      else {
        c.inflight.delete(id);
        c.done.add(id);
      }
      schedule();
    },
    durable() {
      if (batch.clients.size > 0 || batch.messages.size > 0) return batch.promise;
      return writing ? writing.promise : Promise.resolve();
    },
  };

  return {
    journal,

    /** The sessions kept at the last run, with their messages (call once, before the broker accepts). */
    load: (): Promise<PersistedSession[]> => readSessions(db, memory),

    /** What waits to be written (Prometheus, tests). */
    stats() {
      return { sessions: known.size, failures, writing: writing !== undefined };
    },

    /** Writes what was recorded (for a graceful stop); a batch that keeps failing is given up on. */
    async close(): Promise<void> {
      await journal.durable();
      closed = true;
    },
  };
}

export type SqlSessionJournal = ReturnType<typeof createSqlSessionJournal>;
