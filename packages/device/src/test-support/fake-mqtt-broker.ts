import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import { createServer, type TLSSocket } from 'node:tls';
import { issueLocalhostCert, type TestCa } from './test-pki.ts';

export interface BrokerConnect {
  readonly clientId: string;
  readonly protocolLevel: number;
  readonly cleanSession: boolean;
  /** Serial (upper-case hex) and CN of the verified TLS client certificate. */
  readonly certSerial: string;
  readonly certCommonName: string;
}

export interface BrokerPublish {
  readonly clientId: string;
  readonly topic: string;
  readonly qos: number;
  readonly payload: string;
}

export interface BrokerSubscribe {
  readonly clientId: string;
  readonly filters: readonly { readonly filter: string; readonly qos: number }[];
}

interface BrokerEvents {
  connect: [BrokerConnect];
  publish: [BrokerPublish];
  subscribe: [BrokerSubscribe];
  disconnect: [{ clientId: string }];
}

/**
 * A minimal MQTT 3.1.1 broker over mutual TLS for agent tests: it answers CONNECT, PUBLISH (QoS 0/1),
 * SUBSCRIBE (granting every filter, unless listed in `refuseFilters`), PINGREQ and DISCONNECT and records
 * what it sees; `send` delivers a PUBLISH to a connected client, whatever it subscribed to. It can refuse connections with a CONNACK code,
 * drop every connection, or stop listening, to exercise reconnection.
 */
export interface FakeBroker {
  readonly port: number;
  /** `mqtts://127.0.0.1:PORT` */
  readonly url: string;
  readonly connects: BrokerConnect[];
  readonly publishes: BrokerPublish[];
  readonly subscribes: BrokerSubscribe[];
  /** Filters answered with SUBACK 0x80 (failure). */
  readonly refuseFilters: Set<string>;
  /** Sends a PUBLISH (QoS 0 or 1) to the client connected with `clientId`; false when none is. */
  send(clientId: string, topic: string, payload: string | Buffer, qos?: 0 | 1): boolean;
  /** CONNACK return code to refuse new connections with (5 = not authorized); 0 accepts. */
  refuseWith: number;
  /** Resolves with the next event matching `filter`. */
  next<E extends keyof BrokerEvents>(
    event: E,
    filter?: (value: BrokerEvents[E][0]) => boolean,
    timeoutMs?: number,
  ): Promise<BrokerEvents[E][0]>;
  /** Cuts every open connection (as a broker crash would). */
  dropAll(): void;
  /** Stops listening and cuts connections: new attempts are refused at TCP level. */
  pause(): Promise<void>;
  /** Listens again on the same port. */
  resume(): Promise<void>;
  close(): Promise<void>;
}

