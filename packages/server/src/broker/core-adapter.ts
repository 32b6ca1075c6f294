/**
 * The broker on Bulwark's own MQTT 3.1.1 and 5.0 core (core/, issue 19): the core's hooks wired to the
 * stages, sessions and events. Packet sizes, share groups, bounded queues and replays are the core's;
 * refusals reach MQTT 5 clients as reason codes.
 */
import type { Duplex } from 'node:stream';
import type { IConnectPacket } from 'mqtt-packet';
import {
  admitForApp,
  packetTooLarge,
  peerIdentity,
  raiseHighWaterMark,
  subscribeDenied,
  type AdapterDeps,
  type MqttAdapter,
} from './adapter.ts';
import {
  createBrokerCore,
  RC,
  v3ConnackOf,
  type Connection,
  type CoreHooks,
  type CoreLimits,
  type PersistedSession,
  type SessionJournal,
} from './core/index.ts';
import { credentialsOf, createEnhancedAuth, methodRefusal, type EnhancedAuthDeps } from './enhanced-auth.ts';
import type { Admission } from './listeners.ts';
import { refusal, type ConnackError } from './refusal.ts';
import type { RetainedMessage } from './retained.ts';
import type { DropCause } from './sessions.ts';
import type { BrokerSession, ConnectContext, PeerIdentity } from './stages.ts';

export type CoreConnection = Connection<BrokerSession>;

export interface CoreAdapterDeps
  extends AdapterDeps<CoreConnection>, Pick<EnhancedAuthDeps<CoreConnection>, 'checkApp' | 'events'> {
  /** The retained store answers SUBSCRIBE; storing is the retain stage's (it knows the publisher's quota). */
  retained: { match(filters: readonly string[]): Iterable<RetainedMessage> };
  /**
   * Persistent sessions in the store (mqtt-sessions.ts): the journal, and the sessions it kept at the last
   * run, given back to the core before the first connection. Without it they live in memory only.
   */
  durableSessions?:
    | {
        journal: SessionJournal;
        restored: readonly PersistedSession[];
        /** Writes what the journal still holds (at shutdown, after the connections are closed). */
        close(): Promise<void>;
      }
    | undefined;
}

/** What the adapter keeps with each connection (the core's `meta`). */
interface ConnMeta {
  admission: Admission;
  peer: PeerIdentity;
}

/**
 * The core's settings beyond BrokerLimits (whose bounds on sessions, queues, flow control, topic aliases and
 * keep alive come from config `mqtt.*`).
 */
const coreBounds = {
  /** Topic aliases towards MQTT 5 clients that allow them (§3.3.2.3.4): shorter PUBLISHes on repeated topics. */
  topicAliasesOut: true,
} as const;

/**
 * The Response Information of a session (§3.2.2.3.15): the basis of its response topics, under its own
 * subtree of the default policies (`devices/{id}/#`, `apps/{name}/#`), and only while its access lets it
 * subscribe there (a quarantined device: none).
 */
function responseInformationOf(session: BrokerSession): string | undefined {
  const { principal } = session;
  const base =
    principal.kind === 'device' ? `devices/${principal.id}/responses` : `apps/${principal.id}/responses`;
  return session.active && session.access.subscribe(`${base}/#`).allow ? base : undefined;
}

/** The DISCONNECT reason code (MQTT 5, §3.14.2.1) of a session the broker ends. */
function disconnectCodeOf(cause: DropCause | undefined): number {
  // Without a cause, the broker is closing (createBroker's close).
  if (cause === undefined) return RC.serverShuttingDown;
  // A policy that no longer lets it connect, an app whose facts changed: an operator acted.
  if (cause.trigger === 'policy change') return 0x98; // Administrative action
  // Revoked, disabled, banned, a credential that expired: it is no longer authorized.
  return RC.notAuthorized;
}

const metaOf = (conn: CoreConnection) => conn.meta as ConnMeta;

/** The core's reason for a packet over its limit (core/dispatch.ts): `PUBLISH announces N bytes, limit L`. */
const TOO_LARGE = /^[A-Z]+ announces \d+ bytes, limit \d+$/;

/**
 * A connection closed before it had a session, in the words the broker records (docs/broker.md), with the
 * 3.1.1 return code when a CONNACK told the client.
 */
