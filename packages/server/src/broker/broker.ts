import { once } from 'node:events';
import net, { type AddressInfo, type Socket } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { Aedes, type Client } from 'aedes';
import type { Logger } from 'pino';
import type { ConnackCode } from '@bulwark/protocol';
import { createEventRateLimit, type AuditEntry, type EventBus } from '../events/index.ts';
import type { Firewall } from '../firewall/index.ts';
import type { DeviceMeter } from '../monitor/index.ts';
import { addressIn, type DeviceAccess } from '../policy/index.ts';
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
}

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
  const aedes = await Aedes.createBroker({
    connectTimeout: 10_000,
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
  const throttleEvents = createEventRateLimit({ max: 5, windowMs: 60_000 });
  // When each device was last revoked or disabled: a connection whose check started before that is refused,
  // closing the window between the store read in checkConnection and the session being registered.
  const blockedAt = new Map<string, number>();

  const emit = (event: Parameters<typeof events.emit>[0]) => {
    events.emit(event).catch((err: unknown) => logger.error({ err }, 'cannot record broker event'));
  };

  aedes.preConnect = (client, packet, callback) => {
    // aedes replaces an empty client id with a generated one before authenticate; remember what was sent.
    requestedIds.set(client, packet.clientId ?? '');
    callback(null, true);
  };

  aedes.authenticate = (client, _username, _password, callback) => {
    const anonymous = insecureSockets.has(client.conn);
    const peer = anonymous
      ? {
          cn: undefined,
          serial: undefined,
          remoteAddress: (client.conn as unknown as Socket).remoteAddress ?? 'unknown',
          subject: {},
        }
      : peerIdentity(client);
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
        } else callback(refusal(`publish to ${packet.topic} denied: ${again.reason}`));
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
    emit({
      type: 'mqtt.publish_denied',
      actor: `device:${session.deviceId}`,
      subject: `device:${session.deviceId}`,
      data: { topic: packet.topic, reason: decision.reason },
    });
    // [MQTT-3.3.5-2]: an unauthorized PUBLISH is either acknowledged and dropped or the connection is closed; we close.
    callback(refusal(`publish to ${packet.topic} denied: ${decision.reason}`));
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
          callback(refusal('retained message could not be stored'));
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
  aedes.on('connectionError', (client, err) =>
    logger.debug({ clientId: client.id, err: err.message }, 'mqtt connection error'),
  );

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
    else if (entry.type === 'certificate.revoked')
      drop(deviceId, 'certificate revoked', `audit:${entry.seq}`, String(entry.data.serial));
  });

  const server = tls.createServer(
    {
      key: deps.tls.key,
      cert: deps.tls.cert,
      ca: deps.tls.ca,
      requestCert: true,
      rejectUnauthorized: true, // no certificate from our CA, no MQTT at all
      minVersion: 'TLSv1.2',
    },
    (socket) => aedes.handle(socket),
  );
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
    // Counted and recorded, never a ban: whoever shares this address may still present a valid certificate.
    const remoteAddress = socket.remoteAddress ?? 'unknown';
    const { record, suppressed } = handshakeFailures.admit(remoteAddress);
    if (!record) return;
    emit({
      type: 'tls.handshake_failed',
      actor: `anonymous@${remoteAddress}`,
      data: {
        listener: 'mqtt',
        remoteAddress,
        reason: err.code ?? err.message,
        ...(suppressed ? { suppressed } : {}),
      },
    });
  });

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
        aedes.handle(socket);
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
