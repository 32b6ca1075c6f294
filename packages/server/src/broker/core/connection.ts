/**
 * One client connection's transport: framing of the bytes it sends, packets handled strictly one after
 * another (a pending publish hook holds the next packet, and the socket stops being read), and writes
 * corked and flushed once per event-loop turn.
 */
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { IConnectPacket } from 'mqtt-packet';
import { encode, type Packet, type ProtocolVersion, type TopicAliasUse } from './codec.ts';
import { Framer, type Frame, type FrameLimits } from './framing.ts';
import type { WheelEntry } from './timer-wheel.ts';
import type { Connection, CoreMessage, SessionState } from './types.ts';

export type ConnectionPhase = 'new' | 'connecting' | 'authenticating' | 'connected' | 'closed';

/** The will a connection carries, published when it ends abnormally [MQTT-3.1.2-8]. */
export interface PendingWill {
  message: CoreMessage;
  delaySec: number;
}

/** What a connection calls back into the core with. */
export interface ConnectionOwner {
  readonly frameLimits: FrameLimits;
  onFrame(conn: CoreConnection, frame: Frame & { kind: 'packet' }): void;
  onBadFrame(conn: CoreConnection, frame: Exclude<Frame, { kind: 'packet' }>): void;
  /** A protocol violation: DISCONNECT with the code on MQTT 5 once connected, then close. */
  onViolation(conn: CoreConnection, violation: { code: number; reason: string }): void;
  onTimer(conn: CoreConnection): void;
  onClosed(conn: CoreConnection): void;
  onDrain(conn: CoreConnection): void;
  onError(conn: CoreConnection, err: Error): void;
  scheduleFlush(conn: CoreConnection): void;
  /** The connection is ended but its last bytes are being written: destroy it if that takes too long. */
  linger(conn: CoreConnection): void;
}

let nextId = 1;

export class CoreConnection<S = unknown> implements Connection<S> {
  readonly id = nextId++;
  phase: ConnectionPhase = 'new';
  protocolVersion: 4 | 5 | undefined;
  clientId: string | undefined;
  session: S | undefined;
  state: SessionState | undefined;
  will: PendingWill | undefined;
  /** The CONNECT's authentication method (enhanced authentication), if any. */
  authMethod: string | undefined;
  /** The CONNECT waiting for its enhanced authentication to finish. */
  pendingConnect: IConnectPacket | undefined;
  /** A re-authentication (AUTH 0x19) is under way. */
  reauthenticating = false;
  /** The client's Receive Maximum (v5; 65535 otherwise) and Maximum Packet Size. */
  clientReceiveMaximum = 65535;
  clientMaxPacketSize = Infinity;
  /** v5 Request Problem Information: false keeps reason strings out of acknowledgements [MQTT-3.1.2-29]. */
  problemInformation = true;
  /** Topic aliases this client set (v5, inbound): alias → topic. */
  aliases: Map<number, string> | undefined;
  /** The client's Topic Alias Maximum (v5; 0: the server sends no aliases to it) [MQTT-3.3.2-11]. */
  clientTopicAliasMaximum = 0;
  /** Topic aliases the server set towards this client (outbound): topic → its alias, the topic left out. */
  aliasesOut: Map<string, TopicAliasUse> | undefined;
  /** QoS 1 PUBLISHes being handled (PUBACK not yet sent): counted against the server's Receive Maximum. */
  pendingQos1 = 0;
  /** Whether the session expiry at CONNECT was 0 (a DISCONNECT may then not raise it, §3.14.2.2.2). */
  connectExpiryZero = true;
  /** How the connection ended, for the disconnected hook. */
  endReason: { reason: string; reasonCode: number } | undefined;
  /** The peer closed it (or the stream failed) before the core ended it. */
  endedByPeer = false;
  /** The connect or auth hook refused the CONNECT (the embedder knows why). */
  refusedByHook = false;
  /** One wheel entry: the CONNECT deadline, then the keep alive. */
  readonly timer: WheelEntry;
  keepAliveMs = 0;

  private readonly framer: Framer;
  private busy = false;
  /** The peer ended or closed the stream: once what it sent is handled, the connection is closed. */
  private peerEnded = false;
  private paused = false;
  corked = false;

