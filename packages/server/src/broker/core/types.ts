/**
 * The broker core's contract with its embedder: options, hooks and the connection and message shapes. The
 * core is generic over `S`, the embedder's per-connection session (Bulwark's BrokerSession); it knows
 * nothing of devices, policies or events.
 */
import type { Duplex } from 'node:stream';
import type { IConnectPacket } from 'mqtt-packet';
import type { Deque } from './deque.ts';

export type QoS = 0 | 1 | 2;

/** MQTT 5 message properties passed through from publisher to subscribers (§3.3.2.3). */
export interface MessageProperties {
  payloadFormatIndicator?: boolean;
  messageExpiryInterval?: number;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Buffer;
  /** The user properties by name (a repeated name: its values in order, as an array). */
  userProperties?: Record<string, string | string[]>;
  /**
   * The same user properties in the order they were sent, which is the order they are forwarded in
   * [MQTT-3.3.2-17, 3.3.2-18]. `userProperties` decides: the list is used only while it holds exactly what
   * `userProperties` holds, so a copy whose `userProperties` was changed is sent in its own order.
   */
  userPropertyList?: readonly (readonly [name: string, value: string])[];
}

/**
 * A PUBLISH as the publish hook sees it (Bulwark's PublishPacket shape): a stage may change `payload` and
 * `retain`; what it leaves there is what subscribers get and what is retained.
 */
export interface CorePublish {
  readonly topic: string;
  payload: Buffer | string;
  readonly qos: QoS;
  retain: boolean;
  readonly properties?: MessageProperties | undefined;
}

/** A message on its way to a subscriber, as the deliver hook sees it (return it, a copy, or null). */
export interface CoreDelivery {
  readonly topic: string;
  readonly payload: Buffer | string;
  readonly qos: QoS;
  readonly retain: boolean;
  readonly properties?: MessageProperties | undefined;
}

/** A retained message as the embedder's retained store keeps it. */
export interface CoreRetained {
  topic: string;
  payload: Buffer;
  qos: QoS;
  properties?: MessageProperties | undefined;
}

export type ConnectVerdict<S> =
  /**
   * `sessionKey`: the key of the session in the core (takeover, session state, no local), when the embedder
   * keeps kinds of clients apart (Bulwark: an app instance `app:<client id>`, never a device's id);
   * default the client id.
   */
  | { ok: true; session: S; sessionKey?: string | undefined }
  /** `reasonCode` is an MQTT 5 CONNACK reason code; 3.1.1 clients get its return code (v3ConnackOf). */
  | { ok: false; reasonCode: number; reasonString?: string | undefined };

export type AuthVerdict = { done: true; data?: Buffer } | { continue: Buffer } | { fail: number };

export interface AuthStep {
  method: string;
  data: Buffer | undefined;
  /** `connect`: the CONNECT's data; `continue`: the client's next AUTH; `reauth`: AUTH 0x19 after CONNACK. */
  phase: 'connect' | 'continue' | 'reauth';
}

export interface DisconnectInfo {
  /** Why it ended, for logs: `client disconnected`, `keep alive timeout`, `taken over`, `protocol error: …`. */
  reason: string;
  /** The MQTT 5 reason code (sent in the DISCONNECT to a v5 client, or received from it). */
  reasonCode: number;
  /** The will that is (or, after its delay, will be) published; null when none. */
  will: CorePublish | null;
}

