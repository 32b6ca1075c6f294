/**
 * The mixed soak's traffic (`npm run soak`, bench/soak.ts), run by a load generator process:
 *
 * - a fleet publishing telemetry to its own topic at a steady rate, QoS 0 and QoS 1 alternately, each device
 *   subscribed to its own telemetry; QoS 0 floods with QoS 1 right behind them on command;
 * - the observer app subscribed to `devices/+/telemetry` (fan-in) and instances of it subscribed to a few
 *   devices' telemetry each (fan-out to several subscribers of one topic);
 * - devices with persistent sessions (clean session 0) subscribed to `devices/<id>/config`, going offline and
 *   coming back while an app publishes QoS 1 to them: what was acknowledged to the app must all arrive;
 * - churn: devices reconnecting (every other one resuming its TLS session), subscribe/unsubscribe, and
 *   refused actions on command (a subscription to another device's topic, a publish to one).
 *
 * Every message belongs to a stream (device, class) with its own sequence, so each receiver's deliveries are
 * checked one by one against what the publisher had acknowledged.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BenchClient, ClientEvents, Identity } from './client.ts';
import type { Target } from './loadgen.ts';
import { allocPublish } from './mqtt-codec.ts';
import { readPayload, writePayload } from './payload.ts';

/** The message classes, by the number carried in each payload's stream id. */
export const soakClasses = [
  'telemetry QoS 0',
  'telemetry QoS 1',
  'flood QoS 0',
  'flood QoS 1',
  'persistent QoS 1',
  'refused publish',
] as const;
const QOS_OF = [0, 1, 0, 1, 1, 1] as const;
const CLASSES = soakClasses.length;
const PERSISTENT = 4;
const REFUSED = 5;
/** A payload's device field carries the stream: device index × 8 + class. */
const streamOf = (index: number, cls: number) => index * 8 + cls;

