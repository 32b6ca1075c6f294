import fc from 'fast-check';
import type { IPublishPacket, Packet } from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { filterMatches } from './topic-trie.ts';
import { fuzzParams, fuzzTimeout, memoryPair, settle, type Version } from './fuzz-harness.ts';
import { RawClient, startCore, type Harness } from './test-harness.ts';

const CLIENTS = ['c0', 'c1', 'c2'] as const;
const TOPICS = ['t/a', 't/b', 'u/a'] as const;
const FILTERS = ['t/a', 't/+', 't/#', '#', 'u/a', '+/a'] as const;
/** Small on purpose: offline sessions and blocked windows reach it, and its drops are counted. */
const MAX_QUEUED = 4;
const MAX_EXPIRY = 3600;

type QoS = 0 | 1 | 2;
type Action =
  | {
      t: 'connect';
      c: number;
      v: Version;
      clean: boolean;
      expiry: number;
      keepalive: number;
      receiveMaximum: number | undefined;
      manual: boolean;
    }
  | { t: 'subscribe'; c: number; filter: string; qos: QoS; nl: boolean }
  | { t: 'unsubscribe'; c: number; filter: string }
  | { t: 'publish'; c: number; topic: string; qos: QoS; resend: boolean }
  | { t: 'ack'; c: number }
  | { t: 'disconnect'; c: number; abrupt: boolean }
  | { t: 'idle'; seconds: number };

/** For a connect, the client; for the other actions, which of the connected clients acts. */
const client = fc.nat(CLIENTS.length - 1);
const qos = fc.constantFrom<QoS>(0, 1, 2);
const action: fc.Arbitrary<Action> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant('connect' as const),
      c: client,
      v: fc.constantFrom<Version>(4, 5),
      clean: fc.boolean(),
      expiry: fc.constantFrom(0, 10, MAX_EXPIRY),
      keepalive: fc.constantFrom(0, 0, 10),
      receiveMaximum: fc.constantFrom(undefined, 1, 2),
      manual: fc.boolean(),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant('subscribe' as const),
      c: client,
      filter: fc.constantFrom(...FILTERS),
      qos,
      nl: fc.boolean(),
    }),
  },
  fc.record({ t: fc.constant('unsubscribe' as const), c: client, filter: fc.constantFrom(...FILTERS) }),
  {
    weight: 5,
    arbitrary: fc.record({
      t: fc.constant('publish' as const),
      c: client,
      topic: fc.constantFrom(...TOPICS),
      qos,
      resend: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('ack' as const), c: client }) },
  fc.record({ t: fc.constant('disconnect' as const), c: client, abrupt: fc.boolean() }),
  fc.record({ t: fc.constant('idle' as const), seconds: fc.constantFrom(11, 16, MAX_EXPIRY + 1) }),
);

/** One delivery a subscriber's session owes (or may owe) for a message. */
interface Owed {
  qos: QoS;
  /** Whether the message must arrive (QoS 1/2 to a session that exists); QoS 0 may be lost. */
  must: boolean;
}

/** The server's session of a client, as the model sees it. */
interface ModelSession {
  epoch: number;
  expirySec: number;
  subs: Map<string, { qos: QoS; nl: boolean }>;
  offlineSince: number | undefined;
}

/** A client: its connection, its own session state (what a real client keeps for QoS 1/2), and the model. */
class FuzzClient {
  conn: RawClient | undefined;
  version: Version = 4;
  manual = false;
  keepalive = 0;
  lastSent = 0;
  nextId = 1;
  session: ModelSession | undefined;
  /** Server → client packet ids in use: PUBLISH received, PUBACK or PUBCOMP not sent yet. */
  readonly inflight = new Map<number, { key: string; qos: QoS }>();
  /** QoS 2 ids received, PUBREL not yet (a PUBLISH with one of them is the same message again). */
  readonly awaitingRel = new Set<number>();
  /** Acknowledgements a manual client has not sent yet. */
  pendingAcks: Packet[] = [];
  /** Packets answered to this client's requests (SUBACK, PUBACK, …), for the action that waits for them. */
  answers: Packet[] = [];
  /** Every DISCONNECT the server sent this client. */
  readonly disconnects: number[] = [];
  /** Every connection it opened (a taken-over one may still hand over what it received). */
  readonly connections: RawClient[] = [];