export async function startFakeBroker(ca: TestCa): Promise<FakeBroker> {
  const tls = await issueLocalhostCert(ca);
  const events = new EventEmitter<BrokerEvents>();
  const sockets = new Set<TLSSocket>();
  const connects: BrokerConnect[] = [];
  const publishes: BrokerPublish[] = [];
  const subscribes: BrokerSubscribe[] = [];
  const refuseFilters = new Set<string>();
  const byClientId = new Map<string, TLSSocket>();
  let nextPacketId = 1;
  let refuseWith = 0;

  const server = createServer(
    { key: tls.keyPem, cert: tls.certPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true },
    (socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => socket.destroy());
      const peer = socket.getPeerCertificate();
      let clientId = '';
      let buffer = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        buffer = Buffer.concat([buffer, chunk]);
        for (;;) {
          const packet = readPacket(buffer);
          if (packet === undefined) break;
          buffer = buffer.subarray(packet.length);
          const { type, flags, body } = packet;
          if (type === 1) {
            // CONNECT (MQTT 3.1.1 §3.1): protocol name, level, flags, keepalive, client id
            const nameLength = body.readUInt16BE(0);
            const level = body.readUInt8(2 + nameLength);
            const connectFlags = body.readUInt8(3 + nameLength);
            const idOffset = 6 + nameLength;
            clientId = body.toString('utf8', idOffset + 2, idOffset + 2 + body.readUInt16BE(idOffset));
            const record: BrokerConnect = {
              clientId,
              protocolLevel: level,
              cleanSession: (connectFlags & 0x02) !== 0,
              certSerial: peer.serialNumber.toUpperCase(),
              certCommonName: String(peer.subject.CN),
            };
            connects.push(record);
            if (refuseWith === 0) byClientId.set(clientId, socket);
            socket.write(Buffer.from([0x20, 0x02, 0x00, refuseWith]));
            // [MQTT-3.2.2-5]: after a refusing CONNACK the server closes the connection.
            if (refuseWith !== 0) socket.end();
            else events.emit('connect', record);
          } else if (type === 3) {
            const qos = (flags >> 1) & 0x03;
            const topicLength = body.readUInt16BE(0);
            const topic = body.toString('utf8', 2, 2 + topicLength);
            let offset = 2 + topicLength;
            if (qos > 0) {
              socket.write(Buffer.from([0x40, 0x02, body.readUInt8(offset), body.readUInt8(offset + 1)]));
              offset += 2;
            }
            const record: BrokerPublish = { clientId, topic, qos, payload: body.toString('utf8', offset) };
            publishes.push(record);
            events.emit('publish', record);
          } else if (type === 8) {
            // SUBSCRIBE (MQTT 3.1.1 §3.8): packet id, then (filter, requested QoS) pairs; SUBACK §3.9.
            const filters: { filter: string; qos: number }[] = [];
            for (let offset = 2; offset < body.length;) {
              const length = body.readUInt16BE(offset);
              const filter = body.toString('utf8', offset + 2, offset + 2 + length);
              filters.push({ filter, qos: body.readUInt8(offset + 2 + length) });
              offset += 3 + length;
            }
            const granted = filters.map(({ filter, qos }) =>
              refuseFilters.has(filter) ? 0x80 : Math.min(qos, 1),
            );
            socket.write(
              Buffer.from([0x90, 2 + granted.length, body.readUInt8(0), body.readUInt8(1), ...granted]),
            );
            const record: BrokerSubscribe = { clientId, filters };
            subscribes.push(record);
            events.emit('subscribe', record);
          } else if (type === 12) {
            socket.write(Buffer.from([0xd0, 0x00]));
          } else if (type === 14) {
            events.emit('disconnect', { clientId });
            socket.end();
          }
        }
      });
    },
  );

  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  await listen(0);
  const { port } = server.address() as AddressInfo;

  const dropAll = () => {
    for (const socket of sockets) socket.destroy();
  };

  return {
    port,
    url: `mqtts://127.0.0.1:${port}`,
    connects,
    publishes,
    subscribes,
    refuseFilters,
    send(clientId, topic, payload, qos = 1) {
      const socket = byClientId.get(clientId);
      if (socket === undefined || socket.destroyed) return false;
      const topicBytes = Buffer.from(topic, 'utf8');
      const parts: Buffer[] = [Buffer.from([topicBytes.length >> 8, topicBytes.length & 0xff]), topicBytes];
      if (qos === 1) {
        const id = nextPacketId;
        nextPacketId = (nextPacketId % 0xffff) + 1;
        parts.push(Buffer.from([id >> 8, id & 0xff]));
      }
      parts.push(typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload);
      const body = Buffer.concat(parts);
      socket.write(Buffer.concat([Buffer.from([0x30 | (qos << 1), ...remainingLength(body.length)]), body]));
      return true;
    },
    get refuseWith() {
      return refuseWith;
    },
    set refuseWith(code: number) {
      refuseWith = code;
    },
    next(event, filter, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          events.off(event, listener as never);
          reject(new Error(`fake broker: no ${event} within ${timeoutMs} ms`));
        }, timeoutMs);
        const listener = (value: BrokerEvents[typeof event][0]) => {
          if (filter !== undefined && !filter(value)) return;
          clearTimeout(timer);
          events.off(event, listener as never);
          resolve(value);
        };
        events.on(event, listener as never);
      });
    },
    dropAll,
    async pause() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      dropAll();
      await closed;
    },
    resume: () => listen(port),
    async close() {
      if (!server.listening) return;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      dropAll();
      await closed;
    },
  };
}

/** Splits one MQTT control packet off the front of `buffer`: fixed header, then remaining length (MQTT 3.1.1 §2.2.3). */
function readPacket(
  buffer: Buffer,
): { type: number; flags: number; body: Buffer; length: number } | undefined {
  if (buffer.length < 2) return undefined;
  let remaining = 0;
  let multiplier = 1;
  let offset = 1;
  for (;;) {
    if (offset >= buffer.length || offset > 4) return undefined;
    const byte = buffer.readUInt8(offset++);
    remaining += (byte & 0x7f) * multiplier;
    multiplier *= 128;
    if ((byte & 0x80) === 0) break;
  }
  if (buffer.length < offset + remaining) return undefined;
  const first = buffer.readUInt8(0);
  return {
    type: first >> 4,
    flags: first & 0x0f,
    body: buffer.subarray(offset, offset + remaining),
    length: offset + remaining,
  };
}

/** The remaining length of a fixed header (MQTT 3.1.1 §2.2.3): 7 bits a byte, high bit = more. */
function remainingLength(length: number): number[] {
  const bytes: number[] = [];
  let rest = length;
  do {
    let byte = rest % 128;
    rest = Math.floor(rest / 128);
    if (rest > 0) byte |= 0x80;
    bytes.push(byte);
  } while (rest > 0);
  return bytes;
}