const popcount = (v: number) => {
  let x = v - ((v >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
};

/** The sequence numbers seen on one stream: a growable bitset. */
class SeqSet {
  private words = new Uint32Array(8);
  size = 0;

  add(seq: number): boolean {
    const w = seq >>> 5;
    if (w >= this.words.length) {
      const next = new Uint32Array(Math.max(w + 1, this.words.length * 2));
      next.set(this.words);
      this.words = next;
    }
    const bit = 1 << (seq & 31);
    const word = this.words[w] as number;
    if ((word & bit) !== 0) return false;
    this.words[w] = word | bit;
    this.size++;
    return true;
  }

  /** How many of this set's sequence numbers `other` lacks. */
  missingFrom(other: SeqSet | undefined): number {
    if (!other) return this.size;
    let n = 0;
    for (let i = 0; i < this.words.length; i++)
      n += popcount((this.words[i] as number) & ~(other.words[i] ?? 0));
    return n;
  }
}

const counts = () => new Array<number>(CLASSES).fill(0);

/** One subscriber's view: what arrived, per stream and per class, and what must never arrive. */
class Receiver {
  readonly streams = new Map<number, SeqSet>();
  readonly delivered = counts();
  readonly duplicates = counts();
  /** Duplicates per stream (QoS 1 is at least once: a redelivery after a reconnect is allowed). */
  readonly duplicatesOf = new Map<number, number>();
  corrupt = 0;
  misrouted = 0;
  wrongQos = 0;
  /** Deliveries of a publish the broker refused: must be 0. */
  refusedDelivered = 0;

  constructor(private readonly payloadSize: number) {}

  accept(payload: Buffer, qos: number, expected: (index: number, cls: number) => boolean): void {
    const header = readPayload(payload, this.payloadSize);
    if (!header) {
      this.corrupt++;
      return;
    }
    const index = Math.floor(header.device / 8);
    const cls = header.device % 8;
    if (cls === REFUSED) {
      this.refusedDelivered++;
      return;
    }
    if (cls >= CLASSES || !expected(index, cls)) {
      this.misrouted++;
      return;
    }
    if (QOS_OF[cls] !== qos) this.wrongQos++;
    let seen = this.streams.get(header.device);
    if (!seen) {
      seen = new SeqSet();
      this.streams.set(header.device, seen);
    }
    if (seen.add(header.seq)) this.delivered[cls] = (this.delivered[cls] as number) + 1;
    else {
      this.duplicates[cls] = (this.duplicates[cls] as number) + 1;
      this.duplicatesOf.set(header.device, (this.duplicatesOf.get(header.device) ?? 0) + 1);
    }
  }

  summary() {
    return {
      delivered: [...this.delivered],
      duplicates: [...this.duplicates],
      corrupt: this.corrupt,
      misrouted: this.misrouted,
      wrongQos: this.wrongQos,
      refusedDelivered: this.refusedDelivered,
    };
  }
}

export type ReceiverSummary = ReturnType<Receiver['summary']>;

/** What the publishers sent and had acknowledged (PUBACK), per class and, for QoS 1, per stream. */
class Sender {
  readonly sent = counts();
  readonly acked = counts();
  readonly ackedSets = new Map<number, SeqSet>();
  private readonly seqs = new Map<number, number>();
  private readonly pending = new WeakMap<BenchClient, Map<number, { stream: number; seq: number }>>();

  constructor(private readonly payloadSize: number) {}

  publish(client: BenchClient, topic: Buffer, stream: number): boolean {
    const cls = stream % 8;
    const qos = QOS_OF[cls] ?? 1;
    const seq = (this.seqs.get(stream) ?? 0) + 1;
    this.seqs.set(stream, seq);
    const id = qos ? client.messageId() : 0;
    const { packet, payloadOffset } = allocPublish(topic, this.payloadSize, qos, id);
    writePayload(packet, payloadOffset, this.payloadSize, stream, seq, performance.now());
    if (qos) this.pendingOf(client).set(id, { stream, seq });
    this.sent[cls] = (this.sent[cls] as number) + 1;
    return client.write(packet);
  }

  /** A PUBACK: the class of the message it acknowledges (undefined for one we did not wait for). */
  ack(client: BenchClient, messageId: number): number | undefined {
    const waiting = this.pending.get(client);
    const entry = waiting?.get(messageId);
    if (!entry || !waiting) return undefined;
    waiting.delete(messageId);
    const cls = entry.stream % 8;
    this.acked[cls] = (this.acked[cls] as number) + 1;
    let set = this.ackedSets.get(entry.stream);
    if (!set) {
      set = new SeqSet();
      this.ackedSets.set(entry.stream, set);
    }
    set.add(entry.seq);
    return cls;
  }

  /** Messages sent on a stream (its sequence numbers start at 1). */
  sentOn(stream: number): number {
    return this.seqs.get(stream) ?? 0;
  }

  unacked(client: BenchClient): number {
    return this.pending.get(client)?.size ?? 0;
  }

  private pendingOf(client: BenchClient) {
    let waiting = this.pending.get(client);
    if (!waiting) {
      waiting = new Map();
      this.pending.set(client, waiting);
    }
    return waiting;
  }
}

/** A small deterministic generator, so two runs cycle their persistent sessions alike. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface MixedSoakDeps {
  useTarget(target: Target): void;
  connectDevice(
    index: number,
    timeoutMs: number,
    resume?: boolean,
    options?: { clean?: boolean; events?: ClientEvents },
  ): Promise<BenchClient>;
  /** A client with an identity file of its own (an app), as `clientId`; `index` picks its source address. */
  connectIdentity(file: string, index: number, timeoutMs: number, clientId?: string): Promise<BenchClient>;
  identity(index: number): Identity;
}

export interface MixedSoakStart {
  target: Target;
  /** Fixture indices of the telemetry fleet. */
  fleet: { from: number; to: number };
  /** Steady telemetry per device (messages/s), QoS 0 and QoS 1 alternately. */
  ratePerDevice: number;
  payloadSize: number;
  /** Source address (fixture index) of the observer app (fan-in). */
  observerIndex: number;
  /** Instances of the observer app (`<app>/fan-<k>`), each subscribed to the telemetry of `hotDevices` devices. */
  fanout: { instances: number; hotDevices: number; indexFrom: number };
  /** Devices with persistent sessions; the app publishes `ratePerDevice` QoS 1 messages/s to each. */
  persistent: {
    from: number;
    to: number;
    ratePerDevice: number;
    onlineMs: [number, number];
    offlineMs: [number, number];
  };
  /** The app that publishes to the persistent devices (`{ id, key, cert }`) and its source address. */
  commander: { file: string; index: number };
  /** Devices used for refused publishes (the broker closes their connection), one after the other. */
  refusals: { from: number; to: number };
  /** One device reconnects (and another subscribes or unsubscribes) this often. */
  churnEveryMs: number;
  timeoutMs: number;
}

interface PersistentDevice {
  index: number;
  topic: Buffer;
  client: BenchClient | undefined;
  online: boolean;
  until: number;
  busy: boolean;
  cycles: number;
  /** Reconnects whose CONNACK said the session was not kept (it must be). */
  sessionMissing: number;
  random: () => number;
}

interface Run {
  cfg: MixedSoakStart;
  sender: Sender;
  self: Receiver;
  observer: Receiver;
  fans: Receiver[];
  persistentRx: Receiver;
  fleet: (BenchClient | undefined)[];
  topics: Buffer[];
  paused: Uint8Array;
  hot: number[];
  observerClient: BenchClient | undefined;
  fanClients: BenchClient[];
  commander: BenchClient | undefined;
  persistent: PersistentDevice[];
  timers: NodeJS.Timeout[];
  running: boolean;
  chain: Promise<unknown>;
  churnBusy: boolean;
  cursor: { reconnect: number; subscribe: number; deny: number; refusal: number };
  extraSubscription: { slot: number; filters: string[] } | undefined;
  flood: { remaining: Int32Array; active: boolean };
  counters: {
    steadyUnsent: number;
    steadyBehind: number;
    reconnects: number;
    resumed: number;
    reconnectFailures: number;
    /** QoS 1 messages a reconnecting device had not received back when it closed its clean session. */
    undrainedAtReconnect: number;
    subscribeCycles: number;
    persistentCycles: number;
    persistentReconnectFailures: number;
    commanderUnsent: number;
    deniedSubscribes: number;
    deniedSubscribeGranted: number;
    deniedPublishes: number;
    deniedPublishClosed: number;
    deniedPublishAcked: number;
    /** Connections of the fleet, the observer, its instances, the app or a persistent device the broker closed. */
    droppedByBroker: number;
  };
  errors: string[];
  watched: { client: BenchClient; what: string }[];
}

let run: Run | undefined;
let deps: MixedSoakDeps;

function current(): Run {
  if (!run) throw new Error('no mixed soak running');
  return run;
}

function error(r: Run, message: string): void {
  if (r.errors.length < 50) r.errors.push(`${new Date().toISOString()} ${message}`);
}

const errText = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** Runs `work` after everything queued before it: one subscribe, unsubscribe or reconnect at a time. */
function serial<T>(r: Run, work: () => Promise<T>): Promise<T> {
  const next = r.chain.then(work, work);
  r.chain = next.catch(() => undefined);
  return next;
}

/** A connection the broker must not close: BenchClient marks a close it did not ask for (see countDrops). */
function watchDrop(r: Run, client: BenchClient, what: string): void {
  r.watched.push({ client, what });
}

function countDrops(r: Run): void {
  r.watched = r.watched.filter(({ client, what }) => {
    if (client.droppedAt !== undefined) {
      r.counters.droppedByBroker++;
      error(r, `${what}: the broker closed the connection`);
      return false;
    }
    return client.connected; // one we closed ourselves is no longer watched
  });
}

function fleetEvents(r: Run, slot: number) {
  const index = r.cfg.fleet.from + slot;
  return {
    publish: (_c: BenchClient, qos: number, _id: number, topic: Buffer, payload: Buffer) => {
      if (!topic.equals(r.topics[slot] as Buffer)) {
        r.self.misrouted++;
        return;
      }
      r.self.accept(payload, qos, (i, cls) => i === index && cls <= 3);
    },
    puback: (c: BenchClient, messageId: number) => {
      const cls = r.sender.ack(c, messageId);
      // The flood's QoS 1 phase keeps `window` messages unacknowledged per device.
      if (cls === 3 && r.flood.active && (r.flood.remaining[slot] as number) > 0 && c.connected) {
        r.flood.remaining[slot] = (r.flood.remaining[slot] as number) - 1;
        r.sender.publish(c, r.topics[slot] as Buffer, streamOf(index, 3));
      }
    },
  };
}

async function connectFleetDevice(r: Run, slot: number, resume: boolean): Promise<BenchClient> {
  const index = r.cfg.fleet.from + slot;
  const client = await deps.connectDevice(index, r.cfg.timeoutMs, resume, { events: fleetEvents(r, slot) });
  await client.subscribe((r.topics[slot] as Buffer).toString(), 1, r.cfg.timeoutMs);
  watchDrop(r, client, `device ${client.id}`);
  return client;
}

const isHot = (r: Run, index: number) => r.hot.includes(index);

async function connectPersistent(r: Run, p: PersistentDevice, resume: boolean): Promise<void> {
  // Handlers before CONNECT: the queued messages come right behind the CONNACK.
  const events: ClientEvents = {
    publish: (_c, qos, _id, topic, payload) => {
      if (!topic.equals(p.topic)) {
        r.persistentRx.misrouted++;
        return;
      }
      r.persistentRx.accept(payload, qos, (i, cls) => i === p.index && cls === PERSISTENT);
    },
    puback: () => undefined,
  };
  const client = await deps.connectDevice(p.index, r.cfg.timeoutMs, resume, { clean: false, events });
  // The session keeps the subscription while the device is away: subscribing again would hide a lost one.
  if (p.cycles > 0 && !client.sessionPresent) p.sessionMissing++;
  if (p.cycles === 0 || !client.sessionPresent)
    await client.subscribe(p.topic.toString(), 1, r.cfg.timeoutMs);
  watchDrop(r, client, `persistent device ${client.id}`);
  p.client = client;
}

async function cyclePersistent(r: Run, p: PersistentDevice): Promise<void> {
  const { onlineMs, offlineMs } = r.cfg.persistent;
  const span = (range: [number, number]) => range[0] + p.random() * (range[1] - range[0]);
  const now = Date.now();
  if (p.online && now >= p.until) {
    const client = p.client;
    p.client = undefined;
    p.online = false;
    p.until = now + span(offlineMs);
    // Every other one goes away without DISCONNECT, as a device losing power or coverage does.
    if (client) await (p.cycles % 2 === 0 ? client.disconnect(2000) : client.drop());
  } else if (!p.online && now >= p.until) {
    try {
      await connectPersistent(r, p, p.cycles % 2 === 1);
      p.cycles++;
      r.counters.persistentCycles++;
      p.online = true;
      p.until = Date.now() + span(onlineMs);
    } catch (err) {
      r.counters.persistentReconnectFailures++;
      error(r, `persistent device ${deps.identity(p.index).id} did not reconnect: ${errText(err)}`);
      p.until = Date.now() + 1000;
    }
  }
}

/** Waits until `slot` has no QoS 1 message unacknowledged or not yet back (bounded); how many were missing. */
async function settle(r: Run, slot: number, maxMs: number): Promise<number> {
  const index = r.cfg.fleet.from + slot;
  const client = r.fleet[slot];
  const missing = () =>
    [1, 3].reduce(
      (n, cls) =>
        n +
        (r.sender.ackedSets
          .get(streamOf(index, cls))
          ?.missingFrom(r.self.streams.get(streamOf(index, cls))) ?? 0),
      client ? r.sender.unacked(client) : 0,
    );
  const deadline = Date.now() + maxMs;
  while (missing() > 0 && Date.now() < deadline) await sleep(20);
  return missing();
}

/** One device reconnects (every other one resuming its TLS session); another subscribes or unsubscribes. */
async function churnStep(r: Run): Promise<void> {
  const n = r.fleet.length;
  const slot = r.cursor.reconnect++ % n;
  r.paused[slot] = 1;
  try {
    const old = r.fleet[slot];
    if (old) {
      r.counters.undrainedAtReconnect += await settle(r, slot, 5000);
      r.fleet[slot] = undefined;
      await old.disconnect(2000);
    }
    const resume = r.counters.reconnects % 2 === 1;
    const client = await connectFleetDevice(r, slot, resume);
    r.fleet[slot] = client;
    r.counters.reconnects++;
    if (client.resumed) r.counters.resumed++;
  } catch (err) {
    r.counters.reconnectFailures++;
    error(r, `device ${deps.identity(r.cfg.fleet.from + slot).id} did not reconnect: ${errText(err)}`);
  } finally {
    r.paused[slot] = 0;
  }
  // Subscriptions that come and go, inside the device's own subtree (nothing is published there).
  const held = r.extraSubscription;
  r.extraSubscription = undefined;
  try {
    if (held) {
      const client = r.fleet[held.slot];
      if (client?.connected)
        for (const filter of held.filters) await client.unsubscribe(filter, r.cfg.timeoutMs);
    }
    const next = (r.cursor.subscribe++ * 7 + Math.floor(n / 2)) % n;
    const client = r.fleet[next];
    if (client?.connected && next !== slot) {
      const id = deps.identity(r.cfg.fleet.from + next).id;
      const filters = [`devices/${id}/config`, `devices/${id}/cmd/+`];
      for (const filter of filters) await client.subscribe(filter, 1, r.cfg.timeoutMs);
      r.extraSubscription = { slot: next, filters };
      r.counters.subscribeCycles++;
    }
  } catch (err) {
    error(r, `subscribe/unsubscribe: ${errText(err)}`);
  }
}

function steadyTimer(r: Run): NodeJS.Timeout {
  const n = r.fleet.length;
  const rate = r.cfg.ratePerDevice * n;
  const start = performance.now();
  let scheduled = 0;
  const parity = new Uint8Array(n);
  const maxPerTick = Math.max(50, Math.ceil(rate / 10));
  return setInterval(() => {
    if (!r.running) return;
    const due = Math.floor(((performance.now() - start) * rate) / 1000);
    let burst = 0;
    while (scheduled < due) {
      if (burst++ >= maxPerTick) {
        r.counters.steadyBehind += due - scheduled;
        scheduled = due;
        break;
      }
      const slot = scheduled++ % n;
      const client = r.fleet[slot];
      if (!client?.connected || r.paused[slot]) {
        r.counters.steadyUnsent++;
        continue;
      }
      const cls = parity[slot] as number; // QoS 0 and QoS 1 alternately, per device
      parity[slot] = 1 - cls;
      r.sender.publish(client, r.topics[slot] as Buffer, streamOf(r.cfg.fleet.from + slot, cls));
    }
  }, 10);
}

function commanderTimer(r: Run): NodeJS.Timeout {
  const n = r.persistent.length;
  const rate = r.cfg.persistent.ratePerDevice * n;
  const start = performance.now();
  let scheduled = 0;
  return setInterval(() => {
    if (!r.running || n === 0) return;
    const due = Math.floor(((performance.now() - start) * rate) / 1000);
    while (scheduled < due) {
      const p = r.persistent[scheduled++ % n] as PersistentDevice;
      const commander = r.commander;
      if (!commander?.connected) {
        r.counters.commanderUnsent++;
        continue;
      }
      r.sender.publish(commander, p.topic, streamOf(p.index, PERSISTENT));
    }
  }, 25);
}

async function connectAll<T>(
  count: number,
  concurrency: number,
  one: (i: number) => Promise<T>,
): Promise<T[]> {
  const out = new Array<T>(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      out[i] = await one(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return out;
}

function status(r: Run) {
  countDrops(r);
  return {
    sent: [...r.sender.sent],
    acked: [...r.sender.acked],
    self: r.self.summary(),
    observer: r.observer.summary(),
    fanout: r.fans.map((f) => f.summary()),
    persistent: r.persistentRx.summary(),
    connected: {
      fleet: r.fleet.filter((c) => c?.connected).length,
      persistentOnline: r.persistent.filter((p) => p.client?.connected).length,
      observer: r.observerClient?.connected === true,
      fanout: r.fanClients.filter((c) => c.connected).length,
      commander: r.commander?.connected === true,
    },
    counters: { ...r.counters },
    errors: r.errors.length,
  };
}

export type MixedSoakStatus = ReturnType<typeof status>;

export interface PersistentResult {
  id: string;
  cycles: number;
  sessionMissing: number;
  acked: number;
  delivered: number;
  duplicates: number;
  /** Acknowledged to the app and never delivered: must be 0. */
  lost: number;
}

export interface MixedSoakResult {
  status: MixedSoakStatus;
  drainMs: number;
  drained: boolean;
  /** Acknowledged QoS 1 messages a subscriber never received, per subscriber kind. */
  lostQos1: { self: number; observer: number; fanout: number[]; persistent: number };
  /** QoS 0 messages sent to the subscribers that were not delivered (allowed: counted for the report). */
  missedQos0: { self: number; observer: number; fanout: number[] };
  /** Acknowledged QoS 1 messages each fan-out instance should have received. */
  fanoutExpected: { qos0: number; qos1: number };
  persistentDevices: PersistentResult[];
  errors: string[];
}

function lostOf(r: Run, receiver: Receiver, streams: number[]): number {
  let lost = 0;
  for (const s of streams) lost += r.sender.ackedSets.get(s)?.missingFrom(receiver.streams.get(s)) ?? 0;
  return lost;
}

/** QoS 0 messages of these devices that did not reach `receiver` (allowed: at most once). */
function qos0Missed(r: Run, receiver: Receiver, indices: number[]): number {
  let missed = 0;
  for (const index of indices)
    for (const cls of [0, 2]) {
      const stream = streamOf(index, cls);
      missed += r.sender.sentOn(stream) - (receiver.streams.get(stream)?.size ?? 0);
    }
  return missed;
}

export function mixedSoakMethods(d: MixedSoakDeps) {
  deps = d;
  return {
    /** Connects everything, subscribes, and starts the steady traffic, the persistent cycles and the churn. */
    async mixedStart(cfg: MixedSoakStart) {
      if (run) throw new Error('a mixed soak is already running');
      deps.useTarget(cfg.target);
      const n = cfg.fleet.to - cfg.fleet.from;
      const hotStep = Math.max(1, Math.floor(n / Math.max(1, cfg.fanout.hotDevices)));
      const r: Run = {
        cfg,
        sender: new Sender(cfg.payloadSize),
        self: new Receiver(cfg.payloadSize),
        observer: new Receiver(cfg.payloadSize),
        fans: Array.from({ length: cfg.fanout.instances }, () => new Receiver(cfg.payloadSize)),
        persistentRx: new Receiver(cfg.payloadSize),
        fleet: new Array<BenchClient | undefined>(n),
        topics: Array.from({ length: n }, (_, i) =>
          Buffer.from(`devices/${deps.identity(cfg.fleet.from + i).id}/telemetry`),
        ),
        paused: new Uint8Array(n),
        hot: Array.from(
          { length: Math.min(n, cfg.fanout.hotDevices) },
          (_, k) => cfg.fleet.from + k * hotStep,
        ),
        observerClient: undefined,
        fanClients: [],
        commander: undefined,
        persistent: Array.from({ length: cfg.persistent.to - cfg.persistent.from }, (_, k) => {
          const index = cfg.persistent.from + k;
          return {
            index,
            topic: Buffer.from(`devices/${deps.identity(index).id}/config`),
            client: undefined,
            online: false,
            until: 0,
            busy: false,
            cycles: 0,
            sessionMissing: 0,
            random: mulberry32(index + 1),
          };
        }),
        timers: [],
        running: false,
        chain: Promise.resolve(),
        churnBusy: false,
        cursor: { reconnect: 0, subscribe: 0, deny: 0, refusal: 0 },
        extraSubscription: undefined,
        flood: { remaining: new Int32Array(n), active: false },
        counters: {
          steadyUnsent: 0,
          steadyBehind: 0,
          reconnects: 0,
          resumed: 0,
          reconnectFailures: 0,
          undrainedAtReconnect: 0,
          subscribeCycles: 0,
          persistentCycles: 0,
          persistentReconnectFailures: 0,
          commanderUnsent: 0,
          deniedSubscribes: 0,
          deniedSubscribeGranted: 0,
          deniedPublishes: 0,
          deniedPublishClosed: 0,
          deniedPublishAcked: 0,
          droppedByBroker: 0,
        },
        errors: [],
        watched: [],
      };
      run = r;
      const t0 = performance.now();
      // Subscribers first, so nothing the fleet publishes misses them.
      const observerFile = cfg.target.observerFile;
      r.observerClient = await deps.connectIdentity(observerFile, cfg.observerIndex, cfg.timeoutMs);
      const observerId = r.observerClient.id;
      const fleetRange = (i: number, cls: number) => i >= cfg.fleet.from && i < cfg.fleet.to && cls <= 3;
      r.observerClient.events = {
        publish: (_c, qos, _id, topic, payload) => {
          const header = readPayload(payload, cfg.payloadSize);
          const index = header ? Math.floor(header.device / 8) : -1;
          if (header && fleetRange(index, 0) && !topic.equals(r.topics[index - cfg.fleet.from] as Buffer)) {
            r.observer.misrouted++;
            return;
          }
          r.observer.accept(payload, qos, fleetRange);
        },
        puback: () => undefined,
      };
      await r.observerClient.subscribe('devices/+/telemetry', 1, cfg.timeoutMs);
      watchDrop(r, r.observerClient, 'observer app');
      for (let k = 0; k < cfg.fanout.instances; k++) {
        const fan = await deps.connectIdentity(
          observerFile,
          cfg.fanout.indexFrom + k,
          cfg.timeoutMs,
          `${observerId}/fan-${k + 1}`,
        );
        const rx = r.fans[k] as Receiver;
        fan.events = {
          publish: (_c, qos, _id, _topic, payload) =>
            rx.accept(payload, qos, (i, cls) => isHot(r, i) && cls <= 3),
          puback: () => undefined,
        };
        for (const index of r.hot)
          await fan.subscribe(`devices/${deps.identity(index).id}/telemetry`, 1, cfg.timeoutMs);
        watchDrop(r, fan, `observer instance fan-${k + 1}`);
        r.fanClients.push(fan);
      }
      for (const p of r.persistent) {
        await connectPersistent(r, p, false);
        p.online = true;
        p.until = Date.now() + p.random() * cfg.persistent.onlineMs[1];
      }
      r.commander = await deps.connectIdentity(cfg.commander.file, cfg.commander.index, cfg.timeoutMs);
      const commander = r.commander;
      commander.events = {
        publish: () => undefined,
        puback: (c, messageId) => void r.sender.ack(c, messageId),
      };
      watchDrop(r, commander, 'commanding app');
      const clients = await connectAll(n, 50, (slot) => connectFleetDevice(r, slot, false));
      clients.forEach((c, slot) => (r.fleet[slot] = c));
      r.running = true;
      r.timers.push(steadyTimer(r), commanderTimer(r));
      r.timers.push(
        setInterval(() => {
          if (!r.running) return;
          for (const p of r.persistent) {
            if (p.busy) continue;
            p.busy = true;
            void cyclePersistent(r, p).finally(() => (p.busy = false));
          }
        }, 250),
      );
      r.timers.push(
        setInterval(() => {
          if (!r.running || r.churnBusy) return;
          r.churnBusy = true;
          void serial(r, () => churnStep(r)).finally(() => (r.churnBusy = false));
        }, cfg.churnEveryMs),
      );
      return {
        connectMs: performance.now() - t0,
        fleet: n,
        persistent: r.persistent.length,
        fanout: r.fanClients.length,
        hot: r.hot.map((i) => deps.identity(i).id),
        observer: observerId,
        commander: commander.id,
      };
    },

    /**
     * A QoS 0 flood from every connected device (`perDevice` messages as fast as its connection takes them),
     * then QoS 1 right behind it (`qos1PerDevice`, at most `qos1Window` unacknowledged per device): the
     * sequence that crashes bare Aedes.
     */
    async mixedFlood(p: { perDevice: number; qos1PerDevice: number; qos1Window: number; maxMs: number }) {
      const r = current();
      const t0 = performance.now();
      const deadline = Date.now() + p.maxMs;
      const sent0 = [...r.sender.sent];
      let stalled = 0;
      await Promise.all(
        r.fleet.map(async (client, slot) => {
          if (!client) return;
          const stream = streamOf(r.cfg.fleet.from + slot, 2);
          let sent = 0;
          while (sent < p.perDevice && Date.now() < deadline && client.connected && !r.paused[slot]) {
            client.cork();
            for (let k = 0; k < 64 && sent < p.perDevice; k++, sent++)
              r.sender.publish(client, r.topics[slot] as Buffer, stream);
            client.uncork();
            if (client.writableNeedDrain) {
              if (!(await client.drained(Math.max(1, deadline - Date.now())))) {
                stalled++;
                return;
              }
            } else await sleep(0);
          }
        }),
      );
      const floodMs = performance.now() - t0;
      const t1 = performance.now();
      const first = Math.min(p.qos1Window, p.qos1PerDevice);
      r.flood.active = true;
      let started = 0;
      r.fleet.forEach((client, slot) => {
        if (!client?.connected || r.paused[slot]) return;
        started++;
        r.flood.remaining[slot] = p.qos1PerDevice - first;
        for (let k = 0; k < first; k++)
          r.sender.publish(client, r.topics[slot] as Buffer, streamOf(r.cfg.fleet.from + slot, 3));
      });
      const target = (sent0[3] as number) + started * p.qos1PerDevice;
      while ((r.sender.acked[3] as number) < target && Date.now() < deadline + p.maxMs) await sleep(50);
      r.flood.active = false;
      r.flood.remaining.fill(0);
      return {
        floodMs,
        qos1Ms: performance.now() - t1,
        sentQos0: (r.sender.sent[2] as number) - (sent0[2] as number),
        sentQos1: (r.sender.sent[3] as number) - (sent0[3] as number),
        devices: started,
        stalled,
      };
    },

    /**
     * Refused actions: a device subscribes to another device's telemetry (SUBACK 0x80, the connection stays),
     * and a device publishes to another device's topic (the broker closes its connection [MQTT-3.3.5-2]).
     */
    async mixedRefuse(_: Record<string, never>) {
      const r = current();
      const n = r.fleet.length;
      return serial(r, async () => {
        const out = {
          subscribe: -1,
          publishClosed: false,
          publishAcked: false,
          error: undefined as string | undefined,
        };
        try {
          const slot = (r.cursor.deny++ * 13 + 3) % n;
          const client = r.fleet[slot];
          const other = deps.identity(r.cfg.fleet.from + ((slot + 1) % n)).id;
          if (client?.connected) {
            out.subscribe = await client.trySubscribe(`devices/${other}/telemetry`, 1, r.cfg.timeoutMs);
            r.counters.deniedSubscribes++;
            if (out.subscribe !== 0x80) {
              r.counters.deniedSubscribeGranted++;
              error(r, `${client.id} was granted a subscription to devices/${other}/telemetry`);
              await client.unsubscribe(`devices/${other}/telemetry`, r.cfg.timeoutMs);
            }
          }
          const span = r.cfg.refusals.to - r.cfg.refusals.from;
          const index = r.cfg.refusals.from + (r.cursor.refusal++ % span);
          const offender = await deps.connectDevice(index, r.cfg.timeoutMs);
          let acked = false;
          offender.events = { publish: () => undefined, puback: () => void (acked = true) };
          const { packet, payloadOffset } = allocPublish(
            Buffer.from(`devices/${other}/telemetry`),
            r.cfg.payloadSize,
            1,
            offender.messageId(),
          );
          writePayload(
            packet,
            payloadOffset,
            r.cfg.payloadSize,
            streamOf(index, REFUSED),
            1,
            performance.now(),
          );
          offender.write(packet);
          const deadline = Date.now() + 5000;
          while (offender.connected && Date.now() < deadline) await sleep(20);
          out.publishClosed = !offender.connected;
          out.publishAcked = acked;
          r.counters.deniedPublishes++;
          if (out.publishClosed) r.counters.deniedPublishClosed++;
          else
            error(r, `${offender.id}: a publish to devices/${other}/telemetry did not close the connection`);
          if (acked) r.counters.deniedPublishAcked++;
          await offender.disconnect(1000);
        } catch (err) {
          out.error = errText(err);
          error(r, `refusals: ${out.error}`);
        }
        return out;
      });
    },

    mixedStatus(_: Record<string, never>) {
      return Promise.resolve(status(current()));
    },

    /**
     * Stops the traffic, brings every persistent device back online, waits (at most `drainMs`) until every
     * acknowledged QoS 1 message has reached each of its subscribers, reports and disconnects everything.
     */
    async mixedStop(p: { drainMs: number }): Promise<MixedSoakResult> {
      const r = current();
      r.running = false;
      for (const t of r.timers) clearInterval(t);
      await r.chain;
      while (r.persistent.some((d) => d.busy)) await sleep(20);
      for (const d of r.persistent)
        if (!d.client?.connected) {
          try {
            d.client = undefined;
            await connectPersistent(r, d, false);
            d.cycles++;
          } catch (err) {
            error(r, `persistent device ${deps.identity(d.index).id} did not come back: ${errText(err)}`);
          }
        }
      const fleetIndices = r.topics.map((_, slot) => r.cfg.fleet.from + slot);
      const qos1Streams = fleetIndices.flatMap((i) => [streamOf(i, 1), streamOf(i, 3)]);
      const hotStreams = r.hot.flatMap((i) => [streamOf(i, 1), streamOf(i, 3)]);
      const persistentStreams = r.persistent.map((d) => streamOf(d.index, PERSISTENT));
      const outstanding = () =>
        lostOf(r, r.self, qos1Streams) +
        lostOf(r, r.observer, qos1Streams) +
        r.fans.reduce((n, f) => n + lostOf(r, f, hotStreams), 0) +
        lostOf(r, r.persistentRx, persistentStreams);
      const t0 = performance.now();
      const deadline = Date.now() + p.drainMs;
      while (outstanding() > 0 && Date.now() < deadline) await sleep(100);
      const drained = outstanding() === 0;
      await sleep(500); // QoS 0 stragglers
      const drainMs = performance.now() - t0;
      const final = status(r);
      const result: MixedSoakResult = {
        status: final,
        drainMs,
        drained,
        lostQos1: {
          self: Math.max(0, lostOf(r, r.self, qos1Streams) - r.counters.undrainedAtReconnect),
          observer: lostOf(r, r.observer, qos1Streams),
          fanout: r.fans.map((f) => lostOf(r, f, hotStreams)),
          persistent: lostOf(r, r.persistentRx, persistentStreams),
        },
        missedQos0: {
          self: qos0Missed(r, r.self, fleetIndices),
          observer: qos0Missed(r, r.observer, fleetIndices),
          fanout: r.fans.map((f) => qos0Missed(r, f, r.hot)),
        },
        fanoutExpected: {
          qos0: r.hot.reduce(
            (n, i) => n + r.sender.sentOn(streamOf(i, 0)) + r.sender.sentOn(streamOf(i, 2)),
            0,
          ),
          qos1: hotStreams.reduce((n, s) => n + (r.sender.ackedSets.get(s)?.size ?? 0), 0),
        },
        persistentDevices: r.persistent.map((d) => {
          const stream = streamOf(d.index, PERSISTENT);
          const acked = r.sender.ackedSets.get(stream);
          const seen = r.persistentRx.streams.get(stream);
          return {
            id: deps.identity(d.index).id,
            cycles: d.cycles,
            sessionMissing: d.sessionMissing,
            acked: acked?.size ?? 0,
            delivered: seen?.size ?? 0,
            duplicates: r.persistentRx.duplicatesOf.get(stream) ?? 0,
            lost: acked?.missingFrom(seen) ?? 0,
          };
        }),
        errors: r.errors,
      };
      const everyone = [
        ...r.fleet,
        ...r.persistent.map((d) => d.client),
        r.observerClient,
        ...r.fanClients,
        r.commander,
      ].filter((c): c is BenchClient => c !== undefined);
      await Promise.all(everyone.map((c) => c.disconnect(3000)));
      run = undefined;
      return result;
    },
  };
}
