import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { EventBus } from '../events/index.ts';
import type { Firewall } from '../firewall/index.ts';
import type { AdapterDeps, BrokerLimits, MqttAdapter } from './adapter.ts';
import { createAppDelivery } from './app-delivery.ts';
import { createConnectHandler, createEarlyRefusals } from './connect.ts';
import { createCoreAdapter, type CoreAdapterDeps, type CoreConnection } from './core-adapter.ts';
import type { CoreStats } from './core/index.ts';
import { connectStages, type ConnectStageDeps } from './connect-stages.ts';
import { createCounters, createEmit } from './emit.ts';
import type { IngressRouter } from './ingress.ts';
import { createListeners, type BrokerTls, type ListenerDeps } from './listeners.ts';
import { createDeliverPipeline, createPublishPipeline, createSubscribePipeline } from './pipeline.ts';
import { deliverStages, publishStages, subscribeStages } from './publish-stages.ts';
import type { RetainedStore } from './retained.ts';
import {
  watchAccessChanges,
  watchAppChanges,
  watchRetainedDeletions,
  watchRevocations,
} from './revocation-watch.ts';
import { createSessionDropReports } from './session-drops.ts';
import { appKey, createSessionRegistry } from './sessions.ts';
import type { BrokerTransforms, PeerIdentity, PublishStage } from './stages.ts';

export type { BrokerLimits } from './adapter.ts';
export type { AppDeliveryStats } from './app-delivery.ts';
export type { ConnectDecision } from './connect-stages.ts';
export type { BrokerTls } from './listeners.ts';

export interface BrokerDeps
  extends
    Pick<
      ConnectStageDeps,
      | 'checkConnection'
      | 'checkAnonymous'
      | 'accessFor'
      | 'monitor'
      | 'checkApp'
      | 'accessForApp'
      | 'appPasswords'
    >,
    Pick<ListenerDeps, 'revocationLists' | 'certificateStanding'> {
  tls: BrokerTls;
  port: number;
  /** Development only: a plaintext listener without authentication on this port (see config mqtt.devListener). */
  devPort?: number | undefined;
  host?: string | undefined;
  logger: Logger;
  events: Pick<EventBus, 'emit' | 'on'>;
  /** Connection limits, bans, flapping and publish quotas (see firewall/). */
  firewall: Firewall;
  /** Subscribes to changes that may alter compiled access; the broker then recompiles its live sessions. */
  onAccessChange(listener: (deviceId?: string) => void): () => void;
  /** Retained messages: quotas per device and in total, kept in the store (loaded before listening). */
  retained: Pick<RetainedStore, 'retain'> &
    Partial<Pick<RetainedStore, 'forgetDeleted'>> &
    CoreAdapterDeps['retained'];
  /** Persistent MQTT sessions in the store (mqtt-sessions.ts), loaded before listening. */
  durableSessions?: CoreAdapterDeps['durableSessions'];
  /** Bounds enforced before anything is buffered (DESIGN principle 8); defaults in `defaultBrokerLimits`. */
  limits?: Partial<BrokerLimits> | undefined;
  /** Device messages the platform consumes (heartbeats, firmware reports, metrics), typed (see ingress.ts). */
  ingress?: IngressRouter | undefined;
  /** Stages at the transform points of the publish and delivery pipelines (privacy); none by default. */
  transforms?: BrokerTransforms | undefined;
  /**
   * Stages that keep messages (the telemetry store): after meter, before retain, for every publish that
   * passed authorization (devices and apps; the stage decides).
   */
  persist?: readonly PublishStage[] | undefined;
  /**
   * An app's facts when they change (`app.updated`): its sessions are recompiled with them. Without it,
   * an updated app's sessions are dropped (its instances reconnect with the new facts).
   */
  appFacts?:
    ((app: string) => Promise<{ zone: string | null; purpose: string | null } | undefined>) | undefined;
  /** How often app sessions are checked for an expired credential (token or certificate); default 1 s. */
  expirySweepMs?: number | undefined;
  /** How often at most a client id's dropped messages are recorded (`mqtt.delivery_dropped`); default 10 s. */
  dropEventWindowMs?: number | undefined;
}

export const defaultBrokerLimits: BrokerLimits = Object.freeze({
  // 256 KiB of payload plus room for a long topic (4 bytes per character at most, 256 characters), the topic
  // length and the packet id: what firewall.maxPayloadBytes and maxTopicLength admit with their defaults.
  maxPacketBytes: 256 * 1024 + 4 * 256 + 4,
  maxConnectBytes: 16 * 1024,
  handshakeTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  appQueueBytes: 8 * 1024 * 1024,
  // The core's own bounds (config mqtt.*): a persistent session and its queue are bounded (DESIGN principle 8).
  receiveMaximum: 100,
  maxQueuedMessages: 1000,
  maxSessionExpirySec: 7 * 86_400,
  topicAliasMaximum: 16,
  keepAliveMaxSec: undefined,
});

/**
 * MQTT 3.1.1 and 5.0 over mutual TLS: the listeners (listeners.ts), connect stages (connect-stages.ts), the
 * publish, subscribe and delivery pipelines (publish-stages.ts, pipeline.ts), live sessions (sessions.ts) and
 * the watchers that end or recompile them (revocation-watch.ts), on Bulwark's own MQTT core (core/, wired in
 * core-adapter.ts). See README.md.
 */
export function createBroker(deps: BrokerDeps) {
  // The apps check and the event bus also serve MQTT 5 re-authentication (enhanced-auth.ts).
  const { retained, durableSessions, checkApp, events } = deps;
  return assembleBroker<CoreConnection>(deps, (a) =>
    createCoreAdapter({ ...a, retained, durableSessions, checkApp, events }),
  );
}