export interface CoreHooks<S> {
  /** A CONNECT that passed the protocol checks (and enhanced authentication, when it asked for it). */
  connect(conn: Connection<S>, packet: IConnectPacket): Promise<ConnectVerdict<S>>;
  /** Enhanced authentication (MQTT 5 §4.12); without it, a CONNECT with an authentication method is refused. */
  auth?(conn: Connection<S>, step: AuthStep): Promise<AuthVerdict>;
  /** Every PUBLISH (and will) before it is routed: `done(null)` accepts, an error refuses (as PublishPipeline.run). */
  publish(session: S, packet: CorePublish, done: (err: Error | null) => void): void;
  /**
   * Each filter of a SUBSCRIBE (`filter`: the inner filter of a shared one; `topic`: as subscribed, `$share/…`
   * included): undefined grants, a reason refuses.
   */
  subscribe(session: S, request: { filter: string; held: number; topic: string }): string | undefined;
  /** A filter the core refused itself (malformed, invalid): so that every refusal can be recorded. */
  filterRefused?(session: S, refused: { topic: string; reason: string }): void;
  /** Each message to each subscriber, when written: the message, a copy to send instead, or null to withhold. */
  deliver(session: S, packet: CoreDelivery): CoreDelivery | null;
  retained: {
    /** The retained messages matching any of the filters (asked on SUBSCRIBE, per retain handling). */
    lookup(filters: readonly string[]): Iterable<CoreRetained>;
    /** A retained PUBLISH the publish hook accepted (absent: the embedder keeps them in its publish hook). */
    store?(session: S | undefined, message: CoreRetained): void;
  };
  disconnected(session: S, info: DisconnectInfo): void;
  /**
   * A connection the core closed before it had a session: no CONNECT in time, a malformed or oversized
   * CONNECT, a first packet other than CONNECT, an unsupported version, a CONNECT failing the protocol checks.
   * So that every refusal can be recorded; refusals by the connect and auth hooks are not repeated here, nor
   * connections the peer just closed.
   */
  rejected?(conn: Connection<S>, info: { reason: string; reasonCode: number }): void;
  /** Another connection with the same client id took this session over; `disconnected` follows. */
  sessionTakenOver?(session: S): void;
  /** For logging: socket errors, malformed packets, refusals by the protocol checks. */
  error?(conn: Connection<S>, err: Error): void;
  /** The namespace of share group names (e.g. the principal): groups of different scopes never meet. */
  shareScope?(session: S): string;
  /**
   * The Response Information a v5 client that sets Request Response Information to 1 gets in its CONNACK
   * (§3.1.2.11.7, §3.2.2.3.15): the basis of its response topics. Undefined (or no hook): none is sent.
   */
  responseInformation?(session: S): string | undefined;
}

export interface CoreLimits {
  /** Largest remaining length of any packet but CONNECT; checked at the fixed header. */
  maxPacketBytes: number;
  /** Largest remaining length of a CONNECT. */
  maxConnectBytes: number;
  /** A connection whose CONNECT has not arrived (and been answered) within this is closed. */
  connectTimeoutMs: number;
  /** The server's Receive Maximum, sent in CONNACK (v5) and enforced inbound. */
  receiveMaximum: number;
  /** Messages one client may have waiting for it (offline, or behind its in-flight window). */
  maxQueuedMessages: number;
  maxSessionExpirySec: number;
  /** Topic aliases a client may use inbound (0: none). */
  topicAliasMaximum: number;
  /** Whether the server uses topic aliases towards a v5 client whose CONNECT allows them (§3.3.2.3.4). */
  topicAliasesOut: boolean;
  /** Longest keep alive granted: larger (or 0) is answered with Server Keep Alive (v5). */
  keepAliveMaxSec?: number | undefined;
}

/** A client connection as the embedder sees it. */
export interface Connection<S = unknown> {
  readonly id: number;
  readonly meta: unknown;
  readonly stream: Duplex;
  /** 4 (MQTT 3.1.1) or 5, once the CONNECT arrived. */
  readonly protocolVersion: 4 | 5 | undefined;
  readonly clientId: string | undefined;
  readonly session: S | undefined;
  readonly closed: boolean;
  /** Stops handling this client's packets (throttling) until resume. */
  pause(): void;
  resume(): void;
}

/** A subscription a session holds (kept across connections for a persistent session). */
export interface Subscription {
  /** As subscribed, `$share/{group}/…` included: the key in the session's subscriptions. */
  readonly topic: string;
  /** The filter matched against topics. */
  readonly filter: string;
  readonly share?: string | undefined;
  readonly qos: QoS;
  readonly noLocal: boolean;
  readonly retainAsPublished: boolean;
  readonly retainHandling: 0 | 1 | 2;
  readonly id?: number | undefined;
}

