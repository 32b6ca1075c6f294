import { once } from 'node:events';
import net, { type AddressInfo, type Socket } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { Aedes, type Client } from 'aedes';
import type { Logger } from 'pino';
import type { ConnackCode } from '@bulwark/protocol';
import { createEventRateLimit, type AuditEntry, type EventBus } from '../events/index.ts';
import type { Firewall } from '../firewall/index.ts';
import type { DeviceMeter } from '../monitor/index.ts';
import { refuseRenegotiation, serverTlsProfile } from '../pki/index.ts';
import { addressIn, type DeviceAccess } from '../policy/index.ts';
import { isConnectionLoss } from '../store/index.ts';
import type { RetainedStore } from './retained.ts';

export interface BrokerTls {
  key: string;
  cert: string;
  /** The CA chain client certificates must verify against. */
  ca: string;
}

export type ConnectDecision =
  | { ok: true; deviceId: string; group: string | null; serial: string }
  | { ok: false; returnCode: ConnackCode; reason: string };

export interface BrokerDeps {
  tls: BrokerTls;
  port: number;
  /** Development only: a plaintext listener without authentication on this port (see config mqtt.devListener). */
  devPort?: number | undefined;
  checkAnonymous?(clientId: string): Promise<ConnectDecision>;
  host?: string | undefined;
  logger: Logger;
  events: Pick<EventBus, 'emit' | 'subscribe'>;
  checkConnection(identity: {
    clientId: string;
    certSerial: string | undefined;
    certCn: string | undefined;
  }): Promise<ConnectDecision>;
  /** The device's compiled access (policies, zones, quarantine) for this connection. */
  accessFor(identity: {
    deviceId: string;
    remoteAddress: string | null;
    certSubject: Record<string, string>;
    anonymous?: boolean;
  }): Promise<DeviceAccess>;
  /** Connection limits, bans, flapping and publish quotas (see firewall/). */
  firewall: Firewall;
  /** Subscribes to changes that may alter compiled access; the broker then recompiles its live sessions. */
  onAccessChange(listener: (deviceId?: string) => void): () => void;
  /** Per-device metering for the detectors (the meter's rules are in place before the CONNACK). */
  monitor?: { attach(deviceId: string): Promise<DeviceMeter> } | undefined;
  /** Retained messages: quotas per device and in total, kept in the store (loaded before listening). */
  retained: Pick<RetainedStore, 'retain' | 'attach'>;
  /** Bounds enforced before anything is buffered (DESIGN principle 8); defaults in `defaultBrokerLimits`. */
  limits?: Partial<BrokerLimits> | undefined;
  /**
   * PEM CRLs of every CA in the chain (issuing and root: OpenSSL's CRL_CHECK_ALL needs one per CA), checked
   * in the TLS handshake. Read at start, after every `certificate.revoked` and every hour (they are reissued
   * at half their validity, so they never expire in the listener).
   */
  revocationLists?: (() => Promise<string[]>) | undefined;
  /**
   * Right after the handshake and before any MQTT byte is read: whether the client certificate is one the
   * store knows, unrevoked, of a device that still exists (a CRL cannot list what the store never saw).
   */
  certificateStanding?:
    ((serial: string) => Promise<{ ok: true } | { ok: false; reason: string }>) | undefined;
}

export interface BrokerLimits {
  /** Largest MQTT packet other than CONNECT (remaining length), refused at its fixed header. */
  maxPacketBytes: number;
  /** Largest CONNECT (remaining length), refused at its fixed header: a client id, a Will and credentials. */
  maxConnectBytes: number;
  /** A TLS handshake not finished within this is closed (stalled ClientHellos, bare TCP connections). */
  handshakeTimeoutMs: number;
  /** A connection whose CONNECT has not arrived within this is closed (`mqtt.connect_refused`, connect_timeout). */
  connectTimeoutMs: number;
}

export const defaultBrokerLimits: BrokerLimits = Object.freeze({
  // 256 KiB of payload plus room for a long topic (4 bytes per character at most, 256 characters), the topic
  // length and the packet id: what firewall.maxPayloadBytes and maxTopicLength admit with their defaults.
  maxPacketBytes: 256 * 1024 + 4 * 256 + 4,
  maxConnectBytes: 16 * 1024,
  handshakeTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
});

interface Session {
  deviceId: string;
  serial: string;
  remoteAddress: string;
  certSubject: Record<string, string>;
  /** A client of the development listener (no certificate). */
  anonymous: boolean;
  access: DeviceAccess;
  meter: DeviceMeter | undefined;
}

/**
 * An error that only carries a reason to aedes: no stack trace is captured (formatting one, with source
 * maps on, stalled the event loop for tens of milliseconds when a flooding device was refused).
 */
