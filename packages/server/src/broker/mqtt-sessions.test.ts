import { Writable } from 'node:stream';
import type { KyselyPlugin } from 'kysely';
import mqtt, { type IClientOptions, type IConnackPacket, type MqttClient } from 'mqtt';
import type { IPublishPacket } from 'mqtt-packet';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Db } from '../store/index.ts';
import { createTestStore, testDialects, testPostgresUrl, type TestStore } from '../test-support/dialects.ts';
import { sleep, waitFor } from '../test-support/wait.ts';
import { RawClient, startCore, type Harness } from './core/test-harness.ts';
import type { SessionJournal } from './core/index.ts';
import { createSqlSessionJournal, type SqlSessionJournal } from './mqtt-sessions.ts';

/**
 * Issue 19: persistent MQTT sessions in the store, with the real broker core, real mqtt.js and raw clients
 * and a real store of each dialect. A "restart" is a second core and a second journal on the same database
 * once the first journal's `durable()` resolved, the first core abandoned as a crash would leave it (its
 * sockets destroyed, its journal recording nothing more).
 */

/** The clock of both cores and journals: frozen, moved by the tests (message and session expiry). */
let clock = Date.now();
const now = () => clock;

interface LogLine {
  level: number;
  msg: string;
}

interface Node {
  h: Harness;
  sql: SqlSessionJournal;
  journal: SessionJournal;
  /** Sessions given back at start. */
  restored: number;
  logs: LogLine[];
  /** The process dies: nothing more is recorded, every socket is gone. */
  crash(): Promise<void>;
}

/**
 * A journal the test can cut off as a crash would: after `mute()` nothing more reaches it, and nothing
 * recorded after that point becomes durable.
 */
function crashable(inner: SessionJournal) {
  let muted = false;
  const journal: SessionJournal = {
    session: (state, connected) => void (muted || inner.session(state, connected)),
    ended: (clientId) => void (muted || inner.ended(clientId)),
    kept: (clientId, pending) => void (muted || inner.kept(clientId, pending)),
    inflight: (clientId, message, at) => void (muted || inner.inflight(clientId, message, at)),
    done: (clientId, message) => void (muted || inner.done(clientId, message)),
    get recorded() {
      return inner.recorded;
    },
    durable: () => (muted ? new Promise<void>(() => undefined) : inner.durable()),
  };
  return { journal, mute: () => void (muted = true) };
}

/** Fails with `what` rather than hanging the suite when `work` never settles. */
function within<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}

/** As the platform starts: the journal, the sessions it kept, the core, then restore. */
async function startNode(db: Db): Promise<Node> {
  const logs: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      logs.push(JSON.parse(chunk.toString()) as LogLine);
      callback();
    },
  });
  const sql = createSqlSessionJournal({
    db,
    logger: pino({ level: 'warn' }, sink),
    now,
    retryMs: { min: 20, max: 200 },
  });
  const { journal, mute } = crashable(sql.journal);
  const kept = await sql.load();
  const h = await startCore({ journal, now });
  const restored = h.core.restore(kept);
  let dead = false;
  const node: Node = {
    h,
    sql,
    journal,
    restored,
    logs,
    async crash() {
      if (dead) return;
      dead = true;
      try {
        await within(journal.durable(), 10_000, 'the journal to be durable before the crash');
      } finally {
        mute();
        for (const session of h.sessions.values()) session.conn.stream.destroy();
        await h.close();
      }
    },
  };
  return node;
}

interface Received {
  topic: string;
  payload: string;
  packet: IPublishPacket;
}

interface Client {
  client: MqttClient;
  connack: IConnackPacket;
  /** The PUBLISHes as they came on the wire (mqtt.js emits a QoS 2 message only at its PUBREL). */
  received: Received[];
  /** The messages mqtt.js handed over (a QoS 2 one once its flow is through to PUBREL). */
  messages: Received[];
}

/** What the store holds, read on a connection of its own (another process's view: committed rows only). */
async function rowsOf(db: Db) {
  const sessions = await db.selectFrom('mqtt_sessions').selectAll().orderBy('client_id').execute();
  const kept = await db
    .selectFrom('mqtt_session_messages as k')
    .innerJoin('mqtt_messages as m', 'm.id', 'k.message_id')
    .select(['k.client_id', 'k.qos', 'k.packet_id', 'k.phase', 'm.topic', 'm.payload'])
    .orderBy('k.client_id')
    .orderBy('k.message_id')
    .execute();
  const keptRows = await db.selectFrom('mqtt_session_messages').select('client_id').execute();
  const messages = await db.selectFrom('mqtt_messages').select(['id', 'topic']).orderBy('id').execute();
  return {
    sessions: sessions.map((s) => s.client_id),
    /** Per client id: the payloads it keeps, in order. */
    kept: kept.reduce<Record<string, string[]>>((by, r) => {
      (by[r.client_id] ??= []).push(Buffer.from(r.payload, 'base64').toString());
      return by;
    }, {}),
    keptRows: kept.map((r) => ({
      client: r.client_id,
      payload: Buffer.from(r.payload, 'base64').toString(),
      qos: Number(r.qos),
      packetId: r.packet_id === null ? null : Number(r.packet_id),
      phase: r.phase,
    })),
    /** Every kept row, joined or not (a row whose message is gone would show here only). */
    keptCount: keptRows.length,
    messages: messages.map((m) => m.topic),
  };
}