  constructor(readonly id: string) {}
}

interface World {
  h: Harness;
  clock: { now: number };
  clients: FuzzClient[];
  /** Per subscriber session (`client|epoch`) and message: what is owed, and what arrived (counted once per id). */
  owed: Map<string, Map<string, Owed>>;
  got: Map<string, Map<string, number>>;
  /** The drops the core counted for each session (`client|epoch`), the largest seen. */
  drops: Map<string, number>;
  epochs: number;
  messages: number;
  /** Sessions resumed (Session Present 1) and ended by their expiry, for the totals. */
  resumed: number;
  expired: number;
  log: string[];
}

const sessionKey = (c: FuzzClient): string => `${c.id}|${c.session?.epoch ?? -1}`;
const fail = (w: World, why: string): never => {
  throw new Error(`${why}\nsteps:\n  ${w.log.join('\n  ')}`);
};

/** What a client's connection received since last time: deliveries counted, acknowledgements answered. */
function take(w: World, c: FuzzClient, conn: RawClient): boolean {
  const packets = conn.packets.splice(0);
  for (const p of packets) {
    if (p.cmd === 'publish') receivePublish(w, c, p);
    else if (p.cmd === 'pubrel') {
      const id = p.messageId ?? 0;
      c.awaitingRel.delete(id);
      const ack: Packet = { cmd: 'pubcomp', messageId: id };
      if (c.manual) c.pendingAcks.push(ack);
      else sendAck(w, c, ack);
    } else if (p.cmd === 'disconnect') c.disconnects.push(p.reasonCode ?? 0);
    else c.answers.push(p);
  }
  return packets.length > 0;
}

function sendAck(w: World, c: FuzzClient, ack: Packet): void {
  const id = (ack as { messageId: number }).messageId;
  if (ack.cmd === 'puback' || ack.cmd === 'pubcomp') c.inflight.delete(id);
  if (!c.conn || c.conn.closed) return;
  c.conn.send(ack);
  c.lastSent = w.clock.now;
}

function receivePublish(w: World, c: FuzzClient, p: IPublishPacket): void {
  const msg = p.payload.toString();
  const key = sessionKey(c);
  const owed = w.owed.get(key)?.get(msg);
  if (!owed) fail(w, `${c.id} got ${msg} (QoS ${p.qos}) that its session ${key} was never owed`);
  else if (p.qos !== owed.qos) fail(w, `${c.id} got ${msg} at QoS ${p.qos}, owed at QoS ${owed.qos}`);
  const id = p.messageId ?? 0;
  let count = true;
  if (p.qos > 0) {
    const using = c.inflight.get(id);
    // [MQTT-2.2.1-4] a packet id is not reused while in flight; the same message again is a resend (DUP).
    if (using && using.key !== msg)
      fail(w, `${c.id}: packet id ${id} reused for ${msg} while ${using.key} is in flight`);
    if (using && !p.dup) fail(w, `${c.id}: ${msg} sent again without DUP [MQTT-3.3.1-1]`);
    if (p.qos === 2 && c.awaitingRel.has(id)) count = false; // [MQTT-4.3.3-9]: the same message, not again
    c.inflight.set(id, { key: msg, qos: p.qos });
    if (p.qos === 2) c.awaitingRel.add(id);
    const ack: Packet = { cmd: p.qos === 1 ? 'puback' : 'pubrec', messageId: id };
    if (c.manual) c.pendingAcks.push(ack);
    else sendAck(w, c, ack);
  }
  if (!count) return;
  const got = w.got.get(key) ?? new Map<string, number>();
  w.got.set(key, got);
  got.set(msg, (got.get(msg) ?? 0) + 1);
}

