import net from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { generate } from 'mqtt-packet';
import { encodePuback, PacketReader, packetTypes, readPublish } from './mqtt-codec.ts';

export interface Identity {
  id: string;
  key: string;
  cert: string;
}

/** What a scenario does with a client's traffic; swapped between phases. */
export interface ClientEvents {
  publish(client: BenchClient, qos: number, messageId: number, topic: Buffer, payload: Buffer): void;
  puback(client: BenchClient, messageId: number): void;
}

export const ignoreTraffic: ClientEvents = { publish() {}, puback() {} };

export interface ConnectOptions {
  host: string;
  port: number;
  /** Name checked against the broker's certificate. */
  servername: string;
  /** The CA chain and the device's key and certificate, loaded beforehand (see {@link deviceContext}). */
  secureContext: tls.SecureContext;
  identity: Identity;
  /** The device's position in the fixture; carried in every payload it sends. */
  index: number;
  timeoutMs: number;
  /** A TLS session from an earlier connection to offer for resumption (RFC 8446 §2.2), as a reconnecting device does. */
  session?: Buffer | undefined;
  /** Called with each session (TLS 1.3 ticket) the broker issues, to resume with next time. */
  onSession?: ((session: Buffer) => void) | undefined;
  /** MQTT client id when it is not the identity's id (an app instance: `NAME/<instance>`). */
  clientId?: string | undefined;
  /** Clean session (default true); false keeps the session and its subscriptions while offline. */
  clean?: boolean | undefined;
  /**
   * Traffic handlers from the first packet on: a broker sends what it queued for a persistent session right
   * after the CONNACK, often in the same read, before the caller could set {@link BenchClient.events}.
   */
  events?: ClientEvents | undefined;
}

/**
 * Each device connects from its own loopback address (Linux routes all of 127.0.0.0/8 to lo), as devices
 * in a fleet come from their own addresses: per-address limits (Bulwark's firewall) then apply per device,
 * and each device has its own ephemeral port range.
 */
export function sourceAddress(index: number): string {
  return `127.${1 + Math.floor(index / 62_500)}.${(Math.floor(index / 250) % 250) + 1}.${(index % 250) + 1}`;
}

/** A device's TLS credentials, parsed once: a device has its key loaded long before it connects. */
export function deviceContext(ca: string, identity: Identity): tls.SecureContext {
  return tls.createSecureContext({ ca, key: identity.key, cert: identity.cert, minVersion: 'TLSv1.2' });
}

/**
 * A device: MQTT 3.1.1 over TLS with its own client certificate, client id = device id, clean session,
 * no keep-alive (idle connections stay silent). Nagle is off so a small write is never held back on the
 * client side: latency measured here is the broker's. Each packet is written on its own (one TLS record),
 * as a device sends it, so the broker gets no batching a fleet would not give it.
 */
export class BenchClient {
  events: ClientEvents = ignoreTraffic;
  /** `devices/<id>/telemetry`, the device's own topic (Bulwark allows nothing else). */
  readonly topic: Buffer;
  readonly id: string;
  readonly index: number;
  /** Set when the connection ended without us asking (wall clock, ms since the epoch, sub-millisecond). */
  droppedAt: number | undefined;
  private closing = false;
  private nextId = 0;
  private readonly reader: PacketReader;
  private subackWaiter: ((granted: number) => void) | undefined;
  private unsubackWaiter: (() => void) | undefined;
  private connackWaiter: ((returnCode: number) => void) | undefined;
  /** The CONNACK said the broker kept a session for this client id (clean session 0). */
  sessionPresent = false;

  private constructor(
    private readonly socket: TLSSocket,
    identity: Identity,
    index: number,
  ) {
    this.id = identity.id;
    this.index = index;
    this.topic = Buffer.from(`devices/${identity.id}/telemetry`);
    this.reader = new PacketReader((firstByte, body) => this.onPacket(firstByte, body));
  }