/**
 * A db whose queries can be held before they answer (inside the journal's transaction, so before its
 * commit): to look at the tables while a batch is being written.
 */
function gated(db: Db) {
  let gate: Promise<void> = Promise.resolve();
  let release = () => undefined as void;
  const plugin: KyselyPlugin = {
    transformQuery: (args) => args.node,
    transformResult: async (args) => {
      await gate;
      return args.result;
    },
  };
  return {
    db: db.withPlugin(plugin),
    hold() {
      gate = new Promise<void>((resolve) => (release = resolve));
    },
    release: () => release(),
  };
}

const acksOf = (c: RawClient) =>
  c.packets.flatMap((p) =>
    p.cmd === 'puback' || p.cmd === 'pubrec' ? [[p.cmd, p.messageId] as [string, number | undefined]] : [],
  );

describe.each(testDialects)('persistent MQTT sessions in the store (%s)', (dialect) => {
  let t: TestStore;
  let reader: Db;
  const nodes: Node[] = [];
  const clients: MqttClient[] = [];
  const raws: RawClient[] = [];

  beforeAll(async () => {
    t = await createTestStore(dialect);
    reader = (await t.openAnother()).db;
  }, 60_000);
  afterAll(async () => t?.cleanup(), 60_000);
  beforeEach(async () => {
    clock = Date.now();
    await reader.deleteFrom('mqtt_session_messages').execute();
    await reader.deleteFrom('mqtt_messages').execute();
    await reader.deleteFrom('mqtt_sessions').execute();
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.end(true);
    for (const r of raws.splice(0)) r.destroy();
    for (const n of nodes.splice(0)) await n.crash().catch(() => undefined);
  });

  /** A node on its own connection to the database (another process). */
  async function node(db?: Db): Promise<Node> {
    const n = await startNode(db ?? (await t.openAnother()).db);
    nodes.push(n);
    return n;
  }

  async function restart(n: Node): Promise<Node> {
    await n.crash();
    return node();
  }

  /** An mqtt.js client; messages are collected from the first byte after CONNACK. */
  async function connect(n: Node, clientId: string, options: IClientOptions = {}): Promise<Client> {
    const client = mqtt.connect(n.h.url, { clientId, reconnectPeriod: 0, ...options });
    clients.push(client);
    const received: Received[] = [];
    const messages: Received[] = [];
    client.on('packetreceive', (packet) => {
      if (packet.cmd === 'publish')
        received.push({ topic: packet.topic, payload: packet.payload.toString(), packet });
    });
    client.on('message', (topic, payload, packet) =>
      messages.push({ topic, payload: payload.toString(), packet }),
    );
    const connack = await new Promise<IConnackPacket>((resolve, reject) => {
      client.once('connect', resolve);
      client.once('error', reject);
    });
    client.on('error', () => undefined);
    return { client, connack, received, messages };
  }

  async function raw(n: Node, clientId: string, options: Parameters<typeof RawClient.connected>[2]) {
    const c = await RawClient.connected(n.h.port, clientId, options);
    raws.push(c);
    return c;
  }

  /** Leaves with a normal DISCONNECT, once the core has seen the connection end. */
  async function leave(n: Node, c: Client, clientId: string) {
    const before = n.h.disconnects.filter((d) => d.clientId === clientId).length;
    await c.client.endAsync();
    await waitFor(`${clientId} to be gone`, () =>
      n.h.disconnects.filter((d) => d.clientId === clientId).length > before ? true : undefined,
    );
  }

  it('a persistent session survives a restart: subscriptions, queued QoS 1 and 2 messages in order with their properties, Session Present', async () => {
    const a = await node(t.store.db);
    const v5 = await connect(a, 'keep-5', {
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 600 },
    });
    expect(v5.connack.sessionPresent).toBe(false);
    await v5.client.subscribeAsync('p/q/#', { qos: 2, properties: { subscriptionIdentifier: 7 } });
    await v5.client.subscribeAsync('own/t', { qos: 1, nl: true });
    await v5.client.subscribeAsync('$share/g1/sh/t', { qos: 1 });
    const v4 = await connect(a, 'keep-4', { protocolVersion: 4, clean: false });
    await v4.client.subscribeAsync({ 'p/q/#': { qos: 1 }, 'p/x': { qos: 2 } });
    await leave(a, v5, 'keep-5');
    await leave(a, v4, 'keep-4');

    const pub = await connect(a, 'pub-1', { protocolVersion: 5 });
    const correlationData = Buffer.from([0, 1, 2, 0xff]);
    const rich = {
      userProperties: { a: '1', b: ['x', 'y'] },
      correlationData,
      contentType: 'application/json',
      responseTopic: 'r/1',
      messageExpiryInterval: 300,
    };
    await pub.client.publishAsync('p/q/1', 'm1', { qos: 1, properties: rich });
    await pub.client.publishAsync('p/q/2', 'm2', { qos: 2 });
    await pub.client.publishAsync('p/q/3', 'm3', { qos: 1, properties: { contentType: 'text/plain' } });
    await pub.client.publishAsync('sh/t', 'shared', { qos: 1 });
    await pub.client.publishAsync('p/x', 'x1', { qos: 2 });
    // Acknowledged to the publisher: in the store already.
    const rows = await rowsOf(reader);
    expect(rows.sessions).toEqual(['keep-4', 'keep-5']);
    expect(rows.kept).toEqual({ 'keep-4': ['m1', 'm2', 'm3', 'x1'], 'keep-5': ['m1', 'm2', 'm3', 'shared'] });
    expect(rows.messages).toHaveLength(5);

    clock += 100_000;
    const b = await restart(a);
    expect(b.restored).toBe(2);

    const v5b = await connect(b, 'keep-5', {
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 600 },
    });
    expect(v5b.connack.sessionPresent).toBe(true);
    await waitFor('keep-5 queue', () => v5b.received.length >= 4 || undefined);
    expect(v5b.received.map((r) => [r.topic, r.payload, r.packet.qos])).toEqual([
      ['p/q/1', 'm1', 1],
      ['p/q/2', 'm2', 2],
      ['p/q/3', 'm3', 1],
      ['sh/t', 'shared', 1],
    ]);
    const [first, , third, shared] = v5b.received;
    expect(first?.packet.properties).toEqual({
      userProperties: { a: '1', b: ['x', 'y'] },
      correlationData,
      contentType: 'application/json',
      responseTopic: 'r/1',
      // [MQTT-3.3.2-6]: what remains of 300 s after 100 s.
      messageExpiryInterval: 200,
      subscriptionIdentifier: 7,
    });
    expect(third?.packet.properties).toEqual({ contentType: 'text/plain', subscriptionIdentifier: 7 });
    expect(shared?.packet.properties?.subscriptionIdentifier).toBeUndefined();

    const v4b = await connect(b, 'keep-4', { protocolVersion: 4, clean: false });
    expect(v4b.connack.sessionPresent).toBe(true);
    await waitFor('keep-4 queue', () => v4b.received.length >= 4 || undefined);
    expect(v4b.received.map((r) => [r.topic, r.payload, r.packet.qos])).toEqual([
      ['p/q/1', 'm1', 1],
      ['p/q/2', 'm2', 1],
      ['p/q/3', 'm3', 1],
      ['p/x', 'x1', 2],
    ]);

    // The subscriptions themselves came back: QoS, identifier, No Local, the share group.
    const pub2 = await connect(b, 'pub-2', { protocolVersion: 5 });
    await pub2.client.publishAsync('p/q/live', 'live', { qos: 2 });
    await waitFor('live', () => (v5b.received.length >= 5 && v4b.received.length >= 5) || undefined);
    expect(v5b.received[4]?.packet).toMatchObject({ topic: 'p/q/live', qos: 2 });
    expect(v5b.received[4]?.packet.properties?.subscriptionIdentifier).toBe(7);
    expect(v4b.received[4]?.packet).toMatchObject({ topic: 'p/q/live', qos: 1 });

    await v5b.client.publishAsync('own/t', 'mine', { qos: 1 });
    await pub2.client.publishAsync('own/t', 'theirs', { qos: 1 });
    await waitFor('own/t', () => v5b.received.some((r) => r.topic === 'own/t') || undefined);
    expect(v5b.received.filter((r) => r.topic === 'own/t').map((r) => r.payload)).toEqual(['theirs']);

    const member = await connect(b, 'share-2', { protocolVersion: 5 });
    await member.client.subscribeAsync('$share/g1/sh/t', { qos: 1 });
    await pub2.client.publishAsync('sh/t', 'r1', { qos: 1 });
    await pub2.client.publishAsync('sh/t', 'r2', { qos: 1 });
    await waitFor('both shared', () => {
      const n = v5b.received.filter((r) => r.payload.startsWith('r')).length + member.received.length;
      return n >= 2 || undefined;
    });
    await sleep(50);
    // One of the group each (round robin), not both to a plain subscription.
    expect(v5b.received.filter((r) => r.topic === 'sh/t' && r.payload !== 'shared')).toHaveLength(1);
    expect(member.received).toHaveLength(1);
  }, 60_000);

  it('a QoS 2 message in flight comes again after a restart with its packet id and DUP; one at PUBREL gets PUBREL again', async () => {
    const a = await node(t.store.db);
    const options = {
      version: 5 as const,
      clean: false,
      properties: { sessionExpiryInterval: 600, receiveMaximum: 2 },
    };
    const sub = await raw(a, 'q2-sub', options);
    sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'q2/#', qos: 2 }] });
    await sub.next('suback');
    const pub = await connect(a, 'q2-pub', { protocolVersion: 5 });
    for (const payload of ['a', 'b', 'c']) await pub.client.publishAsync('q2/t', payload, { qos: 2 });
    const first = await sub.next('publish');
    const second = await sub.next('publish');
    expect([first.payload.toString(), second.payload.toString()]).toEqual(['a', 'b']);
    sub.send({ cmd: 'pubrec', messageId: second.messageId });
    expect(await sub.next('pubrel')).toMatchObject({ messageId: second.messageId });
    await a.journal.durable();
    expect((await rowsOf(reader)).keptRows).toEqual([
      { client: 'q2-sub', payload: 'a', qos: 2, packetId: first.messageId, phase: 'publish' },
      { client: 'q2-sub', payload: 'b', qos: 2, packetId: second.messageId, phase: 'pubrel' },
      // Behind the client's Receive Maximum: queued, no packet id yet.
      { client: 'q2-sub', payload: 'c', qos: 2, packetId: null, phase: null },
    ]);

    const b = await restart(a);
    const back = await raw(b, 'q2-sub', options);
    await waitFor('the resend', () => (back.packets.length >= 2 ? true : undefined));
    await back.ping();
    // [MQTT-4.4.0-1]: in their original order; 'c' waits behind the window of 2.
    expect(back.packets.map((p) => p.cmd)).toEqual(['publish', 'pubrel']);
    const again = await back.next('publish');
    expect(again).toMatchObject({ messageId: first.messageId, dup: true, qos: 2, topic: 'q2/t' });
    expect(again.payload.toString()).toBe('a');
    expect(await back.next('pubrel')).toMatchObject({ messageId: second.messageId });
    back.send({ cmd: 'pubcomp', messageId: second.messageId });
    const c = await back.next('publish');
    expect(c).toMatchObject({ dup: false, qos: 2 });
    expect(c.payload.toString()).toBe('c');
    expect(c.messageId).not.toBe(first.messageId);
    // Both completed: nothing is left in the store for them.
    for (const id of [first.messageId, c.messageId]) {
      back.send({ cmd: 'pubrec', messageId: id });
      expect(await back.next('pubrel')).toMatchObject({ messageId: id });
      back.send({ cmd: 'pubcomp', messageId: id });
    }
    await back.ping();
    await b.journal.durable();
    const rows = await rowsOf(reader);
    expect(rows.keptCount).toBe(0);
    expect(rows.messages).toEqual([]);
  }, 60_000);

  it('a QoS 2 PUBLISH received before a restart and sent again after it is not delivered twice', async () => {
    const a = await node(t.store.db);
    const reader2 = await connect(a, 'q2-reader', { protocolVersion: 4, clean: false });
    await reader2.client.subscribeAsync('once/#', { qos: 2 });
    await leave(a, reader2, 'q2-reader');
    const options = { version: 5 as const, clean: false, properties: { sessionExpiryInterval: 600 } };
    const pub = await raw(a, 'q2-writer', options);
    pub.send({
      cmd: 'publish',
      topic: 'once/t',
      payload: 'x',
      qos: 2,
      messageId: 7,
      retain: false,
      dup: false,
    });
    // PUBREC only once the message and the received packet id are durable.
    expect(await pub.next('pubrec')).toMatchObject({ messageId: 7 });

    // The PUBREC was lost with the server: the publisher sends the PUBLISH again, then its PUBREL [MQTT-4.3.3].
    const b = await restart(a);
    const again = await raw(b, 'q2-writer', options);
    again.send({
      cmd: 'publish',
      topic: 'once/t',
      payload: 'x',
      qos: 2,
      messageId: 7,
      retain: false,
      dup: true,
    });
    expect(await again.next('pubrec')).toMatchObject({ messageId: 7 });
    again.send({ cmd: 'pubrel', messageId: 7 });
    const comp = await again.next('pubcomp');
    // Known: PUBCOMP Success, not 0x92 (packet identifier not found).
    expect(comp.reasonCode ?? 0).toBe(0);
    const back = await connect(b, 'q2-reader', { protocolVersion: 4, clean: false });
    await waitFor('the message', () => back.messages.length > 0 || undefined);
    await sleep(300);
    expect(back.messages.map((m) => m.payload)).toEqual(['x']);
    await b.journal.durable();
    // PUBREL done: the publisher's session keeps no received id.
    const stored = await reader
      .selectFrom('mqtt_sessions')
      .select('received')
      .where('client_id', '=', 'q2-writer')
      .executeTakeFirst();
    expect(stored?.received ?? null).toBeNull();
  }, 60_000);

  it('the PUBACK comes once the rows are committed, and acknowledgements keep the order of the PUBLISHes', async () => {
    const gate = gated(t.store.db);
    const a = await node(gate.db);
    const persistent = await connect(a, 'dur-sub', { protocolVersion: 4, clean: false });
    await persistent.client.subscribeAsync('dur/#', { qos: 1 });
    await leave(a, persistent, 'dur-sub');
    const clean = await connect(a, 'vol-sub', { protocolVersion: 4, clean: true });
    await clean.client.subscribeAsync('vol/#', { qos: 1 });
    await a.journal.durable();

    gate.hold();
    try {
      const pub = await raw(a, 'ord-pub', { version: 5 });
      const publish = (messageId: number, topic: string, qos: 1 | 2) =>
        pub.send({ cmd: 'publish', topic, payload: topic, qos, messageId, retain: false, dup: false });
      publish(1, 'dur/a', 1);
      publish(2, 'vol/a', 1);
      publish(3, 'dur/b', 2);
      publish(4, 'vol/b', 1);
      // Delivery does not wait for the store: the clean subscriber has its messages.
      await waitFor('vol/a and vol/b', () => clean.received.length >= 2 || undefined);
      // Another publisher whose message only a clean session takes is answered at once.
      const other = await connect(a, 'vol-pub', { protocolVersion: 5 });
      await within(other.client.publishAsync('vol/c', 'c', { qos: 1 }), 5000, 'PUBACK for vol/c');
      await pub.ping();
      await sleep(100);
      // None of the first publisher's: vol/a's waits behind dur/a's [MQTT-4.6.0-2, 4.6.0-3].
      expect(acksOf(pub)).toEqual([]);
      expect((await rowsOf(reader)).keptCount).toBe(0);

      gate.release();
      await waitFor('the first acknowledgement', () => acksOf(pub).length > 0 || undefined, {
        intervalMs: 1,
      });
      // At the moment it arrives, its message is committed for the persistent session.
      const atFirstAck = await rowsOf(reader);
      expect(atFirstAck.kept['dur-sub']?.[0]).toBe('dur/a');
      await waitFor('every acknowledgement', () => acksOf(pub).length >= 4 || undefined);
      expect(acksOf(pub)).toEqual([
        ['puback', 1],
        ['puback', 2],
        ['pubrec', 3],
        ['puback', 4],
      ]);
    } finally {
      gate.release();
    }
    await a.journal.durable();
    // The clean session added nothing: only the persistent one is there, with only its messages.
    const rows = await rowsOf(reader);
    expect(rows.sessions).toEqual(['dur-sub']);
    expect(rows.kept).toEqual({ 'dur-sub': ['dur/a', 'dur/b'] });
    expect(rows.messages).toEqual(['dur/a', 'dur/b']);
  }, 60_000);

  it('while the store holds acknowledgements back, a client that ignores its window is read no further than the Receive Maximum', async () => {
    const gate = gated(t.store.db);
    const a = await node(gate.db);
    const persistent = await connect(a, 'slow-sub', { protocolVersion: 4, clean: false });
    await persistent.client.subscribeAsync('flood/#', { qos: 1 });
    await leave(a, persistent, 'slow-sub');
    await a.journal.durable();
    const before = a.h.core.stats().messagesReceived;
    gate.hold();
    try {
      // 3.1.1 has no Receive Maximum: this client sends 60 QoS 1 PUBLISHes without waiting for a PUBACK.
      const pub = await raw(a, 'flood-pub', { version: 4 });
      for (let id = 1; id <= 60; id++)
        pub.send({
          cmd: 'publish',
          topic: 'flood/x',
          payload: String(id),
          qos: 1,
          messageId: id,
          retain: false,
          dup: false,
        });
      await sleep(300);
      // The core stops reading at the server's Receive Maximum (10 in the harness) of waiting acknowledgements.
      expect(a.h.core.stats().messagesReceived - before).toBe(10);
      expect(acksOf(pub)).toEqual([]);
      gate.release();
      await waitFor('every acknowledgement', () => acksOf(pub).length >= 60 || undefined, 10_000);
      expect(acksOf(pub).map(([, id]) => id)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    } finally {
      gate.release();
    }
  }, 60_000);

  it('a QoS 2 PUBLISH sent again before its PUBREC gets the PUBREC only once the message is durable', async () => {
    const gate = gated(t.store.db);
    const a = await node(gate.db);
    const persistent = await connect(a, 'dup-sub', { protocolVersion: 4, clean: false });
    await persistent.client.subscribeAsync('dup/#', { qos: 2 });
    await leave(a, persistent, 'dup-sub');
    await a.journal.durable();
    gate.hold();
    try {
      const pub = await raw(a, 'dup-pub', { version: 4 });
      const publish = { cmd: 'publish', topic: 'dup/t', payload: 'once', qos: 2, messageId: 9 } as const;
      pub.send({ ...publish, retain: false, dup: false });
      pub.send({ ...publish, retain: false, dup: true });
      await pub.ping();
      await sleep(100);
      expect(acksOf(pub)).toEqual([]);
      gate.release();
      await waitFor('the PUBRECs', () => acksOf(pub).length >= 2 || undefined);
      expect((await rowsOf(reader)).kept).toEqual({ 'dup-sub': ['once'] });
      expect(acksOf(pub)).toEqual([
        ['pubrec', 9],
        ['pubrec', 9],
      ]);
    } finally {
      gate.release();
    }
  }, 60_000);

  it('nothing is left behind by a subscriber that acknowledges', async () => {
    const a = await node(t.store.db);
    const sub = await connect(a, 'ack-sub', {
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 600 },
    });
    await sub.client.subscribeAsync('ak/#', { qos: 2 });
    // A second persistent session, offline, keeps the same messages until it is back.
    const away = await connect(a, 'ack-away', { protocolVersion: 4, clean: false });
    await away.client.subscribeAsync('ak/#', { qos: 2 });
    await leave(a, away, 'ack-away');
    const pub = await connect(a, 'ack-pub', { protocolVersion: 5 });
    for (let i = 0; i < 10; i++) await pub.client.publishAsync('ak/t', `k${i}`, { qos: i % 2 === 0 ? 1 : 2 });
    await waitFor('ten messages', () => sub.messages.length >= 10 || undefined);
    // Its acknowledgements (PUBACK, PUBREC/PUBCOMP) all written before its DISCONNECT.
    await leave(a, sub, 'ack-sub');
    await a.journal.durable();
    let rows = await rowsOf(reader);
    expect(rows.sessions).toEqual(['ack-away', 'ack-sub']);
    expect(rows.kept['ack-sub']).toBeUndefined();
    expect(rows.kept['ack-away']).toHaveLength(10);
    expect(rows.messages).toHaveLength(10);

    const back = await connect(a, 'ack-away', { protocolVersion: 4, clean: false });
    await waitFor('ten messages', () => back.messages.length >= 10 || undefined);
    await leave(a, back, 'ack-away');
    await a.journal.durable();
    rows = await rowsOf(reader);
    expect(rows.keptCount).toBe(0);
    expect(rows.messages).toEqual([]);
  }, 60_000);

  it('a session that ends leaves no rows: clean start, expiry 0 at DISCONNECT, expiry passed, expiry 0 on reconnect', async () => {
    const a = await node(t.store.db);
    const pub = await connect(a, 'end-pub', { protocolVersion: 5 });
    const keptFor = async (clientId: string) => {
      await a.journal.durable();
      const rows = await rowsOf(reader);
      return { session: rows.sessions.includes(clientId), kept: rows.kept[clientId] ?? [] };
    };
    // Each session subscribes, leaves, and gets two messages kept for it.
    const offlineWithTwo = async (clientId: string, options: IClientOptions) => {
      const c = await connect(a, clientId, { clean: false, ...options });
      await c.client.subscribeAsync(`end/${clientId}`, { qos: 1 });
      await leave(a, c, clientId);
      for (const p of ['1', '2']) await pub.client.publishAsync(`end/${clientId}`, p, { qos: 1 });
      expect(await keptFor(clientId)).toEqual({ session: true, kept: ['1', '2'] });
    };
    const v5 = (sessionExpiryInterval: number): IClientOptions => ({
      protocolVersion: 5,
      properties: { sessionExpiryInterval },
    });

    // 3.1.1, back with clean session 1 [MQTT-3.1.2-6].
    await offlineWithTwo('end-clean', { protocolVersion: 4 });
    const fresh = await connect(a, 'end-clean', { protocolVersion: 4, clean: true });
    expect(fresh.connack.sessionPresent).toBe(false);
    expect(await keptFor('end-clean')).toEqual({ session: false, kept: [] });

    // MQTT 5, back (messages in flight, unacknowledged), then DISCONNECT with session expiry 0.
    await offlineWithTwo('end-zero', v5(600));
    const zero = await raw(a, 'end-zero', {
      version: 5,
      clean: false,
      properties: { sessionExpiryInterval: 600 },
    });
    await zero.next('publish');
    await zero.next('publish');
    zero.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
    await zero.whenClosed();
    expect(await keptFor('end-zero')).toEqual({ session: false, kept: [] });

    // MQTT 5, its expiry passes while it is away (§4.1).
    await offlineWithTwo('end-expiry', v5(60));
    clock += 61_000;
    a.h.core.internals().tick();
    expect(await keptFor('end-expiry')).toEqual({ session: false, kept: [] });
    const late = await connect(a, 'end-expiry', { clean: false, ...v5(60) });
    expect(late.connack.sessionPresent).toBe(false);
    expect(late.received).toEqual([]);

    // MQTT 5, back with session expiry 0: the session now ends with this connection, so a crash would end
    // it too; nothing of it is kept in the store any more.
    await offlineWithTwo('end-later', v5(600));
    const later = await raw(a, 'end-later', {
      version: 5,
      clean: false,
      properties: { sessionExpiryInterval: 0 },
    });
    await later.next('publish');
    await later.next('publish');
    expect(await keptFor('end-later')).toEqual({ session: false, kept: [] });

    const rows = await rowsOf(reader);
    expect(rows.keptCount).toBe(0);
    expect(rows.messages).toEqual([]);
    // Only the new session of end-expiry's last connection is kept (still connected, nothing for it).
    expect(rows.sessions).toEqual(['end-expiry']);
    const b = await restart(a);
    expect(b.restored).toBe(1);
  }, 60_000);

  it('a restored session whose expiry passed while the server was down ends at restore, and its rows go', async () => {
    const a = await node(t.store.db);
    const pub = await connect(a, 'down-pub', { protocolVersion: 5 });
    const subscribe = async (clientId: string, expiry: number, stay: boolean) => {
      const c = await connect(a, clientId, {
        protocolVersion: 5,
        clean: false,
        properties: { sessionExpiryInterval: expiry },
      });
      await c.client.subscribeAsync('down/t', { qos: 1 });
      if (!stay) await leave(a, c, clientId);
      return c;
    };
    await subscribe('down-short', 60, false);
    await subscribe('down-long', 3600, false);
    // Connected when the server dies: its expiry counts from the restart (as if it left then).
    const connected = await subscribe('down-on', 60, true);
    // Never acknowledges: its messages stay in flight.
    connected.client.handleMessage = () => undefined;
    for (const p of ['1', '2']) await pub.client.publishAsync('down/t', p, { qos: 1 });
    expect((await rowsOf(reader)).kept).toEqual({
      'down-long': ['1', '2'],
      'down-on': ['1', '2'],
      'down-short': ['1', '2'],
    });

    clock += 120_000;
    const b = await restart(a);
    expect(b.restored).toBe(3);
    await b.journal.durable();
    let rows = await rowsOf(reader);
    expect(rows.sessions).toEqual(['down-long', 'down-on']);
    expect(rows.kept).toEqual({ 'down-long': ['1', '2'], 'down-on': ['1', '2'] });
    expect(rows.messages).toHaveLength(2);
    const short = await connect(b, 'down-short', {
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    expect(short.connack.sessionPresent).toBe(false);
    await short.client.endAsync();

    // down-on's 60 s run from the restart.
    clock += 61_000;
    b.h.core.internals().tick();
    await b.journal.durable();
    rows = await rowsOf(reader);
    expect(rows.sessions).toEqual(['down-long']);
    const long = await connect(b, 'down-long', {
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
    });
    expect(long.connack.sessionPresent).toBe(true);
    await waitFor('down-long', () => long.received.length >= 2 || undefined);
    expect(long.received.map((r) => r.payload)).toEqual(['1', '2']);
  }, 60_000);

  /** The database refuses for a while: SQLite loses the table (renamed away), PostgreSQL its connections. */
  async function outage(): Promise<() => Promise<void>> {
    if (dialect === 'sqlite') {
      const other = (await t.openAnother()).db;
      await other.schema.alterTable('mqtt_session_messages').renameTo('mqtt_session_messages_away').execute();
      return async () => {
        await other.schema
          .alterTable('mqtt_session_messages_away')
          .renameTo('mqtt_session_messages')
          .execute();
      };
    }
    const name = new URL(t.location.url ?? '').pathname.slice(1);
    const admin = new pg.Client({ connectionString: testPostgresUrl });
    await admin.connect();
    await admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS false`);
    await admin.query(
      'select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()',
      [name],
    );
    return async () => {
      await admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`);
      await admin.end();
    };
  }

  const readable = () =>
    waitFor('the store to answer', () => rowsOf(reader), { retryErrors: true, timeoutMs: 30_000 });

  it('a store that fails makes acknowledgements wait; they come once it is back, and nothing recorded is lost', async () => {
    const a = await node(t.store.db);
    const away = await connect(a, 'out-away', {
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 600 },
    });
    await away.client.subscribeAsync('out/#', { qos: 2 });
    await leave(a, away, 'out-away');
    const on = await raw(a, 'out-on', {
      version: 5,
      clean: false,
      properties: { sessionExpiryInterval: 600 },
    });
    on.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'out/#', qos: 2 }] });
    await on.next('suback');
    const pub = await connect(a, 'out-pub', { protocolVersion: 5 });
    await a.journal.durable();

    const back = await outage();
    let restored = false;
    try {
      const acked: string[] = [];
      // The acknowledgements as they come (a QoS 2 publish resolves later, at its PUBCOMP).
      const acks: string[] = [];
      pub.client.on('packetreceive', (p) => {
        if (p.cmd === 'puback' || p.cmd === 'pubrec') acks.push(p.cmd);
      });
      const sends = (['o1', 'o2', 'o3'] as const).map((p, i) =>
        pub.client.publishAsync('out/t', p, { qos: i === 1 ? 2 : 1 }).then(() => acked.push(p)),
      );
      // The connected subscriber gets them at once and acknowledges the first two.
      const got = [await on.next('publish'), await on.next('publish'), await on.next('publish')];
      expect(got.map((p) => p.payload.toString())).toEqual(['o1', 'o2', 'o3']);
      on.send({ cmd: 'puback', messageId: got[0]?.messageId });
      on.send({ cmd: 'pubrec', messageId: got[1]?.messageId });
      await on.next('pubrel');
      on.send({ cmd: 'pubcomp', messageId: got[1]?.messageId });
      // A new persistent session while the store is down.
      const late = await connect(a, 'out-late', {
        protocolVersion: 5,
        clean: false,
        properties: { sessionExpiryInterval: 600 },
      });
      await late.client.subscribeAsync('late/#', { qos: 1 });
      await waitFor('a failed batch', () =>
        a.logs.some((l) => l.msg.includes('a batch failed')) ? true : undefined,
      );
      await sleep(300);
      expect(acked).toEqual([]);
      expect(acks).toEqual([]);
      expect(a.sql.stats().failures).toBeGreaterThan(0);

      await back();
      restored = true;
      await within(Promise.all(sends), 30_000, 'acknowledgements after the outage');
      expect(acked.sort()).toEqual(['o1', 'o2', 'o3']);
      expect(acks).toEqual(['puback', 'pubrec', 'puback']);
      await a.journal.durable();
      expect(a.logs.some((l) => l.msg.includes('writing again'))).toBe(true);
    } finally {
      if (!restored) await back();
    }
    const rows = await readable();
    expect(rows.sessions).toEqual(['out-away', 'out-late', 'out-on']);
    expect(rows.kept).toEqual({ 'out-away': ['o1', 'o2', 'o3'], 'out-on': ['o3'] });

    const b = await restart(a);
    expect(b.restored).toBe(3);
    const awayBack = await connect(b, 'out-away', {
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 600 },
    });
    const onBack = await connect(b, 'out-on', {
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 600 },
    });
    const lateBack = await connect(b, 'out-late', {
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 600 },
    });
    expect(lateBack.connack.sessionPresent).toBe(true);
    await waitFor(
      'after the outage',
      () => (awayBack.received.length >= 3 && onBack.received.length >= 1) || undefined,
    );
    await sleep(50);
    expect(awayBack.received.map((r) => r.payload)).toEqual(['o1', 'o2', 'o3']);
    expect(onBack.received.map((r) => r.payload)).toEqual(['o3']);
    await pub.client.endAsync(true);
    const pub2 = await connect(b, 'out-pub', { protocolVersion: 5 });
    await pub2.client.publishAsync('late/t', 'late', { qos: 1 });
    await waitFor('late/t', () => lateBack.received.length >= 1 || undefined);
  }, 90_000);

  it('a batch whose commit went through but whose answer was lost is written again without harm', async () => {
    let loseNext = false;
    const base = (await t.openAnother()).db;
    // The connection drops as COMMIT is answered: the journal cannot know it was written, and writes again.
    const lossy = new Proxy(base, {
      get(target, prop, receiver) {
        if (prop !== 'transaction') {
          const value = Reflect.get(target, prop, receiver) as unknown;
          return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
        }
        return () => ({
          async execute<T>(work: Parameters<ReturnType<Db['transaction']>['execute']>[0]): Promise<T> {
            const result = (await target.transaction().execute(work)) as T;
            if (loseNext) {
              loseNext = false;
              throw new Error('Connection terminated unexpectedly');
            }
            return result;
          },
        });
      },
    });
    const a = await node(lossy);
    const sub = await connect(a, 'lost-sub', { protocolVersion: 4, clean: false });
    await sub.client.subscribeAsync('lost/#', { qos: 2 });
    await leave(a, sub, 'lost-sub');
    await a.journal.durable();
    const pub = await connect(a, 'lost-pub', { protocolVersion: 5 });
    loseNext = true;
    await within(pub.client.publishAsync('lost/t', 'x', { qos: 1 }), 10_000, 'PUBACK');
    expect(loseNext).toBe(false);
    expect(a.logs.map((l) => l.msg)).toEqual([
      'mqtt session store: a batch failed, retrying',
      'mqtt session store: writing again',
    ]);
    const rows = await rowsOf(reader);
    expect(rows.kept).toEqual({ 'lost-sub': ['x'] });
    expect(rows.keptCount).toBe(1);
  }, 60_000);
});