/** Lets the core and the clients answer each other until nothing moves. */
async function pump(w: World): Promise<void> {
  for (let round = 0; round < 50; round++) {
    await settle(3);
    let moved = false;
    for (const c of w.clients) for (const conn of c.connections) if (take(w, c, conn)) moved = true;
    if (!moved) return;
  }
  fail(w, 'the core and the clients never came to rest');
}

function answer<C extends Packet['cmd']>(
  w: World,
  c: FuzzClient,
  cmd: C,
  id?: number,
): Extract<Packet, { cmd: C }> {
  const i = c.answers.findIndex(
    (p) => p.cmd === cmd && (id === undefined || (p as { messageId?: number }).messageId === id),
  );
  if (i < 0)
    fail(
      w,
      `${c.id}: no ${cmd}${id !== undefined ? ` ${id}` : ''} (got ${c.answers.map((p) => p.cmd).join(',')})`,
    );
  return c.answers.splice(i, 1)[0] as Extract<Packet, { cmd: C }>;
}

/** The session ends (clean start, expiry, expiry 0 at close): what it was owed and not given is off. */
function endSession(w: World, c: FuzzClient): void {
  c.session = undefined;
  c.inflight.clear();
  c.awaitingRel.clear();
  c.pendingAcks = [];
}

/** The connection closed (by either side): the session goes offline, or ends with an expiry of 0. */
function wentOffline(w: World, c: FuzzClient): void {
  c.conn = undefined;
  c.pendingAcks = [];
  if (!c.session) return;
  if (c.session.expirySec === 0) endSession(w, c);
  else c.session.offlineSince = w.clock.now;
}

function live(c: FuzzClient): boolean {
  return c.conn !== undefined;
}

async function connect(w: World, c: FuzzClient, a: Extract<Action, { t: 'connect' }>): Promise<void> {
  const takeover = c.conn;
  if (takeover) wentOffline(w, c); // [MQTT-3.1.4-3]: the old connection is closed first
  const expirySec = a.v === 5 ? Math.min(a.expiry, MAX_EXPIRY) : a.clean ? 0 : MAX_EXPIRY;
  const present = c.session !== undefined && !a.clean;
  if (c.session && a.clean) endSession(w, c);
  if (!c.session) c.session = { epoch: ++w.epochs, expirySec, subs: new Map(), offlineSince: undefined };
  c.session.expirySec = expirySec;
  c.session.offlineSince = undefined;
  const [server, end] = memoryPair();
  w.h.core.accept(server, { remoteAddress: 'memory' });
  const conn = await RawClient.open(end, a.v);
  c.connections.push(conn);
  conn.send({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: a.v,
    clientId: c.id,
    clean: a.clean,
    keepalive: a.keepalive,
    ...(a.v === 5
      ? {
          properties: {
            ...(a.expiry > 0 ? { sessionExpiryInterval: a.expiry } : {}),
            ...(a.receiveMaximum !== undefined ? { receiveMaximum: a.receiveMaximum } : {}),
          },
        }
      : {}),
  });
  c.conn = conn;
  c.version = a.v;
  c.manual = a.manual;
  c.keepalive = a.keepalive;
  c.lastSent = w.clock.now;
  c.answers = [];
  await pump(w);
  if (takeover) {
    if (!takeover.closed) fail(w, `${c.id}: the connection taken over is still open`);
    const expected = takeover.version === 5 ? [0x8e] : [];
    // The old connection's DISCONNECT (only it, and only on MQTT 5).
    if (c.disconnects.splice(0).join() !== expected.join())
      fail(w, `${c.id}: takeover DISCONNECT ${JSON.stringify(expected)}`);
  }
  const connack = answer(w, c, 'connack');
  const code =
    (connack as { returnCode?: number; reasonCode?: number }).returnCode ?? connack.reasonCode ?? 0;
  if (code !== 0) fail(w, `${c.id}: CONNECT refused with ${code}`);
  // [MQTT-3.2.2-2, 3.2.2-3]: Session Present tells whether the session was resumed.
  if (connack.sessionPresent !== present)
    fail(w, `${c.id}: session present ${connack.sessionPresent}, model ${present}`);
  if (present) w.resumed += 1;
  if (!present) {
    c.inflight.clear();
    c.awaitingRel.clear();
  }
}

