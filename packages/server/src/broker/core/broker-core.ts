/**
 * Bulwark's MQTT 3.1.1 and 5.0 broker core: connections, sessions, routing and the protocol rules, behind
 * hooks (types.ts) that mirror the broker's stages. It knows nothing of devices, policies or events.
 */
import type { Duplex } from 'node:stream';
import type { Packet } from './codec.ts';
import { CoreConnection } from './connection.ts';
import type { CoreContext, CoreCounters, TrieSub } from './context.ts';
import { createConnectionOwner } from './dispatch.ts';
import { createLocalBus, joinBus, type ClusterBus } from './cluster-bus.ts';
import { restoreSessions } from './durability.ts';
import { routeMessage } from './outbound.ts';
import { RC } from './reason-codes.ts';
import { createMemorySessionStore } from './session-store.ts';
import { TimerWheel } from './timer-wheel.ts';
import { TopicTrie, validTopicName } from './topic-trie.ts';
import type {
  Connection,
  CoreHooks,
  CoreMessage,
  CoreLimits,
  MessageProperties,
  PersistedSession,
  QoS,
  SessionJournal,
  SessionState,
  SessionStore,
} from './types.ts';

export interface BrokerCoreOptions<S> {
  hooks: CoreHooks<S>;
  limits: CoreLimits;
  /** Where sessions live between connections (default: in memory). */
  sessions?: SessionStore | undefined;
  /**
   * Where persistent sessions are made durable (durability.ts): a QoS 1/2 PUBLISH routed to one is
   * acknowledged once the journal wrote it. Without one, persistent sessions live as long as the process.
   */
  journal?: SessionJournal | undefined;
  /** The cluster bus (cluster-bus.ts); default the local bus of a single node. */
  bus?: ClusterBus | undefined;
  /** The clock (epoch ms); tests pass their own. */
  now?: (() => number) | undefined;
  /** The shared timer's granularity in ms (default 250): keep alive and deadlines fire within one tick. */
  tickMs?: number | undefined;
  /** A deadline's work failed (a hook threw while a will or an expiry ran): for logging. */
  onTimerError?: ((err: unknown) => void) | undefined;
}

/** A message the server publishes itself (QoS 1 by default); each subscriber's deliver hook still runs. */
export interface ServerMessage {
  topic: string;
  payload: Buffer | string;
  qos?: QoS | undefined;
  properties?: MessageProperties | undefined;
}

export interface CoreStats extends CoreCounters {
  /** Open connections. */
  connections: number;
  sessions: number;
  subscriptions: number;
  /** Messages dropped per client id (queue full, too large for it, expired), for the sessions the core holds. */
  dropsByClient: Record<string, number>;
}

function createContext<S>(options: BrokerCoreOptions<S>): CoreContext<S> {
  const now = options.now ?? Date.now;
  return {
    hooks: options.hooks,
    limits: options.limits,
    store: options.sessions ?? createMemorySessionStore(),
    journal: options.journal,
    bus: options.bus ?? createLocalBus(),
    trie: new TopicTrie<SessionState, TrieSub>(),
    wheel: new TimerWheel(options.tickMs ?? 250, now, options.onTimerError),
    live: new Map(),
    conns: new Set(),
    wills: new Map(),
    expiries: new Map(),
    counters: {
      connectionsAccepted: 0,
      messagesReceived: 0,
      messagesSent: 0,
      droppedQueueFull: 0,
      droppedTooLarge: 0,
      droppedExpired: 0,
      packetsTooLarge: 0,
      malformed: 0,
      protocolErrors: 0,
    },
    now,
    fanout: { message: undefined, cache: new Map() },
  };
}

/** A DISCONNECT with the reason code for a connected MQTT 5 client; nothing otherwise (3.1.1 has none). */
function disconnectFor(conn: CoreConnection<unknown>, reasonCode: number | undefined): Packet | undefined {
  return reasonCode !== undefined && conn.protocolVersion === 5 && conn.phase === 'connected'
    ? { cmd: 'disconnect', reasonCode }
    : undefined;
}

