/**
 * A load generator process: holds a slice of the fleet's connections and drives traffic on command
 * from the harness. Several can run side by side; each reports counts and samples the harness merges.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { serve } from '../ipc/index.ts';
import type { SecureContext } from 'node:tls';
import { BenchClient, deviceContext, ignoreTraffic, type ClientEvents, type Identity } from './client.ts';
import { FleetTally, type TallySummary } from './fleet-stats.ts';
import { allocPublish } from './mqtt-codec.ts';
import { jsonPayload, writePayload } from './payload.ts';
import { mixedSoakMethods } from './soak-mixed.ts';

export interface Target {
  host: string;
  port: number;
  servername: string;
  caFile: string;
  identitiesFile: string;
  /** The fan-in scenario's subscriber: its own identity (a Bulwark app), not one of the fleet's. */
  observerFile: string;
}

let target: Target | undefined;
let ca = '';
let identities: Identity[] = [];
let fleet: BenchClient[] = [];
let base = 0;
/** Last sequence number each fleet device used (continues across phases). */
let seqs = new Float64Array(0);
let observer: BenchClient | undefined;
/** The fan-out scenario's subscribers: instances of the observer identity, each on every fleet device's topic. */
let observers: BenchClient[] = [];
/** The noisy neighbour's flooding device (its own connection, outside the fleet). */
let flooder: BenchClient | undefined;
let soaking:
  { flood: FleetTally; qos1: FleetTally; floodMs: number; qos1Ms: number; stalled: number } | undefined;
const contexts = new Map<number, SecureContext>();
/** The latest TLS session each device was issued, by fixture index (for a reconnect storm that resumes). */
const sessions = new Map<number, Buffer>();
/** Set by `steadyStop`: the running `steady` schedule ends at its next tick. */
let steadyStopRequested = false;

function useTarget(next: Target): void {
  if (target?.identitiesFile !== next.identitiesFile || target.caFile !== next.caFile) {
    identities = JSON.parse(readFileSync(next.identitiesFile, 'utf8')) as Identity[];
    ca = readFileSync(next.caFile, 'utf8');
    contexts.clear();
  }
  target = next;
}

function identity(index: number): Identity {
  const id = identities[index];
  if (!id) throw new Error(`fixture has no device #${index} (it holds ${identities.length})`);
  return id;
}

function contextFor(index: number): SecureContext {
  let context = contexts.get(index);
  if (!context) {
    context = deviceContext(ca, identity(index));
    contexts.set(index, context);
  }
  return context;
}

function connectOne(
  index: number,
  timeoutMs: number,
  resume = false,
  options: { clean?: boolean; events?: ClientEvents } = {},
): Promise<BenchClient> {
  if (!target) throw new Error('no target');
  return BenchClient.connect({
    host: target.host,
    port: target.port,
    servername: target.servername,
    secureContext: contextFor(index),
    identity: identity(index),
    index,
    timeoutMs,
    session: resume ? sessions.get(index) : undefined,
    onSession: (session) => sessions.set(index, session),
    clean: options.clean,
    events: options.events,
  });
}

/** A client with an identity of its own (an app: `{ id, key, cert }` in `file`); `index` picks its source address. */
function connectIdentity(
  file: string,
  index: number,
  timeoutMs: number,
  clientId?: string,
): Promise<BenchClient> {
  if (!target) throw new Error('no target');
  const own = JSON.parse(readFileSync(file, 'utf8')) as Identity;
  return BenchClient.connect({
    host: target.host,
    port: target.port,
    servername: target.servername,
    secureContext: deviceContext(ca, own),
    identity: own,
    index,
    timeoutMs,
    clientId,
  });
}

function connectObserver(to: Target, index: number, timeoutMs: number): Promise<BenchClient> {
  return connectIdentity(to.observerFile, index, timeoutMs);
}

function elu() {
  return performance.eventLoopUtilization();
}

function eluSince(start: ReturnType<typeof elu>): number {
  return performance.eventLoopUtilization(elu(), start).utilization;
}

async function waitUntil(done: () => boolean, maxMs: number, stepMs = 20): Promise<boolean> {
  const deadline = Date.now() + maxMs;
  while (!done()) {
    if (Date.now() >= deadline) return false;
    await sleep(stepMs);
  }
  return true;
}

function publishFrom(
  client: BenchClient,
  slot: number,
  qos: 0 | 1,
  size: number,
  tally: FleetTally,
  sentAt: number,
): boolean {
  const seq = (seqs[slot] as number) + 1;
  seqs[slot] = seq;
  const json = tally.json ? jsonPayload(size, client.index, seq, sentAt) : undefined;
  const { packet, payloadOffset } = allocPublish(
    client.topic,
    json?.length ?? size,
    qos,
    qos ? client.messageId() : 0,
  );
  if (json) json.copy(packet, payloadOffset);
  else writePayload(packet, payloadOffset, size, client.index, seq, sentAt);
  tally.sent++;
  tally.inflight[slot] = (tally.inflight[slot] as number) + tally.receivers;
  return client.write(packet);
}