function owe(w: World, from: FuzzClient, topic: string, q: QoS, msg: string): void {
  for (const c of w.clients) {
    const s = c.session;
    if (!s) continue;
    let best = -1;
    for (const [filter, sub] of s.subs) {
      if (!filterMatches(filter, topic)) continue;
      if (sub.nl && c === from) continue; // [MQTT-3.8.3-3]
      best = Math.max(best, sub.qos);
    }
    if (best < 0) continue;
    const eff = Math.min(best, q) as QoS;
    // QoS 0 is not kept for an offline session (§4.1); QoS 1/2 must arrive, to a live or a kept session.
    if (eff === 0 && !live(c)) continue;
    const key = sessionKey(c);
    const owed = w.owed.get(key) ?? new Map<string, Owed>();
    w.owed.set(key, owed);
    owed.set(msg, { qos: eff, must: eff > 0 });
  }
}

async function publish(w: World, c: FuzzClient, a: Extract<Action, { t: 'publish' }>): Promise<void> {
  const conn = c.conn as RawClient;
  const msg = `m${++w.messages}`;
  const id = c.nextId;
  c.nextId = (c.nextId % 65535) + 1;
  const packet = {
    cmd: 'publish',
    topic: a.topic,
    payload: msg,
    qos: a.qos,
    retain: false,
    dup: false,
  } as const;
  owe(w, c, a.topic, a.qos, msg);
  conn.send(a.qos > 0 ? { ...packet, messageId: id } : packet);
  c.lastSent = w.clock.now;
  await pump(w);
  if (a.qos === 1) expect(answer(w, c, 'puback', id).reasonCode ?? 0).toBe(0);
  if (a.qos === 2) {
    expect(answer(w, c, 'pubrec', id).reasonCode ?? 0).toBe(0);
    if (a.resend) {
      // [MQTT-4.3.3-9]: the same QoS 2 PUBLISH again before PUBREL: PUBREC again, not delivered twice.
      conn.send({ ...packet, messageId: id, dup: true });
      await pump(w);
      answer(w, c, 'pubrec', id);
    }
    conn.send({ cmd: 'pubrel', messageId: id });
    c.lastSent = w.clock.now;
    await pump(w);
    expect(answer(w, c, 'pubcomp', id).reasonCode ?? 0).toBe(0);
  }
}

async function step(w: World, a: Action): Promise<void> {
  // A connect names its client; any other action is taken by one of the connected clients (none: skipped).
  const connected = w.clients.filter(live);
  const c = !('c' in a)
    ? undefined
    : a.t === 'connect'
      ? w.clients[a.c]
      : connected[a.c % Math.max(1, connected.length)];
  if ('c' in a && !c) return;
  w.log.push(JSON.stringify(a));
  const conn = c?.conn;
  switch (a.t) {
    case 'connect':
      return connect(w, c as FuzzClient, a);
    case 'subscribe': {
      const { session } = c as FuzzClient;
      const nl = a.nl && c?.version === 5;
      conn?.send({
        cmd: 'subscribe',
        messageId: 7,
        subscriptions: [{ topic: a.filter, qos: a.qos, ...(c?.version === 5 ? { nl } : {}) }],
      });
      (c as FuzzClient).lastSent = w.clock.now;
      await pump(w);
      expect(answer(w, c as FuzzClient, 'suback', 7).granted).toEqual([a.qos]);
      session?.subs.set(a.filter, { qos: a.qos, nl });
      return;
    }
    case 'unsubscribe': {
      conn?.send({ cmd: 'unsubscribe', messageId: 8, unsubscriptions: [a.filter] });
      (c as FuzzClient).lastSent = w.clock.now;
      await pump(w);
      answer(w, c as FuzzClient, 'unsuback', 8);
      c?.session?.subs.delete(a.filter);
      return;
    }
    case 'publish':
      return publish(w, c as FuzzClient, a);
    case 'ack': {
      const me = c as FuzzClient;
      for (const ack of me.pendingAcks.splice(0)) sendAck(w, me, ack);
      await pump(w);
      return;
    }
    case 'disconnect':
      return disconnect(w, c as FuzzClient, a.abrupt);
    case 'idle':
      return idle(w, a.seconds);
  }
}

