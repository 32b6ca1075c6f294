/**
 * For the core's tests only: the core on a plain TCP server on port 0 with simple hooks (everything allowed
 * except topics and filters under `forbidden/`; deliveries under `withheld/` withheld and under `upper/`
 * transformed), a retained store in memory, and a raw client speaking bytes from mqtt-packet.
 */
import { createServer, connect as tcpConnect, type AddressInfo, type Server } from 'node:net';
import type { Duplex } from 'node:stream';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { createBrokerCore, type BrokerCoreOptions } from './broker-core.ts';
import type { ClusterBus } from './cluster-bus.ts';
import { filterMatches } from './topic-trie.ts';
import type {
  Connection,
  CoreHooks,
  CoreLimits,
  CoreRetained,
  DisconnectInfo,
  SessionJournal,
} from './types.ts';

export interface TestSession {
  clientId: string;
  conn: Connection<TestSession>;
}

export const testLimits: CoreLimits = {
  maxPacketBytes: 64 * 1024,
  maxConnectBytes: 4096,
  connectTimeoutMs: 2000,
  receiveMaximum: 10,
  maxQueuedMessages: 100,
  maxSessionExpirySec: 3600,
  topicAliasMaximum: 5,
  topicAliasesOut: true,
};

export interface Harness {
  core: ReturnType<typeof createBrokerCore<TestSession>>;
  port: number;
  url: string;
  retained: Map<string, CoreRetained>;
  disconnects: { clientId: string; info: DisconnectInfo }[];
  takenOver: string[];
  errors: string[];
  /** What the rejected hook reported (connections closed before they had a session). */
  rejections: { reason: string; reasonCode: number }[];
  /** Filters the subscribe hook granted, in order (to wait for an external client's SUBSCRIBE). */
  subscribed: string[];
  /** The sessions the connect hook made, by client id (the latest). */
  sessions: Map<string, TestSession>;
  /** Resolves once the subscribe hook granted this filter. */
  waitSubscribed(filter: string, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

const forbidden = (topic: string) => topic.startsWith('forbidden/');

export async function startCore(
  options: {
    limits?: Partial<CoreLimits>;
    hooks?: Partial<CoreHooks<TestSession>>;
    now?: BrokerCoreOptions<TestSession>['now'];
    /** Persistent sessions made durable (see broker/mqtt-sessions.test.ts). */
    journal?: SessionJournal;
    /** The cluster bus (cluster-bus.test.ts: nodes on an in-process hub). */
    bus?: ClusterBus;
  } = {},
): Promise<Harness> {
  const retained = new Map<string, CoreRetained>();
  const disconnects: Harness['disconnects'] = [];
  const takenOver: string[] = [];
  const errors: string[] = [];
  const subscribed: string[] = [];
  const rejections: Harness['rejections'] = [];
  const sessions = new Map<string, TestSession>();
  const hooks: CoreHooks<TestSession> = {
    connect: (conn, packet) => {
      if (packet.clientId.startsWith('refused'))
        return Promise.resolve({ ok: false, reasonCode: 0x87, reasonString: 'not on the list' });
      if (packet.clientId.startsWith('badpass')) return Promise.resolve({ ok: false, reasonCode: 0x86 });
      const session = { clientId: conn.clientId ?? '', conn };
      sessions.set(session.clientId, session);
      return Promise.resolve({ ok: true, session });
    },
    publish: (_session, packet, done) => {
      if (forbidden(packet.topic)) done(new Error('topic not allowed'));
      else if (packet.topic.startsWith('slow/')) setTimeout(() => done(null), 20);
      else done(null);
    },
    subscribe: (_session, { filter }) => {
      if (forbidden(filter)) return 'filter not allowed';
      subscribed.push(filter);
      return undefined;
    },
    deliver: (_session, packet) => {
      if (packet.topic.startsWith('withheld/')) return null;
      if (packet.topic.startsWith('upper/'))
        return { ...packet, payload: Buffer.from(packet.payload.toString().toUpperCase()) };
      return packet;
    },
    retained: {
      lookup: (filters) =>
        [...retained.values()].filter((m) => filters.some((f) => filterMatches(f, m.topic))),
      store: (_session, message) => {
        if (message.payload.length === 0) retained.delete(message.topic);
        else retained.set(message.topic, message);
      },
    },
    disconnected: (session, info) => disconnects.push({ clientId: session.clientId, info }),
    sessionTakenOver: (session) => takenOver.push(session.clientId),
    error: (_conn, err) => errors.push(err.message),
    rejected: (_conn, info) => rejections.push(info),
    ...options.hooks,
  };
  const core = createBrokerCore<TestSession>({
    hooks,
    limits: { ...testLimits, ...options.limits },
    now: options.now,
    journal: options.journal,
    bus: options.bus,
    tickMs: 50,
  });
  const server: Server = createServer((socket) =>
    core.accept(socket, { remoteAddress: socket.remoteAddress }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    core,
    port,
    url: `mqtt://127.0.0.1:${port}`,
    retained,
    disconnects,
    takenOver,
    errors,
    subscribed,
    rejections,
    sessions,
    async waitSubscribed(filter, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (!subscribed.includes(filter)) {
        if (Date.now() > deadline) throw new Error(`no SUBSCRIBE to ${filter}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    },
    async close() {
      await core.shutdown();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A client that writes raw bytes (or packets encoded by mqtt-packet) and reads what the broker answers. */
export class RawClient {
  readonly packets: Packet[] = [];
  closed = false;
  private waiters: (() => void)[] = [];
  private readonly parser;

  private constructor(
    private readonly socket: Duplex,
    readonly version: 4 | 5,
  ) {
    this.parser = mqttPacket.parser({ protocolVersion: version });
    this.parser.on('packet', (packet: Packet) => {
      this.packets.push(packet);
      this.wake();
    });
    this.parser.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => this.parser.parse(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  /** A TCP connection to the port, or the client end of an in-memory stream (see fuzz-harness.ts). */
  static async open(target: number | Duplex, version: 4 | 5 = 4): Promise<RawClient> {
    if (typeof target !== 'number') return new RawClient(target, version);
    const socket = tcpConnect(target, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawClient(socket, version);
  }

  /** Opens a connection and sends CONNECT; resolves with the CONNACK. */
  static async connected(
    target: number | Duplex,
    clientId: string,
    options: {
      version?: 4 | 5;
      clean?: boolean;
      keepalive?: number;
      properties?: object;
      will?: object;
    } = {},
  ): Promise<RawClient> {
    const version = options.version ?? 4;
    const client = await RawClient.open(target, version);
    client.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: version,
      clientId,
      clean: options.clean ?? true,
      keepalive: options.keepalive ?? 60,
      ...(options.properties ? { properties: options.properties } : {}),
      ...(options.will ? { will: options.will } : {}),
    } as Packet);
    const connack = await client.next('connack');
    if (
      (connack as { returnCode?: number; reasonCode?: number }).returnCode ??
      (connack as { reasonCode?: number }).reasonCode
    )
      throw new Error(`refused: ${JSON.stringify(connack)}`);
    return client;
  }

  send(packet: Packet | Buffer): void {
    this.socket.write(
      Buffer.isBuffer(packet) ? packet : mqttPacket.generate(packet, { protocolVersion: this.version }),
    );
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  /** The next packet of that kind not yet taken (removed from `packets`); rejects on close or timeout. */
  async next<C extends Packet['cmd']>(cmd: C, timeoutMs = 3000): Promise<Extract<Packet, { cmd: C }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.packets.findIndex((p) => p.cmd === cmd);
      if (i >= 0) return this.packets.splice(i, 1)[0] as Extract<Packet, { cmd: C }>;
      if (this.closed) throw new Error(`closed while waiting for ${cmd}`);
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`no ${cmd} within ${timeoutMs} ms (got ${this.packets.map((p) => p.cmd).join(',')})`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Resolves when the broker has closed the connection (rejects after the timeout). */
  async whenClosed(timeoutMs = 3000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('connection still open');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** A round trip: PINGREQ answered, so everything sent before was handled. */
  async ping(): Promise<void> {
    this.send({ cmd: 'pingreq' });
    await this.next('pingresp');
  }

  destroy(): void {
    this.socket.destroy();
  }

  end(): void {
    this.socket.end();
  }
}