/** Routes a fleet's deliveries into a tally; `onDelivered` runs for each verified one. */
function route(
  tally: FleetTally,
  via: 'own' | 'observer' | 'fanout',
  onDelivered: (slot: number, payload: Buffer, qos: number) => void,
): void {
  for (const client of fleet) {
    client.events = {
      publish:
        via === 'own'
          ? (c, qos, _id, topic, payload) => {
              if (!topic.equals(c.topic)) {
                tally.misrouted++;
                return;
              }
              const slot = tally.accept(payload, c.index);
              if (slot >= 0) onDelivered(slot, payload, qos);
            }
          : () => {
              tally.misrouted++; // the publishers subscribe to nothing in this topology
            },
      puback: () => {
        tally.acked++;
      },
    };
  }
  if (observer && via === 'observer') {
    observer.events = {
      publish: (_c, qos, _id, topic, payload) => {
        const slot = tally.accept(payload, undefined);
        if (slot < 0) return;
        if (!topic.equals((fleet[slot] as BenchClient).topic)) {
          tally.misrouted++;
          return;
        }
        onDelivered(slot, payload, qos);
      },
      puback: () => undefined,
    };
  }
  if (via === 'fanout') {
    observers.forEach((subscriber, receiver) => {
      subscriber.events = {
        publish: (_c, qos, _id, topic, payload) => {
          const slot = tally.accept(payload, undefined, receiver);
          if (slot < 0) return;
          if (!topic.equals((fleet[slot] as BenchClient).topic)) {
            tally.misrouted++;
            return;
          }
          onDelivered(slot, payload, qos);
        },
        puback: () => undefined,
      };
    });
  }
}

function quiet(): void {
  for (const client of fleet) client.events = ignoreTraffic;
  if (observer) observer.events = ignoreTraffic;
  for (const subscriber of observers) subscriber.events = ignoreTraffic;
}

/**
 * The fan-out scenario's publishing loop for one device: it sends its next message once fewer than `window`
 * of its messages are still owed to a subscriber (each is owed once to each of the `tally.receivers`), and
 * never sooner than `minIntervalMs` after its previous one (under a per-device publish quota).
 */
function fanoutPump(
  tally: FleetTally,
  p: { qos: 0 | 1; window: number; payloadSize: number; minIntervalMs: number },
  running: () => boolean,
): (slot: number) => void {
  const lastSent = new Float64Array(fleet.length).fill(-Infinity);
  const waiting = new Uint8Array(fleet.length);
  const pump = (slot: number): void => {
    const client = fleet[slot] as BenchClient;
    if (!running() || waiting[slot] || !client.connected) return;
    if ((tally.inflight[slot] as number) > (p.window - 1) * tally.receivers) return;
    const now = performance.now();
    const wait = (lastSent[slot] as number) + p.minIntervalMs - now;
    if (wait > 0) {
      waiting[slot] = 1;
      setTimeout(() => {
        waiting[slot] = 0;
        pump(slot);
      }, wait);
      return;
    }
    lastSent[slot] = now;
    publishFrom(client, slot, p.qos, p.payloadSize, tally, now);
    pump(slot); // the rest of its window, at the capped rate
  };
  return pump;
}

function connectedCount(): number {
  return fleet.filter((c) => c.connected).length;
}

export interface WindowResult {
  tally: TallySummary;
  /** Deliveries inside the measured window, and its length. */
  windowDelivered: number;
  windowMs: number;
  windowStart: number;
  windowEnd: number;
  elu: number;
  dropped: number;
  drained: boolean;
}

export interface PacedResult {
  tally: TallySummary;
  /** End-to-end latencies (ms) of messages scheduled inside the window, from their scheduled send time. */
  samples: Float64Array;
  windowStart: number;
  windowEnd: number;
  scheduled: number;
  /** Messages the pacer could not send on time because this process was saturated. */
  behind: number;
  elu: number;
  dropped: number;
}

export interface PingResult {
  /** Publish to its delivery back to the same device, one message in flight. */
  delivery: Float64Array;
  /** Publish to PUBACK (QoS 1). */
  ack: Float64Array;
  timeouts: number;
  corrupt: number;
}

/** Wall-clock milliseconds (since the epoch) of a `performance.now()` reading, comparable across processes. */
const wall = (t: number) => performance.timeOrigin + t;