/** A normal DISCONNECT (the will discarded), or the connection just dropped. */
async function disconnect(w: World, c: FuzzClient, abrupt: boolean): Promise<void> {
  const conn = c.conn;
  if (abrupt) conn?.destroy();
  else {
    conn?.send({ cmd: 'disconnect' });
    conn?.end();
  }
  wentOffline(w, c);
  await pump(w);
  if (conn && !conn.closed) fail(w, `${c.id}: still open after disconnecting`);
}

/** Time passes on the core's clock: keep alives [MQTT-3.1.2-22] and session expiries (§4.1) run out. */
async function idle(w: World, seconds: number): Promise<void> {
  w.clock.now += seconds * 1000;
  const now = w.clock.now;
  const timedOut = w.clients.filter(
    (c) => c.conn && c.keepalive > 0 && c.lastSent + c.keepalive * 1500 <= now,
  );
  const expired = w.clients.filter(
    (c) =>
      !c.conn &&
      c.session?.offlineSince !== undefined &&
      c.session.offlineSince + c.session.expirySec * 1000 <= now,
  );
  w.h.core.internals().tick();
  for (const c of expired) endSession(w, c);
  w.expired += expired.length;
  for (const c of timedOut) {
    const conn = c.conn as RawClient;
    await pump(w);
    if (!conn.closed) fail(w, `${c.id}: still open past its keep alive`);
    if (c.disconnects.splice(0).join() !== (c.version === 5 ? '141' : ''))
      fail(w, `${c.id}: keep alive DISCONNECT 0x8D`);
    wentOffline(w, c);
  }
  await pump(w);
}

/** What holds after every step: no unexpected DISCONNECT or error, and the core's sizes match the model's. */
function invariants(w: World): void {
  for (const c of w.clients)
    if (c.disconnects.length > 0) fail(w, `${c.id}: unexpected DISCONNECT ${c.disconnects.join()}`);
  if (w.h.errors.length > 0) fail(w, `core errors: ${w.h.errors.join('; ')}`);
  const stats = w.h.core.stats();
  const sessions = w.clients.filter((c) => c.session);
  const live_ = w.clients.filter(live);
  const offline = sessions.filter((c) => !live(c));
  if (stats.connections !== live_.length) fail(w, `connections ${stats.connections}, model ${live_.length}`);
  // The session store holds the live clients and those that asked for a session that outlives them.
  if (stats.sessions !== sessions.length) fail(w, `sessions ${stats.sessions}, model ${sessions.length}`);
  const subs = sessions.reduce((n, c) => n + (c.session?.subs.size ?? 0), 0);
  if (stats.subscriptions !== subs) fail(w, `subscriptions ${stats.subscriptions}, model ${subs}`);
  const inside = w.h.core.internals();
  if (inside.live !== live_.length) fail(w, `live ${inside.live}, model ${live_.length}`);
  if (inside.expiries !== offline.length)
    fail(w, `expiry timers ${inside.expiries}, model ${offline.length}`);
  if (inside.wills !== 0) fail(w, `wills ${inside.wills}`);
  for (const c of sessions) {
    const drops = stats.dropsByClient[c.id] ?? 0;
    const key = sessionKey(c);
    w.drops.set(key, Math.max(w.drops.get(key) ?? 0, drops));
  }
}