/** A message as the core routes and queues it. */
export interface CoreMessage extends CoreDelivery {
  readonly payload: Buffer;
  /** Epoch ms after which it is dropped (message expiry interval), or undefined. */
  readonly expiresAt?: number | undefined;
  /** The publishing client id (no local), or undefined for the server's own messages. */
  readonly origin?: string | undefined;
}

/** A message waiting for one session, with what its subscriptions made of it. */
export interface Pending {
  readonly message: CoreMessage;
  readonly qos: QoS;
  readonly retain: boolean;
  readonly subscriptionIds?: number[] | undefined;
}

export interface Inflight extends Pending {
  readonly packetId: number;
  /** `publish`: PUBLISH sent, PUBACK/PUBREC awaited; `pubrel`: PUBREL sent, PUBCOMP awaited. */
  phase: 'publish' | 'pubrel';
}

/**
 * A session's state by client id (§4.1): what outlives a connection when its session expiry allows. The
 * memory store keeps these objects; a store that persists them writes the data fields.
 */
export interface SessionState {
  readonly clientId: string;
  subscriptions: Map<string, Subscription> | undefined;
  /** Messages waiting to be sent (offline, or behind the client's Receive Maximum). */
  queue: Deque<Pending> | undefined;
  queuedBytes: number;
  /** QoS 1 and 2 messages sent and not yet acknowledged, by packet id. */
  inflight: Map<number, Inflight> | undefined;
  /** QoS 2 packet ids received (PUBREC sent), PUBREL awaited. */
  received: Set<number> | undefined;
  nextPacketId: number;
  /** Session expiry interval in seconds (Infinity: never). */
  expirySec: number;
  /** Messages dropped for this session (queue full, too large, expired). */
  drops: number;
}

/**
 * What a durable session store is told about persistent sessions (those with a session expiry above 0):
 * each change is recorded at once, in order, and written in batches (group commit). The core acknowledges
 * a QoS 1 or 2 PUBLISH whose routing recorded a change only once `durable()` resolves, so a message
 * acknowledged to its publisher survives a crash of the server (kill -9) in every persistent session it
 * was routed to.
 */
export interface SessionJournal {
  /** A session's lasting facts: at connect (connected) and when its connection ends; subscriptions changed. */
  session(state: SessionState, connected: boolean): void;
  /** The session ended (expired, cleaned, or 0 at disconnect): it and everything kept for it go. */
  ended(clientId: string): void;
  /** A QoS 1 or 2 message is kept for the session (queued, or sent and awaiting its acknowledgement). */
  kept(clientId: string, pending: Pending): void;
  /** A kept QoS 2 message was sent with this packet id, or reached PUBREL (`pubrel`). */
  inflight(clientId: string, message: CoreMessage, at: { packetId: number; phase: Inflight['phase'] }): void;
  /** A kept message is done with: acknowledged, dropped, expired, withheld. */
  done(clientId: string, message: CoreMessage): void;
  /** How many changes were recorded since start: routing that changes it must wait for `durable()`. */
  readonly recorded: number;
  /** Resolves once every change recorded before the call is durable (retried while the store is down). */
  durable(): Promise<void>;
}

/** A persistent session as a journal gives it back at start (`core.restore`). */
export interface PersistedSession {
  clientId: string;
  /** Infinity: never expires. */
  expirySec: number;
  subscriptions: Subscription[];
  /** Inbound QoS 2 packet ids whose PUBREL has not come: a PUBLISH sent again with one is not routed again. */
  received: number[];
  /** When its last connection ended; undefined when it was connected as the server stopped. */
  disconnectedAt: number | undefined;
  /** What was kept for it, in order: QoS 2 messages sent before the stop carry their packet id and phase. */
  pending: (Pending & { packetId?: number | undefined; phase?: Inflight['phase'] | undefined })[];
}

/** Where sessions are kept between connections: the memory store now, SQL stores later. */
export interface SessionStore {
  get(clientId: string): SessionState | undefined;
  set(state: SessionState): void;
  delete(clientId: string): void;
  values(): Iterable<SessionState>;
  readonly size: number;
}
