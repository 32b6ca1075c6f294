/**
 * The one file that knows aedes: it wires every aedes hook (deny by default, CONVENTIONS "Boundaries") to
 * the broker's stages and sessions. Bulwark's own core has its adapter beside it (core-adapter.ts, config
 * `mqtt.core`); both share adapter.ts.
 */
import type { Duplex } from 'node:stream';
import { Aedes, type AedesPublishPacket, type AuthenticateError, type Client } from 'aedes';
import { connackCodes } from '@bulwark/protocol';
import {
  admitForApp,
  packetTooLarge,
  peerIdentity,
  raiseHighWaterMark,
  subscribeDenied,
  type AdapterDeps,
  type BrokerLimits,
  type MqttAdapter,
} from './adapter.ts';
import type { Admission } from './listeners.ts';
import { connackError, refusal } from './refusal.ts';
import type { RetainedStore } from './retained.ts';
import { createShareGroups, isShareFilter, parseShare, type ShareGroup } from './shared-subscriptions.ts';
import type { BrokerSession, PeerIdentity } from './stages.ts';

export type { BrokerLimits } from './adapter.ts';

/** The part of mqtt-packet's Parser the size check touches (aedes keeps one per client as `client._parser`). */
interface PacketParser {
  packet: { cmd: string; length: number };
  _parseLength: (this: PacketParser) => boolean;
  _emitError: (this: PacketParser, err: Error) => void;
}

interface OversizedPacket {
  cmd: string;
  length: number;
  limit: number;
}

/**
 * Refuses a packet whose fixed header announces more than its limit, before its body is buffered: mqtt-packet
 * would otherwise collect the whole remaining length (up to 256 MB, [MQTT-2.2.3]) before looking at it. The
 * remaining length is known after at most 5 bytes; per packet this adds one call and one comparison.
 */
function limitPacketSize(
  client: Client,
  limits: BrokerLimits,
  tooLarge: (packet: OversizedPacket) => void,
): void {
  const parser = (client as unknown as { _parser: PacketParser })._parser;
  const parseLength = parser._parseLength;
  const { maxPacketBytes, maxConnectBytes } = limits;
  parser._parseLength = function (this: PacketParser): boolean {
    if (!parseLength.call(this)) return false;
    const { cmd, length } = this.packet;
    const limit = cmd === 'connect' ? maxConnectBytes : maxPacketBytes;
    if (length <= limit) return true;
    tooLarge({ cmd, length, limit });
    // The parser stops here; aedes closes the connection on the error.
    this._emitError(refusal(`${cmd} of ${length} bytes exceeds the limit of ${limit}`));
    return false;
  };
}

/** Why aedes closed a connection before its CONNECT was handled, or undefined when the peer just went away. */
function connectErrorReason(err: Error & { code?: unknown }): string | undefined {
  if (err.code !== undefined) return undefined; // socket and TLS errors (ECONNRESET, EPIPE): nothing was refused
  if (err.message === 'connect did not arrive in time') return 'connect_timeout';
  if (err.message === 'Invalid protocol') return 'first packet is not CONNECT [MQTT-3.1.0-1]';
  return `malformed: ${err.message}`;
}

function transportOf(client: Client): BrokerSession['transport'] {
  const conn = client.conn as unknown as { pause?: () => void; resume?: () => void };
  return { pause: () => conn.pause?.(), resume: () => conn.resume?.() };
}

/** Bytes written to the client's connection and not yet sent. */
const queuedOf = (client: Client): number =>
  (client.conn as unknown as { writableLength?: number }).writableLength ?? 0;

/** The parts of an aedes Client that shared delivery uses (not in aedes' types). */
interface Deliverable {
  deliverQoS(packet: object, callback: () => void): void;
}

type Deliver = (packet: AedesPublishPacket, callback: () => void) => void;

export interface AedesAdapterDeps extends AdapterDeps<Client> {
  retained: Pick<RetainedStore, 'attach'>;
}

interface Connections {
  admissions: WeakMap<Client, Admission>;
  peers: WeakMap<Client, PeerIdentity>;
  /** aedes replaces an empty client id with a generated one before authenticate; what was sent. */
  requestedIds: WeakMap<Client, string>;
  /** The CONNECT's clean session flag (apps must connect with a clean session). */
  cleanSessions: WeakMap<Client, boolean>;
  /** Connections whose refusal is already recorded (aedes then reports the same close as an error too). */
  refusalRecorded: WeakSet<Client>;
}