function earlyRefusal(why: { reason: string; reasonCode: number }): { reason: string; returnCode?: number } {
  const { reason, reasonCode } = why;
  if (reasonCode === RC.maximumConnectTime) return { reason: 'connect_timeout' };
  if (reasonCode === RC.unsupportedProtocolVersion)
    return { reason: `${reason} (MQTT 3.1.1 and 5.0 only)`, returnCode: 1 };
  if (reason === 'first packet is not CONNECT') return { reason: `${reason} [MQTT-3.1.0-1]` };
  if (reason.startsWith('malformed CONNECT: ')) return { reason: `malformed: ${reason.slice(19)}` };
  if (reason.startsWith('connect refused by the protocol checks'))
    return { reason: `${reason} (0x${reasonCode.toString(16)})`, returnCode: v3ConnackOf(reasonCode) };
  return { reason };
}

/**
 * The ConnectContext of a CONNECT: the client id as sent, credentials (user name and password, or an app
 * token as `bulwark-app-token` Authentication Data), and whether the client asks for a session that outlives
 * the connection (3.1.1 clean session 0; MQTT 5 Clean Start 0 or a session expiry).
 */
function contextOf(packet: IConnectPacket, peer: PeerIdentity): ConnectContext {
  const persistent =
    packet.clean === false ||
    (packet.protocolVersion === 5 && (packet.properties?.sessionExpiryInterval ?? 0) > 0);
  const credentials = credentialsOf(packet);
  return {
    peer,
    clientId: packet.clientId,
    startedAt: Date.now(),
    cleanSession: !persistent,
    ...(credentials ? { credentials } : {}),
  };
}

interface Wiring extends CoreAdapterDeps {
  /** The connection of each session (hooks get the session; the registry is keyed by the connection). */
  connOf: WeakMap<BrokerSession, CoreConnection>;
  /** The core's `queuedBytes`, once it is made (the hooks are made first). */
  queuedBytes: (conn: CoreConnection) => number;
  /** MQTT 5 enhanced authentication: `bulwark-app-token` and re-authentication (enhanced-auth.ts). */
  enhancedAuth: ReturnType<typeof createEnhancedAuth<CoreConnection>>;
}

/** CONNECT: the connect stages (connect.ts), their refusal as the MQTT 5 reason code with its reason. */
async function connect(w: Wiring, conn: CoreConnection, packet: IConnectPacket) {
  const { admission, peer } = metaOf(conn);
  // [MQTT-3.2.2-5]: the certificate's standing could not be checked; the client retries later.
  if (admission === 'unchecked')
    return { ok: false as const, reasonCode: RC.serverUnavailable, reasonString: 'server unavailable' };
  // An authentication method other than an app's token, or from a certificate holder (MQTT 5 §4.12).
  const badMethod = methodRefusal(packet, admission);
  if (badMethod) {
    await w.refuseEarly(peer, badMethod.reason, v3ConnackOf(badMethod.reasonCode));
    return { ok: false as const, reasonCode: badMethod.reasonCode, reasonString: badMethod.reason };
  }
  const transport = { pause: () => conn.pause(), resume: () => conn.resume() };
  let err: ConnackError | null;
  try {
    err = await w.handleConnect(conn, contextOf(packet, peer), transport);
  } catch (cause) {
    w.logger.error({ err: cause }, 'connection check failed');
    return { ok: false as const, reasonCode: RC.serverUnavailable, reasonString: 'server unavailable' };
  }
  const session = err === null ? w.sessions.get(conn) : undefined;
  if (!session) {
    const refused = err ?? { reasonCode: RC.notAuthorized, message: 'session ended while connecting' };
    return { ok: false as const, reasonCode: refused.reasonCode, reasonString: refused.message };
  }
  w.connOf.set(session, conn);
  if (session.principal.kind === 'app') raiseHighWaterMark(conn.stream, w.limits.appQueueBytes);
  // An app instance's session is `app:<client id>` in the core too: a device whose id equals an app's name
  // never takes the app's session over, nor the app the device's.
  return { ok: true as const, session, sessionKey: session.key };
}