function refusal(reason: string): Error {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  const err = new Error(reason);
  Error.stackTraceLimit = limit;
  return err;
}

/** aedes reads `returnCode` (2-5) off the error for the CONNACK it sends. */
function connackError(reason: string, returnCode: number): Error & { returnCode: never } {
  return Object.assign(refusal(reason), { returnCode: returnCode as never });
}

/** The part of mqtt-packet's Parser the size check touches (aedes keeps one per client as `client._parser`). */
interface PacketParser {
  packet: { cmd: string; length: number };
  _parseLength: (this: PacketParser) => boolean;
  _emitError: (this: PacketParser, err: Error) => void;
}

/**
 * Refuses a packet whose fixed header announces more than its limit, before its body is buffered: mqtt-packet
 * would otherwise collect the whole remaining length (up to 256 MB, [MQTT-2.2.3]) before looking at it. The
 * remaining length is known after at most 5 bytes; per packet this adds one call and one comparison.
 */
function limitPacketSize(
  client: Client,
  limits: BrokerLimits,
  tooLarge: (client: Client, cmd: string, length: number, limit: number) => void,
): void {
  const parser = (client as unknown as { _parser: PacketParser })._parser;
  const parseLength = parser._parseLength;
  const { maxPacketBytes, maxConnectBytes } = limits;
  parser._parseLength = function (this: PacketParser): boolean {
    if (!parseLength.call(this)) return false;
    const { cmd, length } = this.packet;
    const limit = cmd === 'connect' ? maxConnectBytes : maxPacketBytes;
    if (length <= limit) return true;
    tooLarge(client, cmd, length, limit);
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

function peerIdentity(client: Client): {
  cn: string | undefined;
  serial: string | undefined;
  remoteAddress: string;
  subject: Record<string, string>;
} {
  const socket = client.conn as unknown as TLSSocket;
  const remoteAddress = socket.remoteAddress ?? 'unknown';
  const peer = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate() : undefined;
  const raw = (peer?.subject ?? {}) as unknown as Record<string, string | string[]>;
  const subject: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) if (typeof v === 'string') subject[k] = v;
  // A certificate with several CNs names no single device.
  return {
    cn: typeof raw.CN === 'string' ? raw.CN : undefined,
    serial: peer?.serialNumber || undefined,
    remoteAddress,
    subject,
  };
}

/**
 * MQTT 3.1.1 over mutual TLS on aedes. Every aedes hook is wired (deny by default): the certificate is
 * the identity, the client id must equal it, and each publish, subscribe and delivery goes through the
 * device's compiled access.
 */
export async function createBroker(deps: BrokerDeps) {
  const { logger, events } = deps;
  const limits: BrokerLimits = { ...defaultBrokerLimits, ...deps.limits };
  const aedes = await Aedes.createBroker({
    connectTimeout: limits.connectTimeoutMs,
    heartbeatInterval: 60_000,
    drainTimeout: 30_000,
  });
  // aedes keeps retained messages in memory without bounds; ours are bounded and stored (see retained.ts).
  deps.retained.attach(
    (aedes as unknown as { persistence: Parameters<typeof deps.retained.attach>[0] }).persistence,
  );
  const sessions = new WeakMap<Client, Session>();
  const byDevice = new Map<string, Client>();
  const retainedEvents = createEventRateLimit({ max: 5, windowMs: 60_000 });
  const requestedIds = new WeakMap<Client, string>();
  const insecureSockets = new WeakSet<object>();
  // Connections whose certificate standing the store could not answer (it is down): CONNACK 3 below.
  const uncheckedSockets = new WeakSet<object>();
  const throttleEvents = createEventRateLimit({ max: 5, windowMs: 60_000 });
  // When each device was last revoked or disabled: a connection whose check started before that is refused,
  // closing the window between the store read in checkConnection and the session being registered.
  const blockedAt = new Map<string, number>();

  const emit = (event: Parameters<typeof events.emit>[0]) => {
    events.emit(event).catch((err: unknown) => logger.error({ err }, 'cannot record broker event'));
  };

  // Read at scrape time by Prometheus; plain integers, nothing allocated on the hot path.
  const stats = { handshakeTimeouts: 0, packetsTooLarge: 0, publishDenied: new Map<string, number>() };
  // Refusals before authentication come from anyone who passed TLS (or from the development listener):
  // recorded at most 20 a minute per address, with the count of those left out.
  const earlyRefusals = createEventRateLimit({ max: 20, windowMs: 60_000 });
  // Connections whose refusal is already recorded (aedes then reports the same close as an error too).
  const refusalRecorded = new WeakSet<Client>();

  const identify = (client: Client) =>
    insecureSockets.has(client.conn)
      ? {
          cn: undefined,
          serial: undefined,
          remoteAddress: (client.conn as unknown as Socket).remoteAddress ?? 'unknown',
          subject: {},
        }
      : peerIdentity(client);
  // Read once per connection when aedes takes it: once aedes has closed a socket (a malformed CONNECT, a
  // CONNECT timeout), its address and certificate can no longer be read for the event that records why.
  const peers = new WeakMap<Client, ReturnType<typeof identify>>();
  const peerOf = (client: Client) => peers.get(client) ?? identify(client);

  /** Hands a connection to aedes, with the packet-size check in its parser. */
  function accept(socket: Socket): void {
    const client = aedes.handle(socket);
    peers.set(client, identify(client));
    limitPacketSize(client, limits, packetTooLarge);
  }

  /** Records a CONNECT refused before authentication (malformed, too large, timed out, wrong protocol version). */
  function refuseEarly(client: Client, reason: string, returnCode?: number): Promise<void> {
    refusalRecorded.add(client);
    const peer = peerOf(client);
    const { record, suppressed } = earlyRefusals.admit(peer.remoteAddress);
    if (!record) return Promise.resolve();
    return events
      .emit({
        type: 'mqtt.connect_refused',
        actor: peer.cn ? `device:${peer.cn}` : `anonymous@${peer.remoteAddress}`,
        subject: peer.cn ? `device:${peer.cn}` : undefined,
        data: {
          remoteAddress: peer.remoteAddress,
          reason,
          ...(returnCode !== undefined ? { returnCode } : {}),
          ...(peer.serial ? { certSerial: peer.serial } : {}),
          ...(suppressed ? { suppressed } : {}),
        },
      })
      .then(
        () => undefined,
        (err: unknown) => logger.error({ err }, 'cannot record broker event'),
      );
  }

  /** A packet announced more than its limit (see limitPacketSize); the connection is being closed. */
  function packetTooLarge(client: Client, cmd: string, length: number, limit: number): void {
    stats.packetsTooLarge += 1;
    const reason = `packet_too_large: ${cmd.toUpperCase()} announces ${length} bytes, limit ${limit}`;
    const session = sessions.get(client);
    if (!session) {
      void refuseEarly(client, reason);
      return;
    }
    // The session ends here, like a drop: no further publish or delivery while the socket closes.
    sessions.delete(client);
    if (byDevice.get(session.deviceId) === client) {
      byDevice.delete(session.deviceId);
      deps.firewall.forgetDevice(session.deviceId);
    }
    emit({
      type: 'mqtt.session_dropped',
      actor: 'system',
      subject: `device:${session.deviceId}`,
      data: { reason, trigger: 'packet_size' },
    });
  }

  aedes.preConnect = (client, packet, callback) => {
    // aedes replaces an empty client id with a generated one before authenticate; remember what was sent.
    requestedIds.set(client, packet.clientId ?? '');
    // aedes answers any level but 3 and 4 with CONNACK 0x01 before any other hook runs [MQTT-3.1.2-2]; the
    // refusal is recorded first. (MQTT 5 clients arrive here: mqtt-packet parses their CONNECT.)
    const version = packet.protocolVersion;
    if (version !== 3 && version !== 4) {
      void refuseEarly(client, `unsupported protocol version ${String(version)} (MQTT 3.1.1 only)`, 1).then(
        () => callback(null, true),
      );
      return;
    }
    callback(null, true);
  };

  aedes.authenticate = (client, _username, _password, callback) => {
    if (uncheckedSockets.has(client.conn)) {
      // [MQTT-3.2.2-5], return code 3: the client retries later instead of taking a bare close for a refusal.
      callback(connackError('server unavailable', 3), false);
      return;
    }
    const anonymous = insecureSockets.has(client.conn);
    const peer = peerOf(client);
    const clientId = requestedIds.get(client) ?? client.id;
    const started = Date.now();
    // A banned certificate is refused before any store read; refusals by a ban are not counted again.
    const certificateBan = peer.serial ? deps.firewall.certificateBan(peer.serial) : undefined;
    let refusedByBan = certificateBan !== undefined;
    const identify: Promise<ConnectDecision> = certificateBan
      ? Promise.resolve({ ok: false, returnCode: 5, reason: `certificate banned: ${certificateBan}` })
      : anonymous
        ? (deps.checkAnonymous?.(clientId) ??
          Promise.resolve({ ok: false, returnCode: 5, reason: 'anonymous listener not configured' }))
        : deps.checkConnection({ clientId, certSerial: peer.serial, certCn: peer.cn });
    identify
      .then(async (checked) => {
        let decision = checked;
        const actor = peer.cn ? `device:${peer.cn}` : `anonymous@${peer.remoteAddress}`;
        let access: DeviceAccess | undefined;
        if (decision.ok) {
          // Bans of the device or certificate, and flapping (a ban of the device, never of its address).
          const admitted = deps.firewall.admitDevice(decision.deviceId, decision.serial);
          if (!admitted.ok) {
            refusedByBan = true;
            decision = { ok: false, returnCode: 5, reason: admitted.reason };
          }
        }
        if (decision.ok) {
          access = await deps.accessFor({
            deviceId: decision.deviceId,
            remoteAddress: peer.remoteAddress,
            certSubject: peer.subject,
            anonymous,
          });
          const connect = access.connect();
          if (!connect.allow) {
            decision = {
              ok: false,
              returnCode: 5,
              reason: `connect denied: ${connect.reason}${connect.statement ? ` (${connect.policy ?? ''}/${connect.statement})` : ''}`,
            };
          }
        }
        if (
          decision.ok &&
          Math.max(
            blockedAt.get(`device:${decision.deviceId}`) ?? 0,
            blockedAt.get(`serial:${decision.serial}`) ?? 0,
          ) >= started
        ) {
          decision = { ok: false, returnCode: 5, reason: 'device revoked or disabled while connecting' };
        }
        if (!decision.ok || !access) {
          if (decision.ok) decision = { ok: false, returnCode: 3, reason: 'access could not be compiled' };
          // Charged to the certificate that was presented, never to the address (Principle 9).
          if (!refusedByBan && peer.serial) deps.firewall.recordRefusal(peer.serial);
          // The refusal is durable before the CONNACK that reports it.
          await events.emit({
            type: 'mqtt.connect_refused',
            actor,
            subject: peer.cn ? `device:${peer.cn}` : undefined,
            data: {
              remoteAddress: peer.remoteAddress,
              reason: decision.reason,
              returnCode: decision.returnCode,
              ...(peer.serial ? { certSerial: peer.serial } : {}),
            },
          });
          // [MQTT-3.2.2-5]: a non-zero CONNACK, then the connection is closed.
          callback(connackError(decision.reason, decision.returnCode), false);
          return;
        }
        const meter = await deps.monitor?.attach(decision.deviceId);
        if (takenOver(decision.deviceId, decision.serial, client, peer.remoteAddress)) {
          callback(connackError('device banned: cloned identity', 5), false);
          return;
        }
        // Registered before anything is awaited, so a revocation from now on finds and drops it.
        sessions.set(client, {
          deviceId: decision.deviceId,
          serial: decision.serial,
          remoteAddress: peer.remoteAddress,
          certSubject: peer.subject,
          anonymous,
          access,
          meter,
        });
        byDevice.set(decision.deviceId, client);
        await events.emit({
          type: 'mqtt.connected',
          actor,
          subject: `device:${decision.deviceId}`,
          data: { remoteAddress: peer.remoteAddress, certSerial: decision.serial },
        });
        if (!sessions.has(client)) {
          callback(connackError('device revoked or disabled while connecting', 5), false);
          return;
        }
        callback(null, true);
      })
      .catch((err: unknown) => {
        logger.error({ err }, 'connection check failed');
        callback(connackError('server unavailable', 3), false);
      });
  };

  aedes.authorizePublish = (client, packet, callback) => {
    const session = client && sessions.get(client);
    if (!session) {
      callback(refusal('publish without an authenticated session'));
      return;
    }
    const verdict = deps.firewall.checkPublish(session.deviceId, packet.topic, packet.payload.length);
    if (!verdict.ok) {
      if (verdict.action === 'disconnect') {
        emit({
          type: 'firewall.disconnected',
          actor: 'system',
          subject: `device:${session.deviceId}`,
          data: { reason: verdict.reason, remoteAddress: session.remoteAddress },
        });
        callback(refusal(verdict.reason));
        return;
      }
      // Throttle: stop reading from this device for a while, then go on; nothing accepted is dropped.
      const { record, suppressed } = throttleEvents.admit(session.deviceId);
      if (record)
        emit({
          type: 'firewall.throttled',
          actor: 'system',
          subject: `device:${session.deviceId}`,
          data: { reason: verdict.reason, waitMs: verdict.waitMs, ...(suppressed ? { suppressed } : {}) },
        });
      const conn = client.conn as unknown as { pause?: () => void; resume?: () => void };
      conn.pause?.();
      setTimeout(() => {
        conn.resume?.();
        // The session may have been dropped (revoked, banned) while throttled: then nothing goes through.
        if (sessions.get(client) !== session) {
          callback(refusal('session ended'));
          return;
        }
        const again = session.access.publish(packet.topic);
        if (again.allow) {
          session.meter?.published(packet.topic, packet.payload.length);
          if (packet.retain) retain(session, packet, callback);
          else callback(null);
        } else denyPublish(session, packet.topic, again.reason, callback);
      }, verdict.waitMs).unref();
      return;
    }
    const decision = session.access.publish(packet.topic);
    if (decision.allow) {
      session.meter?.published(packet.topic, packet.payload.length);
      if (packet.retain) retain(session, packet, callback);
      else callback(null);
      return;
    }
    denyPublish(session, packet.topic, decision.reason, callback);
  };

  /**
   * An allowed retained PUBLISH (or Will): kept within the device's and the broker's retained quotas, in the
   * store before the PUBACK. Over a quota it is still delivered to current subscribers but not retained, with
   * an event: MQTT 3.1.1 has no way to tell the client ([MQTT-3.3.5-2] allows acknowledging what is not
   * carried out), and closing the connection would only make it resend the same message.
   */
  function retain(
    session: Session,
    packet: { topic: string; payload: Buffer | string; qos: 0 | 1 | 2; retain: boolean },
    callback: (err: Error | null) => void,
  ) {
    const verdict = deps.retained.retain(session.deviceId, {
      topic: packet.topic,
      payload: Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload),
      qos: packet.qos,
    });
    if (verdict.ok) {
      verdict.stored.then(
        () => callback(null),
        (err: unknown) => {
          logger.error({ err, topic: packet.topic }, 'cannot store a retained message');
          // The store is down: the message is delivered and kept in memory on this node, not stored. Refusing
          // it would end a live session that cannot reconnect (CONNACK 3) until the store is back.
          if (isConnectionLoss(err)) callback(null);
          else callback(refusal('retained message could not be stored'));
        },
      );
      return;
    }
    packet.retain = false;
    const { record, suppressed } = retainedEvents.admit(session.deviceId);
    if (record)
      emit({
        type: 'mqtt.retained_refused',
        actor: `device:${session.deviceId}`,
        subject: `device:${session.deviceId}`,
        data: {
          topic: packet.topic,
          bytes: packet.payload.length,
          reason: verdict.reason,
          ...(suppressed ? { suppressed } : {}),
        },
      });
    callback(null);
  }

  /** Off the hot path: only a denied publish gets here. */
  function denyPublish(session: Session, topic: string, reason: string, callback: (err: Error) => void) {
    // Policy reasons are a handful of constants; the cap keeps the Prometheus label set bounded regardless.
    const label = stats.publishDenied.has(reason) || stats.publishDenied.size < 32 ? reason : 'other';
    stats.publishDenied.set(label, (stats.publishDenied.get(label) ?? 0) + 1);
    emit({
      type: 'mqtt.publish_denied',
      actor: `device:${session.deviceId}`,
      subject: `device:${session.deviceId}`,
      data: { topic, reason },
    });
    // [MQTT-3.3.5-2]: an unauthorized PUBLISH is either acknowledged and dropped or the connection is closed;
    // we close. MQTT 3.1.1 has no negative PUBACK, so the client learns only that the connection ended.
    callback(refusal(`publish to ${topic} denied: ${reason}`));
  }

  aedes.authorizeSubscribe = (client, sub, callback) => {
    const session = sessions.get(client);
    const held = Object.keys((client as unknown as { subscriptions?: object }).subscriptions ?? {}).length;
    const tooMany = deps.firewall.checkSubscriptionCount(held + 1);
    const decision = tooMany
      ? { allow: false, reason: 'too_many_subscriptions' }
      : session?.access.subscribe(sub.topic);
    if (session && decision?.allow) {
      if (session.meter) session.meter.subscriptions = held + 1;
      callback(null, sub);
      return;
    }
    emit({
      type: 'mqtt.subscribe_denied',
      actor: session ? `device:${session.deviceId}` : `client:${client.id}`,
      subject: session ? `device:${session.deviceId}` : undefined,
      data: { topic: sub.topic, reason: decision?.reason ?? 'no_session' },
    });
    // §3.9.3: refuse this filter with return code 0x80 in the SUBACK; never grant and filter later.
    callback(null, null);
  };

  aedes.authorizeForward = (client, packet) => {
    const session = sessions.get(client);
    if (!session || !session.access.receive(packet.topic)) return null;
    session.meter?.received(packet.payload.length);
    return packet;
  };

  aedes.on('clientReady', (client) => {
    // A session dropped between CONNACK and here has no rights left; end the connection too.
    if (!sessions.has(client)) client.close();
  });

  aedes.on('clientDisconnect', (client) => {
    const session = sessions.get(client);
    if (!session) return;
    if (byDevice.get(session.deviceId) === client) {
      byDevice.delete(session.deviceId);
      // Its quota state goes with its last session (reconnect churn is bounded by the flapping detector).
      deps.firewall.forgetDevice(session.deviceId);
    }
    emit({
      type: 'mqtt.disconnected',
      actor: `device:${session.deviceId}`,
      subject: `device:${session.deviceId}`,
      data: { remoteAddress: session.remoteAddress, reason: 'disconnected' },
    });
  });

  aedes.on('clientError', (client, err) =>
    logger.debug({ clientId: client.id, err: err.message }, 'mqtt client error'),
  );
  aedes.on('connectionError', (client, err) => {
    logger.debug({ clientId: client.id, err: err.message }, 'mqtt connection error');
    // Closed before its CONNECT was handled: every refusal is an event (docs/broker.md).
    if (refusalRecorded.has(client)) return;
    const reason = connectErrorReason(err);
    if (reason) void refuseEarly(client, reason);
  });

  /**
   * A new session of a device whose session is still open takes it over ([MQTT-3.1.4-2]). Done again and
   * again, that is two agents with one identity: the device is banned for a while (stored, listed, an alert)
   * and both sessions end. Returns whether this connection is refused for it.
   */
  function takenOver(deviceId: string, serial: string, client: Client, remoteAddress: string): boolean {
    const previous = byDevice.get(deviceId);
    const previousSession = previous && previous !== client ? sessions.get(previous) : undefined;
    if (!previousSession) return false;
    const conflict = deps.firewall.recordTakeover(deviceId, remoteAddress);
    if (!conflict) return false;
    const addresses = [...new Set([previousSession.remoteAddress, ...conflict.addresses])];
    emit({
      type: 'mqtt.identity_conflict',
      actor: `device:${deviceId}`,
      subject: `device:${deviceId}`,
      data: {
        remoteAddresses: addresses,
        takeovers: conflict.takeovers,
        windowMs: deps.firewall.limits.takeoverWindowMs,
        certSerial: serial,
      },
    });
    drop(deviceId, conflict.ban.reason, 'firewall');
    return true;
  }

  function block(key: string) {
    const t = Date.now();
    blockedAt.set(key, t);
    if (blockedAt.size > 10_000) for (const [id, at] of blockedAt) if (t - at > 60_000) blockedAt.delete(id);
  }

  function drop(deviceId: string, reason: string, trigger: string, serial?: string) {
    block(serial === undefined ? `device:${deviceId}` : `serial:${serial}`);
    const client = byDevice.get(deviceId);
    const session = client && sessions.get(client);
    if (!client || !session || (serial !== undefined && session.serial !== serial)) return;
    byDevice.delete(deviceId);
    sessions.delete(client); // no further publish, subscribe or delivery, even before the socket closes
    client.close();
    emit({
      type: 'mqtt.session_dropped',
      actor: 'system',
      subject: `device:${deviceId}`,
      data: { reason, trigger },
    });
  }

  async function recompileOne(deviceId: string): Promise<void> {
    const client = byDevice.get(deviceId);
    const session = client && sessions.get(client);
    if (!client || !session) return;
    try {
      const access = await deps.accessFor({
        deviceId,
        remoteAddress: session.remoteAddress,
        certSubject: session.certSubject,
        anonymous: session.anonymous,
      });
      if (sessions.get(client) !== session) return;
      session.access = access;
      const connect = access.connect();
      if (!connect.allow) drop(deviceId, `connect no longer allowed: ${connect.reason}`, 'policy change');
    } catch (err) {
      logger.error({ err, deviceId }, 'cannot recompile access; dropping the session');
      drop(deviceId, 'access could not be recompiled', 'policy change');
    }
  }

  // Policy, zone and quarantine changes: recompile every live session (coalesced), so they apply within a second.
  let recompiling = false;
  let again = false;
  async function recompileAll(): Promise<void> {
    if (recompiling) {
      again = true;
      return;
    }
    recompiling = true;
    try {
      do {
        again = false;
        for (const deviceId of [...byDevice.keys()]) await recompileOne(deviceId);
      } while (again);
    } finally {
      recompiling = false;
    }
  }
  const stopAccessChanges = deps.onAccessChange((deviceId) => {
    // One device changed (quarantine, release): recompile its session now, without waiting for the others.
    if (deviceId !== undefined) {
      recompileOne(deviceId).catch((err: unknown) =>
        logger.error({ err, deviceId }, 'recompiling access failed'),
      );
      return;
    }
    recompileAll().catch((err: unknown) => logger.error({ err }, 'recompiling access failed'));
  });

  // Revocations and disables reach the broker as events, from this process or (via the audit-log tail) any other.
  const unsubscribe = events.subscribe((entry: AuditEntry) => {
    // A new ban also ends sessions that are already open.
    if (entry.type === 'firewall.ban_created') {
      const { kind, value } = entry.data as { kind: string; value: string };
      if (kind === 'device') drop(value, 'device banned', `audit:${entry.seq}`);
      else if (kind === 'certificate') {
        for (const [id, client] of [...byDevice])
          if (sessions.get(client)?.serial === value)
            drop(id, 'certificate banned', `audit:${entry.seq}`, value);
      } else {
        for (const [id, client] of [...byDevice]) {
          const s = sessions.get(client);
          if (s && addressIn([value], s.remoteAddress)) drop(id, 'address banned', `audit:${entry.seq}`);
        }
      }
      return;
    }
    const deviceId = entry.subject?.startsWith('device:') ? entry.subject.slice(7) : undefined;
    if (!deviceId) return;
    if (entry.type === 'device.revoked') drop(deviceId, 'device revoked', `audit:${entry.seq}`);
    else if (entry.type === 'device.disabled') drop(deviceId, 'device disabled', `audit:${entry.seq}`);
    else if (entry.type === 'certificate.revoked') {
      refreshCrls();
      drop(deviceId, 'certificate revoked', `audit:${entry.seq}`, String(entry.data.serial));
    }
  });

  const tlsOptions: tls.TlsOptions = {
    ...serverTlsProfile,
    key: deps.tls.key,
    cert: deps.tls.cert,
    ca: deps.tls.ca,
    requestCert: true,
    // No certificate from our CA, no MQTT at all: checked first thing in the secureConnection handler below.
    // With `true`, Node closes such a connection without a word to anyone, and the refusal is never recorded.
    rejectUnauthorized: false,
  };
  // Revoked certificates fail the handshake itself (RFC 5280 §6.3): the CRLs are part of the secure context.
  const crlSource = deps.revocationLists;
  if (crlSource) tlsOptions.crl = await crlSource();
  const server = tls.createServer(
    { ...tlsOptions, handshakeTimeout: limits.handshakeTimeoutMs },
    (socket: TLSSocket) => {
      refuseRenegotiation(socket);
      if (!socket.authorized) {
        // Chain, validity or CRL (CERT_REVOKED) check failed, or no certificate was sent (RFC 8446 §4.4.2.4).
        const remoteAddress = socket.remoteAddress ?? 'unknown';
        const peer = socket.getPeerCertificate();
        const reason = String(socket.authorizationError ?? 'no client certificate');
        socket.destroy();
        // Only a revoked certificate has a verified signature, so only its CN names a device of ours.
        const cn =
          reason === 'CERT_REVOKED' && typeof peer?.subject?.CN === 'string' ? peer.subject.CN : undefined;
        handshakeFailed(remoteAddress, reason, peer?.serialNumber, cn);
        return;
      }
      const standing = deps.certificateStanding;
      if (!standing) {
        accept(socket);
        return;
      }
      // Nothing reads the socket until aedes has it: what the client sends meanwhile waits in the kernel.
      const { serialNumber: serial, subject } = socket.getPeerCertificate();
      standing(serial)
        .then((verdict) => {
          if (socket.destroyed) return;
          if (verdict.ok) {
            accept(socket);
            return;
          }
          const remoteAddress = socket.remoteAddress ?? 'unknown';
          socket.destroy();
          handshakeFailed(
            remoteAddress,
            verdict.reason,
            serial,
            typeof subject?.CN === 'string' ? subject.CN : undefined,
          );
        })
        .catch((err: unknown) => {
          logger.error({ err }, 'certificate check failed');
          if (socket.destroyed) return;
          uncheckedSockets.add(socket);
          accept(socket);
        });
    },
  );
  // Revocations from this process or any other (audit-log tail) swap the CRLs in; the hourly refresh keeps
  // them within their validity (they are reissued at half of it). Coalesced: a bulk revocation refreshes once
  // or twice, not once per certificate.
  let crlRefresh: Promise<void> | undefined;
  let crlAgain = false;
  function refreshCrls(): void {
    if (!crlSource) return;
    if (crlRefresh) {
      crlAgain = true;
      return;
    }
    crlRefresh = (async () => {
      do {
        crlAgain = false;
        server.setSecureContext({ ...tlsOptions, crl: await crlSource() });
      } while (crlAgain);
    })()
      .catch((err: unknown) => logger.error({ err }, 'cannot refresh the certificate revocation lists'))
      .finally(() => (crlRefresh = undefined));
  }
  const crlTimer = setInterval(refreshCrls, 3_600_000).unref();
  let devServer: net.Server | undefined;
  const handshakeFailures = createEventRateLimit({ max: 20, windowMs: 60_000 });
  const refusedConnections = createEventRateLimit({ max: 20, windowMs: 60_000 });
  // Before any TLS work: banned, too fast, or too many at once from this address.
  server.on('connection', (socket: Socket) => {
    const remoteAddress = socket.remoteAddress ?? 'unknown';
    const refusal = deps.firewall.admitConnection(remoteAddress);
    if (refusal) {
      socket.destroy();
      const { record, suppressed } = refusedConnections.admit(remoteAddress);
      if (record)
        emit({
          type: 'firewall.connection_refused',
          actor: `anonymous@${remoteAddress}`,
          data: { remoteAddress, reason: refusal, ...(suppressed ? { suppressed } : {}) },
        });
      return;
    }
    socket.once('close', () => deps.firewall.connectionClosed(remoteAddress));
    // MQTT packets are small and latency-bound: without this, Nagle's algorithm and the peer's delayed ACK
    // hold a PUBACK or a forwarded PUBLISH for ~40 ms (the 44 ms single-message latency of stock aedes).
    socket.setNoDelay(true);
  });
  server.on('tlsClientError', (err: Error & { code?: string }, socket) => {
    const remoteAddress = socket.remoteAddress ?? 'unknown';
    // Node reports a handshake timeout but leaves the socket open, holding a slot and a descriptor.
    socket.destroy();
    if (err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') stats.handshakeTimeouts += 1;
    handshakeFailed(remoteAddress, err.code ?? err.message);
  });

  /**
   * Recorded at most 20 a minute per address (with the count left out), never a ban: whoever shares this
   * address may still present a valid certificate.
   */
  function handshakeFailed(
    remoteAddress: string,
    reason: string,
    certSerial?: string,
    deviceId?: string,
  ): void {
    const { record, suppressed } = handshakeFailures.admit(remoteAddress);
    if (!record) return;
    emit({
      type: 'tls.handshake_failed',
      actor: `anonymous@${remoteAddress}`,
      // A certificate our CA signed names its device: the refusal shows in that device's history.
      subject: deviceId === undefined ? undefined : `device:${deviceId}`,
      data: {
        listener: 'mqtt',
        remoteAddress,
        reason,
        ...(certSerial ? { certSerial } : {}),
        ...(suppressed ? { suppressed } : {}),
      },
    });
  }

  return {
    async listen(): Promise<number> {
      server.listen(deps.port, deps.host);
      await once(server, 'listening');
      return (server.address() as AddressInfo).port;
    },
    /** Starts the development listener if configured; returns its port. */
    async listenDev(): Promise<number | undefined> {
      if (deps.devPort === undefined) return undefined;
      const dev = net.createServer((socket) => {
        const address = socket.remoteAddress ?? 'unknown';
        if (deps.firewall.admitConnection(address)) {
          socket.destroy();
          return;
        }
        socket.once('close', () => deps.firewall.connectionClosed(address));
        socket.setNoDelay(true);
        insecureSockets.add(socket);
        accept(socket);
      });
      devServer = dev;
      dev.listen(deps.devPort, deps.host);
      await once(dev, 'listening');
      const port = (dev.address() as AddressInfo).port;
      logger.warn(
        { port },
        'INSECURE: plaintext MQTT listener WITHOUT AUTHENTICATION is open (development only)',
      );
      return port;
    },
    /** Authenticated sessions (Prometheus). */
    sessionCount: () => byDevice.size,
    /** Counters for Prometheus, read at scrape time. Denials are by reason (a bounded set), never by device. */
    stats: () => ({
      sessions: byDevice.size,
      handshakeTimeouts: stats.handshakeTimeouts,
      packetsTooLarge: stats.packetsTooLarge,
      publishDenied: [...stats.publishDenied],
    }),
    /** Connected device ids (for tests and the console). */
    connectedDevices: () => [...byDevice.keys()],
    /**
     * Messages devices published (after authorizePublish allowed them) on topics under `prefix`, for services
     * that consume device reports (firmware steps). The device id is the session's, never read from the topic.
     */
    onDeviceMessage(
      topicPrefix: string,
      handler: (deviceId: string, topic: string, payload: Buffer) => void,
    ): () => void {
      const listener = (packet: { topic: string; payload: Buffer | string }, client: Client | null) => {
        const session = client ? sessions.get(client) : undefined;
        if (!session || !packet.topic.startsWith(topicPrefix)) return;
        handler(session.deviceId, packet.topic, Buffer.from(packet.payload));
      };
      aedes.on('publish', listener);
      return () => aedes.removeListener('publish', listener);
    },
    /** Publishes from the server (QoS 1); deliveries still pass each subscriber's authorizeForward. */
    publish(topic: string, payload: string): Promise<void> {
      return new Promise((resolve, reject) => {
        aedes.publish(
          { cmd: 'publish', topic, payload: Buffer.from(payload), qos: 1, retain: false, dup: false },
          (err) => (err ? reject(err) : resolve()),
        );
      });
    },
    async close(): Promise<void> {
      clearInterval(crlTimer);
      unsubscribe();
      stopAccessChanges();
      for (const client of byDevice.values()) client.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      const dev = devServer;
      if (dev) await new Promise<void>((resolve) => dev.close(() => resolve()));
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
    },
  };
}

export type Broker = Awaited<ReturnType<typeof createBroker>>;