type Wiring = AedesAdapterDeps &
  Connections & {
    aedes: Aedes;
    peerOf(client: Client): PeerIdentity;
    shares: ReturnType<typeof createShareGroups<Client>>;
    /** Each share group's listener on its inner filter (to unsubscribe it when the group empties). */
    shareListeners: WeakMap<ShareGroup<Client>, Deliver>;
  };

function refuseEarly(w: Wiring, client: Client, why: { reason: string; returnCode?: number }): Promise<void> {
  w.refusalRecorded.add(client);
  return w.refuseEarly(w.peerOf(client), why.reason, why.returnCode);
}

/** CONNECT: the protocol level, then the connect stages (connect.ts). */
function wireConnect(w: Wiring): void {
  w.aedes.preConnect = (client, packet, callback) => {
    w.requestedIds.set(client, packet.clientId ?? '');
    w.cleanSessions.set(client, packet.clean !== false);
    // aedes answers any level but 3 and 4 with CONNACK 0x01 before any other hook runs [MQTT-3.1.2-2]; the
    // refusal is recorded first. (MQTT 5 clients arrive here: mqtt-packet parses their CONNECT.)
    const version = packet.protocolVersion;
    if (version !== 3 && version !== 4) {
      const reason = `unsupported protocol version ${String(version)} (MQTT 3.1.1 only)`;
      void refuseEarly(w, client, { reason, returnCode: connackCodes.unacceptableProtocolVersion }).then(() =>
        callback(null, true),
      );
      return;
    }
    callback(null, true);
  };
  const unavailable = () => connackError('server unavailable', 'unavailable') as unknown as AuthenticateError;
  // aedes' hook is (client, username, password, done): devices are their certificate; apps may use
  // credentials (user name = app, password = token) when they present none.
  w.aedes.authenticate = (...[client, username, password, callback]: Parameters<Aedes['authenticate']>) => {
    // [MQTT-3.2.2-5], return code 3: the client retries later instead of taking a bare close for a refusal.
    if (w.admissions.get(client) === 'unchecked') {
      callback(unavailable(), false);
      return;
    }
    const context = {
      peer: w.peerOf(client),
      clientId: w.requestedIds.get(client) ?? client.id,
      startedAt: Date.now(),
      cleanSession: w.cleanSessions.get(client) ?? true,
      ...(username !== undefined && password !== undefined
        ? { credentials: { username, password: Buffer.from(password) } }
        : {}),
    };
    w.handleConnect(client, context, transportOf(client)).then(
      (err) => {
        if (err === null && w.sessions.get(client)?.principal.kind === 'app')
          raiseHighWaterMark(client.conn, w.limits.appQueueBytes);
        callback(err as unknown as AuthenticateError | null, err === null);
      },
      (err: unknown) => {
        w.logger.error({ err }, 'connection check failed');
        callback(unavailable(), false);
      },
    );
  };
}

/**
 * On reconnect, aedes replays a persistent session's queue (messages queued while it was offline, and QoS 1/2
 * messages sent but not acknowledged: `emptyQueue` in aedes' handlers/connect.js). For each stored packet it
 * makes a per-client copy (a QoSPacket, with its own `writeCallback`), asks authorizeForward about that copy
 * and then writes the copy itself, taking the answer only as yes or no. So the delivery stages' answer (a
 * transformed copy: privacy's view for this subscriber) is put onto that copy, and the subscriber receives
 * what the pipeline returned, as on a live delivery. The stored packet keeps the original until it is
 * acknowledged: a resend goes through the stages again when it is written. A live delivery never passes a
 * packet with its own `writeCallback` (aedes makes its QoSPacket from the answer, after the hook), and the
 * check runs only when a stage returned a copy.
 */
function isQueueReplay(packet: object): boolean {
  return Object.prototype.hasOwnProperty.call(packet, 'writeCallback');
}

