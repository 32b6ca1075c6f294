import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { Aedes, type Client } from 'aedes';
import type { Logger } from 'pino';
import type { ConnackCode } from '@bulwark/protocol';
import { createEventRateLimit, type AuditEntry, type EventBus } from '../events/index.ts';
import type { DeviceAccess, DevicePrincipal } from '../policy/index.ts';

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
  host?: string | undefined;
  logger: Logger;
  events: Pick<EventBus, 'emit' | 'subscribe'>;
  checkConnection(identity: {
    clientId: string;
    certSerial: string | undefined;
    certCn: string | undefined;
  }): Promise<ConnectDecision>;
  compileAccess(principal: DevicePrincipal): DeviceAccess;
}

interface Session {
  deviceId: string;
  serial: string;
  remoteAddress: string;
  access: DeviceAccess;
}

/** aedes reads `returnCode` (2-5) off the error for the CONNACK it sends. */
function connackError(reason: string, returnCode: number): Error & { returnCode: never } {
  return Object.assign(new Error(reason), { returnCode: returnCode as never });
}

function peerIdentity(client: Client): {
  cn: string | undefined;
  serial: string | undefined;
  remoteAddress: string;
} {
  const socket = client.conn as unknown as TLSSocket;
  const remoteAddress = socket.remoteAddress ?? 'unknown';
  const peer = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate() : undefined;
  const cn = peer?.subject?.CN;
  // A certificate with several CNs names no single device.
  return {
    cn: typeof cn === 'string' ? cn : undefined,
    serial: peer?.serialNumber || undefined,
    remoteAddress,
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
  const sessions = new WeakMap<Client, Session>();
  const byDevice = new Map<string, Client>();
  const requestedIds = new WeakMap<Client, string>();
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
    const peer = peerIdentity(client);
    const clientId = requestedIds.get(client) ?? client.id;
    const started = Date.now();
    deps
      .checkConnection({ clientId, certSerial: peer.serial, certCn: peer.cn })
      .then(async (checked) => {
        let decision = checked;
        const actor = peer.cn ? `device:${peer.cn}` : `anonymous@${peer.remoteAddress}`;
        if (
          decision.ok &&
          Math.max(
            blockedAt.get(`device:${decision.deviceId}`) ?? 0,
            blockedAt.get(`serial:${decision.serial}`) ?? 0,
          ) >= started
        ) {
          decision = { ok: false, returnCode: 5, reason: 'device revoked or disabled while connecting' };
        }
        if (!decision.ok) {
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
        // Registered before anything is awaited, so a revocation from now on finds and drops it.
        sessions.set(client, {
          deviceId: decision.deviceId,
          serial: decision.serial,
          remoteAddress: peer.remoteAddress,
          access: deps.compileAccess({ deviceId: decision.deviceId, group: decision.group }),
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
      callback(new Error('publish without an authenticated session'));
      return;
    }
    const decision = session.access.publish(packet.topic);
    if (decision.allow) {
      callback(null);
      return;
    }
    emit({
      type: 'mqtt.publish_denied',
      actor: `device:${session.deviceId}`,
      subject: `device:${session.deviceId}`,
      data: { topic: packet.topic, reason: decision.reason },
    });
    // [MQTT-3.3.5-2]: an unauthorized PUBLISH is either acknowledged and dropped or the connection is closed; we close.
    callback(new Error(`publish to ${packet.topic} denied: ${decision.reason}`));
  };

  aedes.authorizeSubscribe = (client, sub, callback) => {
    const session = sessions.get(client);
    const decision = session?.access.subscribe(sub.topic);
    if (session && decision?.allow) {
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
    return session && session.access.receive(packet.topic) ? packet : null;
  };

  aedes.on('clientReady', (client) => {
    // A session dropped between CONNACK and here has no rights left; end the connection too.
    if (!sessions.has(client)) client.close();
  });

  aedes.on('clientDisconnect', (client) => {
    const session = sessions.get(client);
    if (!session) return;
    if (byDevice.get(session.deviceId) === client) byDevice.delete(session.deviceId);
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

  // Revocations and disables reach the broker as events, from this process or (via the audit-log tail) any other.
  const unsubscribe = events.subscribe((entry: AuditEntry) => {
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
  const handshakeFailures = createEventRateLimit({ max: 20, windowMs: 60_000 });
  server.on('tlsClientError', (err: Error & { code?: string }, socket) => {
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
    /** Connected device ids (for tests and the console). */
    connectedDevices: () => [...byDevice.keys()],
    async close(): Promise<void> {
      unsubscribe();
      for (const client of byDevice.values()) client.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
    },
  };
}

export type Broker = Awaited<ReturnType<typeof createBroker>>;