  static connect(options: ConnectOptions): Promise<BenchClient> {
    return new Promise((resolve, reject) => {
      const tcp = net.connect({
        host: options.host,
        port: options.port,
        localAddress: sourceAddress(options.index),
        noDelay: true,
      });
      const socket = tls.connect({
        socket: tcp,
        servername: options.servername,
        secureContext: options.secureContext,
        ...(options.session ? { session: options.session } : {}),
      });
      const { onSession } = options;
      if (onSession) socket.on('session', (session: Buffer) => onSession(session));
      const client = new BenchClient(socket, options.identity, options.index);
      if (options.events) client.events = options.events;
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        tcp.destroy();
        reject(err);
      };
      const timer = setTimeout(
        () => fail(new Error(`${options.identity.id}: no CONNACK within ${options.timeoutMs} ms`)),
        options.timeoutMs,
      );
      socket.once('secureConnect', () => {
        socket.write(
          generate({
            cmd: 'connect',
            protocolId: 'MQTT',
            protocolVersion: 4,
            clean: options.clean ?? true,
            clientId: options.clientId ?? options.identity.id,
            keepalive: 0,
          }),
        );
      });
      socket.on('error', (err: Error) => fail(err));
      tcp.on('error', (err: Error) => fail(err)); // refused or reset before TLS took the socket over
      socket.on('close', () => {
        if (!settled) fail(new Error(`${options.identity.id}: connection closed before CONNACK`));
        else if (!client.closing) client.droppedAt ??= performance.timeOrigin + performance.now();
      });
      client.connackWaiter = (returnCode) => {
        client.connackWaiter = undefined;
        if (returnCode !== 0) {
          fail(new Error(`${options.identity.id}: CONNACK return code ${returnCode}`));
          return;
        }
        settled = true;
        clearTimeout(timer);
        resolve(client);
      };
      socket.on('data', (chunk: Buffer) => client.onData(chunk));
    });
  }

  get connected(): boolean {
    return this.droppedAt === undefined && !this.closing;
  }

  /** Negotiated TLS version and cipher, for the report. */
  /** The TLS handshake resumed an earlier session (no certificate exchange). */
  get resumed(): boolean {
    return this.socket.isSessionReused();
  }

  tlsInfo(): string {
    return `${this.socket.getProtocol() ?? '?'} ${this.socket.getCipher()?.name ?? '?'}`;
  }

  messageId(): number {
    this.nextId = (this.nextId % 65_535) + 1;
    return this.nextId;
  }

  async subscribe(filter: string, qos: 0 | 1, timeoutMs: number): Promise<number> {
    const granted = await this.trySubscribe(filter, qos, timeoutMs);
    if (granted === 0x80) throw new Error(`${this.id}: subscription to ${filter} refused`);
    return granted;
  }

  /** SUBSCRIBE to one filter: the SUBACK's return code (0x80 when the broker refused it). One at a time. */
  trySubscribe(filter: string, qos: 0 | 1, timeoutMs: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.subackWaiter = undefined;
        reject(new Error(`${this.id}: no SUBACK within ${timeoutMs} ms`));
      }, timeoutMs);
      this.subackWaiter = (granted) => {
        clearTimeout(timer);
        this.subackWaiter = undefined;
        resolve(granted);
      };
      this.socket.write(
        generate({ cmd: 'subscribe', messageId: this.messageId(), subscriptions: [{ topic: filter, qos }] }),
      );
    });
  }

  /** UNSUBSCRIBE from one filter; resolves at the UNSUBACK. One at a time. */
  unsubscribe(filter: string, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.unsubackWaiter = undefined;
        reject(new Error(`${this.id}: no UNSUBACK within ${timeoutMs} ms`));
      }, timeoutMs);
      this.unsubackWaiter = () => {
        clearTimeout(timer);
        this.unsubackWaiter = undefined;
        resolve();
      };
      this.socket.write(
        generate({ cmd: 'unsubscribe', messageId: this.messageId(), unsubscriptions: [filter] }),
      );
    });
  }

  /** Closes the connection without DISCONNECT, as a device that loses power or coverage does. */
  drop(): Promise<void> {
    this.closing = true;
    if (this.socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.destroy();
    });
  }

  /** Writes packets; false when the socket buffer is full (wait for {@link drained}). */
  write(packet: Buffer): boolean {
    return this.socket.write(packet);
  }

  /** Coalesces the writes of one turn into one TLS record. */
  cork(): void {
    this.socket.cork();
  }

  uncork(): void {
    this.socket.uncork();
  }

  get writableNeedDrain(): boolean {
    return this.socket.writableNeedDrain;
  }

  drained(timeoutMs: number): Promise<boolean> {
    if (!this.socket.writableNeedDrain) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.socket.off('drain', onDrain);
        this.socket.off('close', onClose);
        resolve(ok);
      };
      const onDrain = () => done(true);
      const onClose = () => done(false);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.socket.once('drain', onDrain);
      this.socket.once('close', onClose);
    });
  }

  /** DISCONNECT, then end; resolves when the socket is closed (or destroyed after `timeoutMs`). */
  disconnect(timeoutMs: number): Promise<void> {
    this.closing = true;
    if (this.socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.socket.destroy();
        resolve();
      }, timeoutMs);
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.socket.end(generate({ cmd: 'disconnect' }));
    });
  }

  // No corking here: like a real device, every packet (PUBACK, next PUBLISH) is its own write.
  private onData(chunk: Buffer): void {
    this.reader.push(chunk);
  }

  private onPacket(firstByte: number, body: Buffer): void {
    const type = firstByte >> 4;
    if (type === packetTypes.publish) {
      const p = readPublish(firstByte, body);
      if (p.qos === 1) this.socket.write(encodePuback(p.messageId)); // [MQTT-4.3.2-2]
      this.events.publish(this, p.qos, p.messageId, p.topic, p.payload);
    } else if (type === packetTypes.puback) {
      this.events.puback(this, body.readUInt16BE(0));
    } else if (type === packetTypes.suback) {
      this.subackWaiter?.(body[2] as number);
    } else if (type === packetTypes.unsuback) {
      this.unsubackWaiter?.();
    } else if (type === packetTypes.connack) {
      this.sessionPresent = ((body[0] as number) & 1) === 1;
      this.connackWaiter?.(body[1] as number);
    }
  }
}