function hooksOf(w: Wiring): CoreHooks<BrokerSession> {
  const { ingress } = w;
  return {
    connect: (conn, packet) => connect(w, conn, packet),
    auth: (conn, step) => w.enhancedAuth.auth(conn, step),
    publish(session, packet, done) {
      // A dropped session (revoked, banned, too large a packet) publishes nothing more, its will included.
      if (!session.active) return done(refusal('session ended'));
      if (!ingress || session.principal.kind !== 'device') return w.publish.run(session, packet, done);
      // After the publish stages let it through; the device id is the session's, never read from the topic.
      const deviceId = session.principal.id;
      w.publish.run(session, packet, (err) => {
        done(err);
        if (err === null) ingress.dispatch(deviceId, packet.topic, packet.payload);
      });
    },
    subscribe(session, request) {
      const reason = session.active ? w.subscribe.run(session, request) : 'no_session';
      if (reason !== undefined)
        subscribeDenied(w.emit, { session, clientId: session.key, topic: request.topic, reason });
      return reason;
    },
    filterRefused: (session, refused) =>
      subscribeDenied(w.emit, { session, clientId: session.key, ...refused }),
    deliver(session, packet) {
      const conn = w.connOf.get(session);
      if (!session.active || !conn) return null;
      const out = w.deliver.run(session, packet);
      if (out === null || session.delivery === undefined) return out;
      return admitForApp(w, session, {
        out,
        clientId: conn.clientId ?? session.key,
        queued: w.queuedBytes(conn),
      });
    },
    retained: { lookup: (filters) => w.retained.match(filters) },
    // Share groups are kept per principal: only the instances of one app (or one device) share a group.
    shareScope: (session) => session.subject,
    responseInformation: responseInformationOf,
    disconnected(session, info) {
      const conn = w.connOf.get(session);
      if (!conn) return;
      if (info.reasonCode === RC.packetTooLarge && TOO_LARGE.test(info.reason))
        packetTooLarge(w, conn, { peer: metaOf(conn).peer, detail: info.reason });
      w.enhancedAuth.ended(session, info);
      w.sessions.disconnected(conn);
      if (conn.clientId !== undefined) w.appDelivery.forget(conn.clientId);
    },
    rejected(conn, why) {
      const { peer } = metaOf(conn);
      if (why.reasonCode === RC.packetTooLarge && TOO_LARGE.test(why.reason))
        return packetTooLarge(w, conn, { peer, detail: why.reason });
      const early = earlyRefusal(why);
      void w.refuseEarly(peer, early.reason, early.returnCode);
    },
    error: (conn, err) =>
      w.logger.debug({ clientId: conn.clientId, err: err.message }, 'mqtt connection error'),
  };
}

/**
 * MQTT 3.1.1 and 5.0 on Bulwark's core: the certificate is the identity, the client id must equal it, and
 * each publish, subscribe and delivery goes through the stages (deny by default: every hook is wired).
 */
export function createCoreAdapter(deps: CoreAdapterDeps): MqttAdapter<CoreConnection> {
  const w: Wiring = {
    ...deps,
    connOf: new WeakMap(),
    queuedBytes: () => 0,
    enhancedAuth: createEnhancedAuth<CoreConnection>(deps),
  };
  const { limits: bounds } = deps;
  const limits: CoreLimits = {
    maxPacketBytes: bounds.maxPacketBytes,
    maxConnectBytes: bounds.maxConnectBytes,
    connectTimeoutMs: bounds.connectTimeoutMs,
    receiveMaximum: bounds.receiveMaximum,
    maxQueuedMessages: bounds.maxQueuedMessages,
    maxSessionExpirySec: bounds.maxSessionExpirySec,
    topicAliasMaximum: bounds.topicAliasMaximum,
    keepAliveMaxSec: bounds.keepAliveMaxSec,
    ...coreBounds,
  };
  const started = createBrokerCore<BrokerSession>({
    hooks: hooksOf(w),
    limits,
    journal: deps.durableSessions?.journal,
    onTimerError: (err) => deps.logger.error({ err }, 'broker core timer failed'),
  });
  if (deps.durableSessions) started.restore(deps.durableSessions.restored);
  w.queuedBytes = (conn) => started.queuedBytes(conn);

  return {
    accept(stream: Duplex, admission: Admission, peer?: PeerIdentity): void {
      // Read once when the connection is taken: once a socket is closed, its address and certificate can no
      // longer be read for the event that records why.
      const meta: ConnMeta = { admission, peer: peer ?? peerIdentity(stream, admission) };
      started.accept(stream, meta);
    },
    close: (conn: CoreConnection, cause?: DropCause) => started.close(conn, disconnectCodeOf(cause)),
    queuedOf: (conn: CoreConnection) => started.queuedBytes(conn),
    publish: (topic: string, payload: string) => started.publish({ topic, payload, qos: 1 }),
    stats: () => started.stats(),
    shutdown: async () => {
      await started.shutdown();
      await deps.durableSessions?.close();
    },
  };
}