/** The core's figures for Prometheus: its counters and gauges, without the per-client drops (events). */
function coreFigures(stats: CoreStats): Omit<CoreStats, 'dropsByClient'> {
  const { dropsByClient: _perClient, ...figures } = stats;
  return figures;
}

/** The broker's parts around the MQTT adapter (`C`: its connection). */
async function assembleBroker<C extends object>(
  deps: BrokerDeps,
  makeAdapter: (deps: AdapterDeps<C>) => MqttAdapter<C> | Promise<MqttAdapter<C>>,
) {
  const { logger, events, firewall } = deps;
  const limits: BrokerLimits = { ...defaultBrokerLimits, ...deps.limits };
  const emit = createEmit(events, logger);
  const counters = createCounters();
  // The adapter is made after the registry it is given; a session is dropped only once it is running.
  const engine: { adapter?: MqttAdapter<C> } = {};
  const sessions = createSessionRegistry<C>({
    firewall,
    emit,
    close: (client, cause) => engine.adapter?.close(client, cause),
  });
  const stageDeps = { firewall, retained: deps.retained, emit, counters, logger };
  const appDelivery = createAppDelivery({ emit, queueBytes: limits.appQueueBytes });
  const mqtt = await makeAdapter({
    limits,
    sessions,
    handleConnect: createConnectHandler<C>({
      stages: connectStages({
        ...deps,
        appPasswords: deps.appPasswords !== false,
        blockedSince: (identity, since) => sessions.blockedSince(identity, since),
      }),
      sessions,
      events,
      firewall,
      appCounters: (app) => appDelivery.countersOf(app),
    }),
    refuseEarly: createEarlyRefusals({ events, logger }),
    publish: createPublishPipeline(publishStages(stageDeps, deps.transforms, deps.persist)),
    subscribe: createSubscribePipeline(subscribeStages(stageDeps)),
    deliver: createDeliverPipeline(deliverStages(deps.transforms)),
    ingress: deps.ingress,
    appDelivery,
    emit,
    counters,
    logger,
  });
  engine.adapter = mqtt;
  const listeners = await createListeners({
    ...deps,
    handshakeTimeoutMs: limits.handshakeTimeoutMs,
    accept: (socket, admission) => mqtt.accept(socket, admission),
    emit,
    counters,
  });
  const stopRevocations = watchRevocations({ events, sessions, refreshCrls: listeners.refreshCrls });
  const stopAccessChanges = watchAccessChanges({ ...deps, sessions });
  const stopAppChanges = watchAppChanges({ ...deps, sessions });
  const stopRetainedDeletions = watchRetainedDeletions({ events, retained: deps.retained, logger });
  // One timer per broker, over app sessions only: a token or app certificate that ends mid-session ends it.
  const expirySweep = setInterval(() => sessions.dropExpired(Date.now()), deps.expirySweepMs ?? 1000);
  expirySweep.unref();
  const sessionDrops = createSessionDropReports({
    emit,
    dropsByClient: () => mqtt.stats().dropsByClient,
    liveSubjectOf: (clientId) =>
      (sessions.sessionOf(clientId) ?? sessions.sessionOf(appKey(clientId)))?.subject,
    windowMs: deps.dropEventWindowMs,
  });
  const appDeliveryStats = () =>
    appDelivery.stats((app) => {
      const clients = sessions.clientsOfApp(app);
      let queuedBytes = 0;
      for (const client of clients) queuedBytes += mqtt.queuedOf(client);
      return { queuedBytes, connections: clients.length };
    });

  return {
    listen: () => listeners.listen(),
    /** Starts the development listener if configured; returns its port. */
    listenDev: () => listeners.listenDev(),
    /** The listeners bound so far, as they were bound: port, transport, authentication, minimum TLS version. */
    listenerFacts: () => listeners.listenerFacts(),
    /**
     * An in-process connection (tests): a duplex stream as if it came through mutual TLS with this identity.
     * It then goes through the same connect stages as any other.
     */
    connectStream: (stream: Duplex, peer: PeerIdentity) => mqtt.accept(stream, 'verified', peer),
    /** Authenticated sessions (Prometheus). */
    sessionCount: () => sessions.size,
    /** Counters for Prometheus, read at scrape time. Denials are by reason (a bounded set), never by device. */
    stats: () => ({
      sessions: sessions.size,
      handshakeTimeouts: counters.handshakeTimeouts,
      packetsTooLarge: counters.packetsTooLarge,
      publishDenied: [...counters.publishDenied],
      apps: appDeliveryStats(),
      mqtt: coreFigures(mqtt.stats()),
    }),
    /**
     * Per app: messages, bytes and drops since start, bytes waiting in its connections and how many it has
     * (Prometheus; the apps module records them per node).
     */
    appDeliveryStats,
    /** Connected device ids (for tests and the console). */
    connectedDevices: () => sessions.deviceIds(),
    /** Publishes from the server (QoS 1); deliveries still pass each subscriber's delivery stages. */
    publish: (topic: string, payload: string) => mqtt.publish(topic, payload),
    async close(): Promise<void> {
      stopRevocations();
      stopAccessChanges();
      stopAppChanges();
      stopRetainedDeletions();
      clearInterval(expirySweep);
      sessionDrops.stop();
      for (const client of sessions.clients()) mqtt.close(client);
      await listeners.close();
      await mqtt.shutdown();
    },
  };
}

export type Broker = Awaited<ReturnType<typeof assembleBroker>>;