/** PUBLISH, SUBSCRIBE and delivery: each through its stages (pipeline.ts). */
function wireAuthorization(w: Wiring): void {
  w.aedes.authorizePublish = (client, packet, callback) => {
    const session = client && w.sessions.get(client);
    if (!session) {
      callback(refusal('publish without an authenticated session'));
      return;
    }
    w.publish.run(session, packet, callback);
  };
  w.aedes.authorizeSubscribe = (client, sub, callback) => {
    const session = w.sessions.get(client);
    const held = Object.keys((client as unknown as { subscriptions?: object }).subscriptions ?? {}).length;
    // A shared subscription's inner filter is authorized like any filter (a malformed one is refused).
    const share = isShareFilter(sub.topic) ? parseShare(sub.topic) : undefined;
    let reason: string | undefined = 'no_session';
    if (session && isShareFilter(sub.topic) && !share) reason = 'malformed shared subscription';
    else if (session) reason = w.subscribe.run(session, { filter: share ? share.filter : sub.topic, held });
    if (session && reason === undefined) {
      // Keyed by the principal: only the instances of one app (or one device) share a group.
      if (share) joinShare(w, client, { ...share, topic: sub.topic, qos: sub.qos, owner: session.subject });
      callback(null, sub);
      return;
    }
    subscribeDenied(w.emit, {
      session,
      clientId: client.id,
      topic: sub.topic,
      reason: reason ?? 'no_session',
    });
    // §3.9.3: refuse this filter with return code 0x80 in the SUBACK; never grant and filter later.
    callback(null, null);
  };
  w.aedes.authorizeForward = (client, packet) => {
    const session = w.sessions.get(client);
    if (!session) return null;
    const delivered = w.deliver.run(session, packet);
    const out =
      delivered === null || session.delivery === undefined
        ? delivered
        : admitForApp(w, session, { out: delivered, clientId: client.id, queued: queuedOf(client) });
    // A transformed copy for a persistent session's queue replay: aedes writes its own copy (see isQueueReplay).
    if (out !== null && out !== packet && isQueueReplay(packet)) Object.assign(packet, out);
    return out;
  };
  const { ingress } = w;
  if (ingress)
    // After the publish stages let it through; the device id is the session's, never read from the topic.
    w.aedes.on('publish', (packet, client) => {
      const session = client ? w.sessions.get(client) : undefined;
      if (session?.principal.kind === 'device')
        ingress.dispatch(session.principal.id, packet.topic, packet.payload);
    });
}

/**
 * Joins the client to a share group; a new group is subscribed once to its inner filter, and each message
 * goes to one live member (round robin) that may receive it and is not over its queue bound. aedes keeps the
 * `$share/…` filter itself among the client's subscriptions (so UNSUBSCRIBE and SUBACK work as for any
 * filter); it matches no topic. Retained messages are not sent for a shared subscription (MQTT 5 §4.8.2).
 */
function joinShare(
  w: Wiring,
  client: Client,
  share: { topic: string; group: string; filter: string; qos: 0 | 1 | 2; owner: string },
): void {
  const { group, created } = w.shares.join(client, share.topic, share);
  if (!created) return;
  const listener = deliverShared(w, group);
  w.shareListeners.set(group, listener);
  w.aedes.subscribe(group.filter, listener, () => undefined);
}

/** A group left empty stops listening on its filter. */
function emptied(w: Wiring, groups: readonly (ShareGroup<Client> | undefined)[]): void {
  for (const group of groups) {
    const listener = group && w.shareListeners.get(group);
    if (!group || !listener) continue;
    w.shareListeners.delete(group);
    w.aedes.unsubscribe(group.filter, listener, () => undefined);
  }
}

/** One message of a share group's filter, to one member (aedes' dedupe skipped: a plain copy may also go). */
function deliverShared(w: Wiring, group: ShareGroup<Client>): Deliver {
  const eligible = (topic: string) => (client: Client) => {
    const session = w.sessions.get(client);
    if (!session?.active || client.closed || !session.access.receive(topic)) return false;
    return session.delivery === undefined || !w.appDelivery.overBound(queuedOf(client));
  };
  return (packet, callback) => {
    // [MQTT-4.7.2-1]: a filter starting with a wildcard does not match `$` topics.
    const wild = group.filter.startsWith('+') || group.filter.startsWith('#');
    const member =
      wild && packet.topic.startsWith('$') ? undefined : w.shares.pick(group, eligible(packet.topic));
    if (!member) {
      callback();
      return;
    }
    const qos = Math.min(member.qos, packet.qos) as 0 | 1 | 2;
    // No brokerId: aedes would otherwise take this copy for a duplicate of the member's plain subscription's.
    const copy = {
      cmd: 'publish',
      topic: packet.topic,
      payload: packet.payload,
      qos,
      retain: false,
      dup: false,
    };
    (member.client as unknown as Deliverable).deliverQoS(copy, callback);
  };
}