export function createBrokerCore<S>(options: BrokerCoreOptions<S>) {
  const ctx = createContext(options);
  const owner = createConnectionOwner(ctx);
  // Messages accepted on other nodes are routed here like this node's own (each subscriber's deliver hook runs).
  const leaveBus = joinBus(ctx, ctx.bus, (message) => routeMessage(ctx, message));
  let shuttingDown = false;

  function internal(conn: Connection<S>): CoreConnection<S> {
    if (!(conn instanceof CoreConnection) || (!ctx.conns.has(conn as CoreConnection<S>) && !conn.closed))
      throw new TypeError('conn: not a connection of this broker core');
    return conn as CoreConnection<S>;
  }

  return {
    /** Takes a connection (a TCP or TLS socket, a WebSocket stream): its first packet must be a CONNECT. */
    accept(stream: Duplex, meta: unknown): Connection<S> {
      const conn = new CoreConnection<S>(stream, meta, owner);
      if (shuttingDown) {
        conn.end(undefined, { reason: 'server shutting down', reasonCode: RC.serverShuttingDown });
        return conn;
      }
      ctx.conns.add(conn);
      ctx.counters.connectionsAccepted += 1;
      conn.timer.deadline = ctx.now() + ctx.limits.connectTimeoutMs;
      ctx.wheel.schedule(conn.timer);
      return conn;
    },
    /**
     * Gives back the persistent sessions a journal kept (call before the first connection): their
     * subscriptions, queued and in-flight messages and expiry. Resolves with how many were restored.
     */
    restore(sessions: Iterable<PersistedSession>): number {
      return restoreSessions(ctx, sessions);
    },
    /** Publishes from the server to the matching subscribers; resolved once routed. */
    publish(message: ServerMessage): Promise<void> {
      if (!validTopicName(message.topic))
        return Promise.reject(new TypeError(`topic: '${message.topic}' is not a valid topic name`));
      const expiry = message.properties?.messageExpiryInterval;
      try {
        const routed: CoreMessage = {
          topic: message.topic,
          payload: Buffer.isBuffer(message.payload) ? message.payload : Buffer.from(message.payload),
          qos: message.qos ?? 1,
          retain: false,
          properties: message.properties,
          expiresAt: expiry !== undefined ? ctx.now() + expiry * 1000 : undefined,
        };
        routeMessage(ctx, routed);
        ctx.bus.publish(routed);
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
      return Promise.resolve();
    },
    /** Ends a connection; a v5 client gets DISCONNECT with the reason code (e.g. 0x87, 0x97, 0x8B). */
    close(conn: Connection<S>, reasonCode?: number): void {
      const c = internal(conn);
      c.end(disconnectFor(c, reasonCode), {
        reason: 'closed by the server',
        reasonCode: reasonCode ?? RC.unspecified,
      });
    },
    /** Bytes waiting for this client: written to its stream and not yet sent, and in its session queue. */
    queuedBytes(conn: Connection<S>): number {
      const c = internal(conn);
      return c.writableLength + (c.state?.queuedBytes ?? 0);
    },
    /**
     * Tests only (leak checks of the fuzzer): what the core still holds, and one tick of its timer wheel for
     * tests that drive the clock (`now`).
     */
    internals() {
      return {
        live: ctx.live.size,
        wills: ctx.wills.size,
        expiries: ctx.expiries.size,
        timers: ctx.wheel.size,
        tick: () => ctx.wheel.tick(),
      };
    },
    stats(): CoreStats {
      const dropsByClient: Record<string, number> = {};
      for (const state of ctx.store.values())
        if (state.drops > 0) dropsByClient[state.clientId] = state.drops;
      return {
        ...ctx.counters,
        connections: ctx.conns.size,
        sessions: ctx.store.size,
        subscriptions: ctx.trie.size,
        dropsByClient,
      };
    },
    /** Closes every connection (DISCONNECT 0x8B on MQTT 5) and stops the timers. */
    async shutdown(): Promise<void> {
      shuttingDown = true;
      const open = [...ctx.conns];
      const closing = open.map((conn) => {
        // 'close' only: `once` would reject when a reset socket emits 'error' first.
        const closed = conn.stream.destroyed
          ? Promise.resolve()
          : new Promise<void>((resolve) => conn.stream.once('close', () => resolve()));
        const why = { reason: 'server shutting down', reasonCode: RC.serverShuttingDown };
        conn.end(disconnectFor(conn, RC.serverShuttingDown), why);
        return closed;
      });
      // Clients that read nothing are not waited for beyond the linger time.
      const lingering = new Promise<void>((resolve) => setTimeout(resolve, 2500).unref());
      await Promise.race([Promise.all(closing), lingering]);
      for (const conn of open) conn.stream.destroy();
      leaveBus();
      ctx.wheel.stop();
      ctx.wills.clear();
      ctx.expiries.clear();
    },
  };
}

export type BrokerCore<S> = ReturnType<typeof createBrokerCore<S>>;