export interface SteadyResult {
  tally: TallySummary;
  /** Deliveries back to the publishing device: when each message was scheduled (wall clock) and its latency. */
  deliveredAt: Float64Array;
  deliveredMs: Float64Array;
  /** PUBACKs: when each message was scheduled (wall clock) and the time to its PUBACK. */
  ackedAt: Float64Array;
  ackedMs: Float64Array;
  /** Wall-clock span of the schedule. */
  start: number;
  end: number;
  scheduled: number;
  /** Scheduled messages not sent because their device had been disconnected. */
  unsent: number;
  behind: number;
  /** Devices the broker disconnected, and when the first one went (wall clock). */
  dropped: number;
  firstDroppedAt: number | undefined;
}

export interface FloodResult {
  /** Wall-clock start of the flood and the end of the sending loop. */
  start: number;
  end: number;
  sent: number;
  /** PUBACKs received: messages the broker took in. */
  acked: number;
  /** Deliveries back to the flooder (when it subscribed to its own topic). */
  delivered: number;
  /** When the broker closed the connection (wall clock), if it did. */
  droppedAt: number | undefined;
}

export interface OffenderResult {
  id: string;
  index: number;
  /**
   * Times are wall clock in ms since the epoch, sub-millisecond, aligned with this machine's `Date.now()`
   * (the clock the broker stamps its audit entries with).
   */
  connectedAt: number;
  firstSentAt: number;
  /** When the offending message (threshold + 1) was written. */
  offendingAt: number | undefined;
  /** When the broker closed the connection, as the client saw it. */
  closedAt: number | undefined;
  sent: number;
  /** Messages written after the offending one, until the close (or the time limit). */
  sentAfter: number;
  acked: number;
  error?: string;
}

export interface SoakResult {
  flood: TallySummary;
  qos1: TallySummary;
  floodMs: number;
  qos1Ms: number;
  drainMs: number;
  dropped: number;
  stalled: number;
}