/** Every message owed arrived as its QoS says, unless the queue bound dropped it (and counted it). */
function deliveries(w: World, finished: Set<string>): void {
  for (const [key, owed] of w.owed) {
    const got = w.got.get(key);
    let missing = 0;
    for (const [msg, o] of owed) {
      const n = got?.get(msg) ?? 0;
      if (o.qos === 2 && n > 1) fail(w, `${key}: QoS 2 ${msg} delivered ${n} times`);
      if (o.qos === 0 && n > 1) fail(w, `${key}: QoS 0 ${msg} delivered ${n} times`);
      if (o.must && n === 0 && finished.has(key)) missing += 1;
    }
    const drops = w.drops.get(key) ?? 0;
    if (missing > drops)
      fail(w, `${key}: ${missing} QoS 1/2 messages never delivered, ${drops} dropped by the bound`);
  }
}

/**
 * Issue 19, the session state machine: random sequences of client actions against the real core over in-memory
 * streams, checked after each step against a model of sessions, subscriptions and deliveries, and at the end
 * for leaks.
 */
describe('fuzz: sessions, subscriptions and deliveries', () => {
  it(
    'QoS 1/2 delivered as promised, packet ids never reused in flight, sessions bounded, nothing left at the end',
    async () => {
      const totals = { steps: 0, owed: 0, delivered: 0, dropped: 0, resumed: 0, expired: 0 };
      await fc.assert(
        fc.asyncProperty(
          fc.array(action, { minLength: 10, maxLength: 60, size: 'large' }),
          async (actions) => {
            const clock = { now: 1_700_000_000_000 };
            const h = await startCore({
              limits: { maxQueuedMessages: MAX_QUEUED, maxSessionExpirySec: MAX_EXPIRY, receiveMaximum: 10 },
              now: () => clock.now,
            });
            const w: World = {
              h,
              clock,
              clients: CLIENTS.map((id) => new FuzzClient(id)),
              owed: new Map(),
              got: new Map(),
              drops: new Map(),
              epochs: 0,
              messages: 0,
              resumed: 0,
              expired: 0,
              log: [],
            };
            try {
              for (const a of actions) {
                await step(w, a);
                invariants(w);
              }
              // The end: manual clients acknowledge, kept sessions come back for what waits for them.
              for (const c of w.clients) {
                c.manual = false;
                if (c.conn) for (const ack of c.pendingAcks.splice(0)) sendAck(w, c, ack);
                else if (c.session) {
                  w.log.push(`resume ${c.id}`);
                  await connect(w, c, {
                    t: 'connect',
                    c: 0,
                    v: c.version,
                    clean: false,
                    expiry: MAX_EXPIRY,
                    keepalive: 0,
                    receiveMaximum: undefined,
                    manual: false,
                  });
                }
              }
              await pump(w);
              invariants(w);
              deliveries(w, new Set(w.clients.filter((c) => c.session).map(sessionKey)));
              // Everyone leaves; the sessions expire; the core holds nothing.
              for (const c of w.clients) if (c.conn) await disconnect(w, c, false);
              await idle(w, MAX_EXPIRY + 1);
              invariants(w);
              expect(h.core.stats()).toMatchObject({ connections: 0, sessions: 0, subscriptions: 0 });
              expect(h.core.internals()).toMatchObject({ live: 0, wills: 0, expiries: 0, timers: 0 });
              totals.steps += w.log.length;
              for (const owed of w.owed.values()) totals.owed += owed.size;
              for (const got of w.got.values()) for (const n of got.values()) totals.delivered += n;
              for (const n of w.drops.values()) totals.dropped += n;
              totals.resumed += w.resumed;
              totals.expired += w.expired;
            } finally {
              for (const c of w.clients) for (const conn of c.connections) conn.destroy();
              await h.close();
            }
          },
        ),
        fuzzParams(process.env, 200, 0x19_02),
      );
      // The runs did what they are for (not a property that holds because nothing happened).
      console.info('sessions fuzz:', totals);
      expect(Math.min(...Object.values(totals))).toBeGreaterThan(0);
    },
    fuzzTimeout(process.env, 60_000),
  );
});