function wireLifecycle(w: Wiring): void {
  w.aedes.on('clientReady', (client) => {
    // A session dropped between CONNACK and here has no rights left; end the connection too.
    if (!w.sessions.has(client)) client.close();
  });
  w.aedes.on('clientDisconnect', (client) => w.sessions.disconnected(client));
  w.aedes.on('unsubscribe', (topics, client) => {
    emptied(
      w,
      topics.filter(isShareFilter).map((topic) => w.shares.leave(client, topic)),
    );
  });
  w.aedes.on('clientError', (client, err) =>
    w.logger.debug({ clientId: client.id, err: err.message }, 'mqtt client error'),
  );
  w.aedes.on('connectionError', (client, err) => {
    w.logger.debug({ clientId: client.id, err: err.message }, 'mqtt connection error');
    // Closed before its CONNECT was handled: every refusal is an event (docs/broker.md).
    if (w.refusalRecorded.has(client)) return;
    const reason = connectErrorReason(err);
    if (reason) void refuseEarly(w, client, { reason });
  });
}

/**
 * MQTT 3.1.1 on aedes. Every aedes hook is wired (deny by default): the certificate is the identity, the
 * client id must equal it, and each publish, subscribe and delivery goes through the stages.
 */
export async function createAedesAdapter(deps: AedesAdapterDeps) {
  const aedes = await Aedes.createBroker({
    connectTimeout: deps.limits.connectTimeoutMs,
    heartbeatInterval: 60_000,
    drainTimeout: 30_000,
  });
  // aedes keeps retained messages in memory without bounds; ours are bounded and stored (see retained.ts).
  deps.retained.attach(
    (aedes as unknown as { persistence: Parameters<typeof deps.retained.attach>[0] }).persistence,
  );
  const connections: Connections = {
    admissions: new WeakMap(),
    peers: new WeakMap(),
    requestedIds: new WeakMap(),
    cleanSessions: new WeakMap(),
    refusalRecorded: new WeakSet(),
  };
  const w: Wiring = {
    ...deps,
    ...connections,
    aedes,
    shares: createShareGroups<Client>(),
    shareListeners: new WeakMap(),
    // Read once per connection when aedes takes it: once aedes has closed a socket (a malformed CONNECT, a
    // CONNECT timeout), its address and certificate can no longer be read for the event that records why.
    peerOf: (client) =>
      connections.peers.get(client) ??
      peerIdentity(client.conn, connections.admissions.get(client) ?? 'verified'),
  };
  wireConnect(w);
  wireAuthorization(w);
  wireLifecycle(w);

  /** Hands a connection to aedes, with the packet-size check in its parser. */
  function accept(stream: Duplex, admission: Admission, peer?: PeerIdentity): void {
    const client = aedes.handle(stream);
    connections.admissions.set(client, admission);
    connections.peers.set(client, peer ?? peerIdentity(client.conn, admission));
    limitPacketSize(client, deps.limits, ({ cmd, length, limit }) =>
      packetTooLarge(w, client, {
        peer: w.peerOf(client),
        detail: `${cmd.toUpperCase()} announces ${length} bytes, limit ${limit}`,
      }),
    );
    // However it ends (a takeover of a persistent session emits no clientDisconnect), it leaves its groups,
    // and its pending drop count is recorded and let go.
    stream.once('close', () => {
      emptied(w, w.shares.leaveAll(client));
      w.appDelivery.forget(client.id);
    });
  }

  const adapter: MqttAdapter<Client> = {
    accept,
    close: (client: Client) => client.close(),
    /** Bytes written to the client's connection and not yet sent (app queue figures). */
    queuedOf,
    /** Publishes from the server (QoS 1); deliveries still pass each subscriber's delivery stages. */
    publish(topic: string, payload: string): Promise<void> {
      return new Promise((resolve, reject) => {
        aedes.publish(
          { cmd: 'publish', topic, payload: Buffer.from(payload), qos: 1, retain: false, dup: false },
          (err) => (err ? reject(err) : resolve()),
        );
      });
    },
    shutdown: () => new Promise<void>((resolve) => aedes.close(() => resolve())),
  };
  return adapter;
}