const methods = {
  async connect(p: {
    target: Target;
    from: number;
    to: number;
    concurrency: number;
    timeoutMs: number;
    maxMs: number;
    /** Offer each device's last TLS session (a reconnect storm): the result counts the handshakes resumed. */
    resume?: boolean;
  }) {
    useTarget(p.target);
    // Sessions are the broker's: a new target (another system, or a restarted one) starts without any.
    if (!p.resume) sessions.clear();
    if (fleet.length > 0) throw new Error('fleet already connected');
    base = p.from;
    const count = p.to - p.from;
    const clients: (BenchClient | undefined)[] = new Array<BenchClient | undefined>(count);
    const connectMs = new Float64Array(count);
    for (let i = p.from; i < p.to; i++) contextFor(i); // keys loaded before the clock starts
    let next = 0;
    let failed = 0;
    let firstError: string | undefined;
    const started = performance.now();
    const e0 = elu();
    const deadline = Date.now() + p.maxMs;
    const worker = async () => {
      while (next < count && Date.now() < deadline) {
        const i = next++;
        const t0 = performance.now();
        try {
          clients[i] = await connectOne(p.from + i, p.timeoutMs, p.resume === true);
          connectMs[i] = performance.now() - t0;
        } catch (err) {
          failed++;
          connectMs[i] = Number.NaN;
          firstError ??= err instanceof Error ? err.message : String(err);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(p.concurrency, count) }, worker));
    const elapsedMs = performance.now() - started;
    const busy = eluSince(e0);
    fleet = clients.filter((c): c is BenchClient => c !== undefined);
    seqs = new Float64Array(count);
    const connected = fleet.length;
    const tls = fleet[0]?.tlsInfo() ?? '';
    const resumed = fleet.filter((c) => c.resumed).length;
    if (connected !== count) {
      // Keep the slot layout dense: a fleet with holes is not measured.
      await methods.disconnect({ timeoutMs: 2000 });
    }
    return {
      connected,
      failed,
      notAttempted: count - connected - failed,
      firstError,
      elapsedMs,
      connectMs: connectMs.filter((v) => !Number.isNaN(v)),
      elu: busy,
      tls,
      resumed,
    };
  },

  async subscribe(p: { qos: 0 | 1; concurrency: number; timeoutMs: number }) {
    let next = 0;
    const worker = async () => {
      while (next < fleet.length) {
        const client = fleet[next++] as BenchClient;
        await client.subscribe(client.topic.toString(), p.qos, p.timeoutMs);
      }
    };
    await Promise.all(Array.from({ length: Math.min(p.concurrency, fleet.length) }, worker));
    return { subscribed: fleet.length };
  },

  /**
   * One extra client, with the observer identity, that subscribes to every device's telemetry; `index` only
   * picks its source address. With `instances` (the fan-out scenario): that many clients of the observer
   * identity instead, client ids `<id>/<n>` (an app's instances in Bulwark), the n-th from the source address
   * of `index + n`, each subscribed to the own topic of every device of the connected fleet.
   */
  async observe(p: {
    target: Target;
    index: number;
    qos: 0 | 1;
    timeoutMs: number;
    instances?: number;
    /** Instances connecting (and subscribing) at once. */
    concurrency?: number;
  }) {
    useTarget(p.target);
    if (p.instances === undefined) {
      observer = await connectObserver(p.target, p.index, p.timeoutMs);
      await observer.subscribe('devices/+/telemetry', p.qos, p.timeoutMs);
      return { observer: observer.id, instances: 1 };
    }
    if (fleet.length === 0) throw new Error('observe: connect the publishing devices first');
    if (observers.length > 0) throw new Error('observe: subscribers already connected');
    const count = p.instances;
    const topics = fleet.map((c) => c.topic.toString());
    const { id } = JSON.parse(readFileSync(p.target.observerFile, 'utf8')) as Identity;
    const connected: BenchClient[] = [];
    let next = 0;
    const worker = async () => {
      while (next < count) {
        const n = next++;
        const client = await connectIdentity(p.target.observerFile, p.index + n, p.timeoutMs, `${id}/${n}`);
        connected.push(client);
        for (const topic of topics) await client.subscribe(topic, p.qos, p.timeoutMs);
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(p.concurrency ?? 10, count) }, worker));
    } catch (err) {
      await Promise.all(connected.map((c) => c.disconnect(1000)));
      throw err;
    }
    observers = connected;
    return { observer: id, instances: observers.length };
  },

  async throughput(p: {
    qos: 0 | 1;
    /** Who gets each message: its device, the observer, or every fan-out subscriber (see `observe`). */
    via: 'own' | 'observer' | 'fanout';
    /** Messages in flight per device; in a fan-out, a message is in flight until every subscriber has it. */
    window: number;
    warmupMs: number;
    durationMs: number;
    drainMs: number;
    payloadSize: number;
    /** JSON readings instead of the checksummed binary payload (the privacy scenario). */
    json?: boolean;
    /** Fan-out only: at least this long between two messages of one device (a per-device quota). */
    minIntervalMs?: number;
  }): Promise<WindowResult> {
    const fanout = p.via === 'fanout';
    if (fanout && observers.length === 0)
      throw new Error('throughput: no fan-out subscribers (observe first)');
    const tally = new FleetTally(base, seqs, p.payloadSize, fanout ? observers.length : 1);
    tally.json = p.json === true;
    let running = true;
    const pump = fanout
      ? fanoutPump(tally, { ...p, minIntervalMs: p.minIntervalMs ?? 0 }, () => running)
      : undefined;
    route(
      tally,
      p.via,
      pump ??
        ((slot) => {
          if (!running) return;
          const client = fleet[slot] as BenchClient;
          if (client.connected) publishFrom(client, slot, p.qos, p.payloadSize, tally, performance.now());
        }),
    );
    for (let slot = 0; slot < fleet.length; slot++) {
      if (pump) {
        pump(slot);
        continue;
      }
      const client = fleet[slot] as BenchClient;
      for (let k = 0; k < p.window; k++) publishFrom(client, slot, p.qos, p.payloadSize, tally, 0);
    }
    await sleep(p.warmupMs);
    const d0 = tally.delivered;
    const windowStart = Date.now();
    const t0 = performance.now();
    const e0 = elu();
    await sleep(p.durationMs);
    const windowDelivered = tally.delivered - d0;
    const windowMs = performance.now() - t0;
    const windowEnd = Date.now();
    const loadElu = eluSince(e0);
    running = false;
    const drained = await waitUntil(() => tally.totalInflight() === 0, p.drainMs);
    quiet();
    return {
      tally: tally.summary(),
      windowDelivered,
      windowMs,
      windowStart,
      windowEnd,
      elu: loadElu,
      dropped: fleet.length - connectedCount() + observers.filter((c) => !c.connected).length,
      drained,
    };
  },

  async paced(p: {
    qos: 0 | 1;
    /** Messages per second from this load generator. */
    rate: number;
    warmupMs: number;
    durationMs: number;
    drainMs: number;
    payloadSize: number;
  }): Promise<PacedResult> {
    const tally = new FleetTally(base, seqs, p.payloadSize);
    const capacity = Math.ceil((p.rate * p.durationMs) / 1000 + 1000);
    const samples = new Float64Array(capacity);
    let sampleCount = 0;
    const start = performance.now() + 5;
    const windowFrom = start + p.warmupMs;
    const windowTo = windowFrom + p.durationMs;
    route(tally, 'own', (_slot, payload) => {
      const sentAt = payload.readDoubleBE(8);
      if (sentAt >= windowFrom && sentAt < windowTo && sampleCount < capacity) {
        samples[sampleCount++] = performance.now() - sentAt;
      }
    });
    const interval = 1000 / p.rate;
    const maxPerTick = Math.max(100, Math.ceil(p.rate / 20));
    let scheduled = 0;
    let behind = 0;
    let cursor = 0;
    let e0 = elu();
    let windowStart = 0;
    await new Promise<void>((resolve) => {
      const tick = () => {
        const now = performance.now();
        if (windowStart === 0 && now >= windowFrom) {
          windowStart = Date.now();
          e0 = elu();
        }
        const due = Math.floor((Math.min(now, windowTo) - start) / interval);
        let burst = 0;
        while (scheduled < due) {
          if (burst++ >= maxPerTick) {
            behind += due - scheduled;
            scheduled = due; // skipped, counted: this process could not keep the schedule
            break;
          }
          const slot = cursor++ % fleet.length;
          const client = fleet[slot] as BenchClient;
          if (client.connected)
            publishFrom(client, slot, p.qos, p.payloadSize, tally, start + scheduled * interval);
          scheduled++;
        }
        if (now >= windowTo) {
          clearInterval(timer);
          resolve();
        }
      };
      const timer = setInterval(tick, 1);
    });
    const windowEnd = Date.now();
    const loadElu = eluSince(e0);
    await waitUntil(() => tally.totalInflight() === 0, p.drainMs);
    quiet();
    return {
      tally: tally.summary(),
      samples: samples.slice(0, sampleCount),
      windowStart,
      windowEnd,
      scheduled,
      behind,
      elu: loadElu,
      dropped: fleet.length - connectedCount(),
    };
  },

  async ping(p: {
    target: Target;
    index: number;
    qos: 0 | 1;
    count: number;
    warmup: number;
    maxMs: number;
    timeoutMs: number;
    /** At least this long from one send to the next (keeps the device under a per-device rate limit). */
    minIntervalMs: number;
    payloadSize: number;
  }): Promise<PingResult> {
    useTarget(p.target);
    const client = await connectOne(p.index, p.timeoutMs);
    await client.subscribe(client.topic.toString(), p.qos, p.timeoutMs);
    const delivery = new Float64Array(p.count);
    const ack = new Float64Array(p.count);
    let n = 0;
    let timeouts = 0;
    let corrupt = 0;
    const deadline = performance.now() + p.maxMs;
    const tally = new FleetTally(p.index, new Float64Array(1), p.payloadSize);
    let seq = 0;
    try {
      for (let i = 0; i < p.warmup + p.count && performance.now() < deadline; i++) {
        seq++;
        const { packet, payloadOffset } = allocPublish(
          client.topic,
          p.payloadSize,
          p.qos,
          p.qos ? client.messageId() : 0,
        );
        const sentAt = performance.now();
        writePayload(packet, payloadOffset, p.payloadSize, p.index, seq, sentAt);
        // Resolves when the message is back and (QoS 1) acknowledged: nothing else is ever in flight.
        const times = await new Promise<{ delivered: number; acked: number } | undefined>((resolve) => {
          let delivered = 0;
          let acked = p.qos === 0 ? -1 : 0;
          const timer = setTimeout(() => resolve(undefined), p.timeoutMs);
          const done = () => {
            if (delivered > 0 && acked !== 0) {
              clearTimeout(timer);
              resolve({ delivered, acked });
            }
          };
          client.events = {
            publish: (_c, _qos, _id, _topic, payload) => {
              if (tally.accept(payload, p.index) < 0) corrupt++;
              delivered = performance.now();
              done();
            },
            puback: () => {
              acked = performance.now();
              done();
            },
          };
          client.write(packet);
        });
        const rest = sentAt + p.minIntervalMs - performance.now();
        if (rest > 0) await sleep(rest);
        if (!times) {
          timeouts++;
          continue;
        }
        if (i < p.warmup) continue;
        delivery[n] = times.delivered - sentAt;
        ack[n] = times.acked > 0 ? times.acked - sentAt : 0;
        n++;
      }
    } finally {
      await client.disconnect(2000);
    }
    return {
      delivery: delivery.slice(0, n),
      ack: p.qos ? ack.slice(0, n) : new Float64Array(0),
      timeouts,
      corrupt: corrupt + tally.corrupt,
    };
  },

  /** Sends the soak's traffic; returns once it is sent (see soakCollect for what arrived). */
  async soak(p: {
    floodPerDevice: number;
    floodMaxMs: number;
    qos1PerDevice: number;
    qos1Window: number;
    qos1MaxMs: number;
    payloadSize: number;
  }) {
    // Deliveries of the flood arrive at QoS 0, those of the second phase at QoS 1: the QoS tells them apart.
    const flood = new FleetTally(base, seqs, p.payloadSize);
    const qos1 = new FleetTally(base, seqs, p.payloadSize);
    const remaining = new Int32Array(fleet.length).fill(p.qos1PerDevice);
    let qos1Running = false;
    let stalled = 0;
    for (const client of fleet) {
      client.events = {
        publish: (c, qos, _id, topic, payload) => {
          const tally = qos === 0 ? flood : qos1;
          if (!topic.equals(c.topic)) tally.misrouted++;
          else tally.accept(payload, c.index);
        },
        // Only the second phase publishes at QoS 1: each PUBACK frees a slot of that device's window.
        puback: (c) => {
          qos1.acked++;
          const slot = c.index - base;
          if (qos1Running && (remaining[slot] as number) > 0 && c.connected) {
            remaining[slot] = (remaining[slot] as number) - 1;
            publishFrom(c, slot, 1, p.payloadSize, qos1, 0);
          }
        },
      };
    }
    const t0 = performance.now();
    const floodDeadline = Date.now() + p.floodMaxMs;
    await Promise.all(
      fleet.map(async (client, slot) => {
        let sent = 0;
        while (sent < p.floodPerDevice && Date.now() < floodDeadline && client.connected) {
          client.cork();
          for (let k = 0; k < 64 && sent < p.floodPerDevice; k++, sent++) {
            publishFrom(client, slot, 0, p.payloadSize, flood, 0);
          }
          client.uncork();
          if (client.writableNeedDrain) {
            if (!(await client.drained(Math.max(1, floodDeadline - Date.now())))) {
              stalled++;
              return;
            }
          } else await sleep(0);
        }
      }),
    );
    const floodMs = performance.now() - t0;
    // QoS 1 right behind the flood (no pause to let the broker catch up), each device with at most
    // `qos1Window` unacknowledged messages, as a device's MQTT client would have.
    const t1 = performance.now();
    qos1Running = true;
    fleet.forEach((client, slot) => {
      if (!client.connected) return;
      const first = Math.min(p.qos1Window, p.qos1PerDevice);
      remaining[slot] = p.qos1PerDevice - first;
      for (let k = 0; k < first; k++) publishFrom(client, slot, 1, p.payloadSize, qos1, 0);
    });
    await waitUntil(() => qos1.sent >= fleet.length * p.qos1PerDevice, p.qos1MaxMs, 50);
    qos1Running = false;
    const qos1Ms = performance.now() - t1;
    // Deliveries keep being counted until soakCollect: the harness probes the broker meanwhile.
    soaking = { flood, qos1, floodMs, qos1Ms, stalled };
    return { floodMs, qos1Ms, sentFlood: flood.sent, sentQos1: qos1.sent };
  },

  /** Waits until everything the soak sent is delivered (or `drainMs`), then reports and stops counting. */
  async soakCollect(p: { drainMs: number }): Promise<SoakResult> {
    const state = soaking;
    if (!state) throw new Error('no soak in progress');
    const t = performance.now();
    await waitUntil(
      () =>
        state.flood.delivered >= state.flood.sent &&
        state.qos1.delivered >= state.qos1.sent &&
        state.qos1.acked >= state.qos1.sent,
      p.drainMs,
      100,
    );
    quiet();
    soaking = undefined;
    return {
      flood: state.flood.summary(),
      qos1: state.qos1.summary(),
      floodMs: state.floodMs,
      qos1Ms: state.qos1Ms,
      drainMs: performance.now() - t,
      dropped: fleet.length - connectedCount(),
      stalled: state.stalled,
    };
  },

  /**
   * The noisy neighbour's well-behaved devices: every device of this process's fleet publishes QoS 1 to its
   * own topic at `ratePerDevice`, on a fixed schedule (open loop, staggered across devices), and gets it
   * back through its own subscription. Records the time to each PUBACK and to each delivery, from the
   * scheduled send time, with that time, so the harness can split the run into phases.
   */
  async steady(p: {
    ratePerDevice: number;
    durationMs: number;
    drainMs: number;
    payloadSize: number;
  }): Promise<SteadyResult> {
    const n = fleet.length;
    if (n === 0) throw new Error('no fleet connected');
    const tally = new FleetTally(base, seqs, p.payloadSize);
    const rate = p.ratePerDevice * n;
    const capacity = Math.ceil((rate * p.durationMs) / 1000) + n + 16;
    const deliveredAt = new Float64Array(capacity);
    const deliveredMs = new Float64Array(capacity);
    const ackedAt = new Float64Array(capacity);
    const ackedMs = new Float64Array(capacity);
    let delivered = 0;
    let acked = 0;
    // Per device: message id -> scheduled send time, for the PUBACK.
    const pending = fleet.map(() => new Map<number, number>());
    for (const client of fleet) {
      client.events = {
        publish: (c, _qos, _id, topic, payload) => {
          if (!topic.equals(c.topic)) {
            tally.misrouted++;
            return;
          }
          if (tally.accept(payload, c.index) < 0 || delivered >= capacity) return;
          const sentAt = payload.readDoubleBE(8);
          deliveredAt[delivered] = wall(sentAt);
          deliveredMs[delivered++] = performance.now() - sentAt;
        },
        puback: (c, messageId) => {
          tally.acked++;
          const waiting = pending[c.index - base];
          const sentAt = waiting?.get(messageId);
          if (sentAt === undefined || !waiting || acked >= capacity) return;
          waiting.delete(messageId);
          ackedAt[acked] = wall(sentAt);
          ackedMs[acked++] = performance.now() - sentAt;
        },
      };
    }
    const interval = 1000 / rate;
    const maxPerTick = Math.max(100, Math.ceil(rate / 20));
    const start = performance.now() + 5;
    let end = start + p.durationMs;
    let scheduled = 0;
    let unsent = 0;
    let behind = 0;
    steadyStopRequested = false;
    await new Promise<void>((resolve) => {
      const tick = () => {
        const now = performance.now();
        if (steadyStopRequested && now < end) end = Math.max(start, now);
        const due = Math.floor((Math.min(now, end) - start) / interval);
        let burst = 0;
        while (scheduled < due) {
          if (burst++ >= maxPerTick) {
            behind += due - scheduled;
            scheduled = due;
            break;
          }
          const slot = scheduled % n;
          const client = fleet[slot] as BenchClient;
          const sentAt = start + scheduled * interval;
          scheduled++;
          if (!client.connected) {
            unsent++;
            continue;
          }
          const seq = (seqs[slot] as number) + 1;
          seqs[slot] = seq;
          const messageId = client.messageId();
          const { packet, payloadOffset } = allocPublish(client.topic, p.payloadSize, 1, messageId);
          writePayload(packet, payloadOffset, p.payloadSize, client.index, seq, sentAt);
          pending[slot]?.set(messageId, sentAt);
          tally.sent++;
          tally.inflight[slot] = (tally.inflight[slot] as number) + 1;
          client.write(packet);
        }
        if (now >= end) {
          clearInterval(timer);
          resolve();
        }
      };
      const timer = setInterval(tick, 1);
    });
    await waitUntil(() => tally.totalInflight() === 0 && tally.acked >= tally.sent, p.drainMs);
    quiet();
    const drops = fleet.map((c) => c.droppedAt).filter((t): t is number => t !== undefined);
    return {
      tally: tally.summary(),
      deliveredAt: deliveredAt.slice(0, delivered),
      deliveredMs: deliveredMs.slice(0, delivered),
      ackedAt: ackedAt.slice(0, acked),
      ackedMs: ackedMs.slice(0, acked),
      start: wall(start),
      end: wall(end),
      scheduled,
      unsent,
      behind,
      dropped: drops.length,
      firstDroppedAt: drops.length ? Math.min(...drops) : undefined,
    };
  },

  /** Ends a running `steady` schedule early (it then drains and returns as usual). */
  steadyStop(_: Record<string, never>) {
    steadyStopRequested = true;
    return Promise.resolve({});
  },

  /**
   * The detection scenario's offenders, one after the other: each (a device this broker has not seen yet)
   * connects, waits `pauseMs`, publishes QoS 1 to its own topic at `ratePerSec` up to and including message
   * `threshold + 1` (the offending one: the first over the threshold), then one message every
   * `afterIntervalMs` until the broker closes the connection, which it does at the first publish it refuses
   * ([MQTT-3.3.5-2]); after `maxMs` from the offending message without a close, it gives up (a miss).
   */
  async offenders(p: {
    target: Target;
    indices: number[];
    threshold: number;
    ratePerSec: number;
    afterIntervalMs: number;
    maxMs: number;
    pauseMs: number;
    payloadSize: number;
    timeoutMs: number;
  }): Promise<{ offenders: OffenderResult[] }> {
    useTarget(p.target);
    // Offset from this process's high-resolution wall clock to Date.now() (which only has whole ms): the
    // largest difference over a few ms of samples is within a few µs of the true one.
    let skew = -Infinity;
    for (const until = performance.now() + 3; performance.now() < until;)
      skew = Math.max(skew, Date.now() - wall(performance.now()));
    const clock = (t = performance.now()) => wall(t) + skew;
    const out: OffenderResult[] = [];
    for (const index of p.indices) {
      const id = identity(index).id;
      let client: BenchClient;
      try {
        client = await connectOne(index, p.timeoutMs);
      } catch (err) {
        const now = clock();
        out.push({
          id,
          index,
          connectedAt: now,
          firstSentAt: now,
          offendingAt: undefined,
          closedAt: undefined,
          sent: 0,
          sentAfter: 0,
          acked: 0,
          error: `did not connect: ${err instanceof Error ? err.message : String(err)}`,
        });
        continue;
      }
      const connectedAt = clock();
      let acked = 0;
      client.events = {
        publish: () => undefined,
        puback: () => {
          acked++;
        },
      };
      let sent = 0;
      const send = () => {
        const { packet, payloadOffset } = allocPublish(client.topic, p.payloadSize, 1, client.messageId());
        const at = performance.now();
        writePayload(packet, payloadOffset, p.payloadSize, index, sent + 1, at);
        client.write(packet);
        sent++;
        return at;
      };
      await sleep(p.pauseMs);
      const interval = 1000 / p.ratePerSec;
      const t0 = performance.now();
      let offending: number | undefined;
      while (client.connected && sent <= p.threshold) {
        const wait = t0 + sent * interval - performance.now();
        if (wait >= 1) await sleep(wait);
        if (!client.connected) break;
        const at = send();
        if (sent === p.threshold + 1) offending = at;
      }
      let sentAfter = 0;
      if (offending !== undefined) {
        const deadline = offending + p.maxMs;
        while (client.connected && performance.now() < deadline) {
          await sleep(p.afterIntervalMs);
          if (!client.connected) break;
          send();
          sentAfter++;
        }
      }
      const dropped = client.droppedAt;
      client.events = ignoreTraffic;
      if (client.connected) await client.disconnect(2000);
      out.push({
        id,
        index,
        connectedAt,
        firstSentAt: clock(t0),
        offendingAt: offending === undefined ? undefined : clock(offending),
        // droppedAt is wall(performance.now()) at the close.
        closedAt: dropped === undefined ? undefined : dropped + skew,
        sent,
        sentAfter,
        acked,
        ...(offending === undefined
          ? { error: `the connection closed after ${sent} messages, before the offending one` }
          : {}),
      });
      await sleep(p.pauseMs);
    }
    return { offenders: out };
  },

  /** Connects the noisy neighbour's flooding device. */
  async floodConnect(p: { target: Target; index: number; subscribe: boolean; timeoutMs: number }) {
    useTarget(p.target);
    if (flooder) await flooder.disconnect(1000);
    flooder = await connectOne(p.index, p.timeoutMs);
    // Subscribed (QoS 0) to its own topic, the flood is delivered too, as a device's telemetry is consumed.
    if (p.subscribe) await flooder.subscribe(flooder.topic.toString(), 0, p.timeoutMs);
    return { id: flooder.id };
  },

  /**
   * The flood: QoS 1 PUBLISHes to the device's own topic as fast as the connection takes them (batches of
   * `batch` per write, at most `window` unacknowledged), for `durationMs` or until the broker closes the
   * connection. Then waits `graceMs` for the last PUBACKs and disconnects.
   */
  async flood(p: {
    payloadSize: number;
    window: number;
    batch: number;
    durationMs: number;
    graceMs: number;
  }): Promise<FloodResult> {
    const client = flooder;
    if (!client) throw new Error('no flooder connected');
    let sent = 0;
    let acked = 0;
    let delivered = 0;
    client.events = {
      publish: () => {
        delivered++;
      },
      puback: () => {
        acked++;
      },
    };
    // One packet built once; each batch is copies of it with their own message ids, in one write.
    const { packet: template, payloadOffset } = allocPublish(client.topic, p.payloadSize, 1, 0);
    writePayload(template, payloadOffset, p.payloadSize, client.index, 0, 0);
    const idOffset = payloadOffset - 2;
    const t0 = performance.now();
    const end = t0 + p.durationMs;
    while (client.connected && performance.now() < end) {
      const count = Math.min(p.batch, p.window - (sent - acked));
      if (count <= 0) {
        await sleep(1);
        continue;
      }
      const chunk = Buffer.allocUnsafe(template.length * count);
      for (let k = 0; k < count; k++) {
        const at = k * template.length;
        template.copy(chunk, at);
        chunk.writeUInt16BE(client.messageId(), at + idOffset);
      }
      client.write(chunk);
      sent += count;
      if (client.writableNeedDrain) await client.drained(Math.max(1, end - performance.now()));
      else await new Promise((resolve) => setImmediate(resolve));
    }
    const t1 = performance.now();
    if (client.connected) await waitUntil(() => acked >= sent, p.graceMs, 10);
    const droppedAt = client.droppedAt;
    client.events = ignoreTraffic;
    await client.disconnect(2000);
    flooder = undefined;
    return { start: wall(t0), end: wall(t1), sent, acked, delivered, droppedAt };
  },

  async disconnect(p: { timeoutMs: number }) {
    const all = [...fleet, ...(observer ? [observer] : []), ...observers, ...(flooder ? [flooder] : [])];
    const dropped = all.filter((c) => !c.connected).length;
    await Promise.all(all.map((c) => c.disconnect(p.timeoutMs)));
    fleet = [];
    observer = undefined;
    observers = [];
    flooder = undefined;
    seqs = new Float64Array(0);
    return { closed: all.length, dropped };
  },
};

const all = {
  ...methods,
  ...mixedSoakMethods({ useTarget, connectDevice: connectOne, connectIdentity, identity }),
};

export type LoadgenApi = typeof all;

serve(all);