  constructor(
    readonly stream: Duplex,
    readonly meta: unknown,
    private readonly owner: ConnectionOwner,
  ) {
    this.framer = new Framer(owner.frameLimits);
    this.timer = { deadline: Infinity, fire: () => owner.onTimer(this) };
    if (stream instanceof Socket) stream.setNoDelay(true);
    stream.on('data', (chunk: Buffer) => {
      this.framer.push(chunk);
      this.pump();
    });
    stream.on('error', (err: Error) => owner.onError(this, err));
    stream.on('drain', () => owner.onDrain(this));
    // The peer is gone: what it sent before (a PUBLISH, then DISCONNECT) is still handled, then it is closed.
    stream.once('close', () => this.peerGone());
    stream.once('end', () => this.peerGone());
  }

  get closed(): boolean {
    return this.phase === 'closed';
  }

  get version(): ProtocolVersion {
    return this.protocolVersion ?? 4;
  }

  /**
   * Acknowledgements waiting for the session journal reached the bound (durability.ts): packets wait in the
   * kernel until they are sent, so a client that ignores its window (3.1.1 has none) cannot pile them up.
   */
  private backlogged = false;

  backlog(on: boolean): void {
    if (this.backlogged === on) return;
    this.backlogged = on;
    if (on) this.stream.pause();
    else this.pump();
  }

  /** Handles buffered packets one at a time until one is asynchronous (the owner calls `hold`). */
  pump(): void {
    while (!this.busy && !this.paused && !this.backlogged && this.phase !== 'closed') {
      const frame = this.framer.next();
      if (frame === undefined) break;
      if (frame.kind !== 'packet') {
        this.owner.onBadFrame(this, frame);
        return;
      }
      try {
        this.owner.onFrame(this, frame);
      } catch (err) {
        // A bug (ours or a hook's) ends this connection with 0x83, never the process.
        this.owner.onError(this, err instanceof Error ? err : new Error(String(err)));
        this.violate(0x83, 'implementation specific error');
      }
    }
    if (this.phase === 'closed') return;
    if (this.peerEnded) {
      if (!this.busy) this.closedByStream();
      return;
    }
    // Stop reading while a packet is being handled: what arrives meanwhile waits in the kernel.
    if (this.busy || this.paused || this.backlogged) this.stream.pause();
    else this.stream.resume();
  }

  private peerGone(): void {
    if (this.peerEnded) return;
    this.peerEnded = true;
    this.pump();
  }

  /** The packet being handled goes on asynchronously: the next one waits for `release`. */
  hold(): void {
    this.busy = true;
  }

  release(): void {
    if (!this.busy) return;
    this.busy = false;
    this.pump();
  }

  pause(): void {
    this.paused = true;
    this.stream.pause();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.pump();
  }

  /** Ends the connection for a protocol violation (see ConnectionOwner.onViolation). */
  violate(code: number, reason: string): void {
    this.owner.onViolation(this, { code, reason });
  }

  send(packet: Packet): void {
    this.write(encode(packet, this.version));
  }

  write(bytes: Buffer): void {
    if (this.phase === 'closed' || this.stream.destroyed) return;
    if (!this.corked) {
      this.corked = true;
      this.stream.cork();
      this.owner.scheduleFlush(this);
    }
    this.stream.write(bytes);
  }

  flush(): void {
    if (!this.corked) return;
    this.corked = false;
    this.stream.uncork();
  }

  /** Bytes written to the stream and not yet sent. */
  get writableLength(): number {
    return this.stream.writableLength;
  }

  /** Whether the stream buffers more than its high-water mark (further messages wait in the session queue). */
  get congested(): boolean {
    return this.stream.writableNeedDrain;
  }

  /**
   * Ends the connection: an optional last packet (CONNACK or DISCONNECT), flushed, then the stream is ended
   * and destroyed once written. The owner's onClosed runs once, here or when the stream closes.
   */
  end(last: Packet | undefined, why: { reason: string; reasonCode: number }): void {
    if (this.phase === 'closed') return;
    this.endReason ??= why;
    if (last) this.send(last);
    this.flush();
    this.markClosed();
    const stream = this.stream;
    if (stream.destroyed) return;
    stream.end(() => stream.destroy());
    // A peer that reads nothing would keep the socket open: destroyed after a grace period regardless.
    this.owner.linger(this);
  }

  private closedByStream(): void {
    if (this.phase === 'closed') return;
    if (!this.endReason) this.endedByPeer = true;
    this.endReason ??= { reason: 'connection lost', reasonCode: 0x80 };
    this.markClosed();
    if (!this.stream.destroyed) this.stream.destroy();
  }

  private markClosed(): void {
    this.phase = 'closed';
    this.owner.onClosed(this);
  }
}
