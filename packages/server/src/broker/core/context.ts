/** What the parts of the core share: built once by createBrokerCore and passed to each handler. */
import type { ClusterBus } from './cluster-bus.ts';
import type { EncodedPublish } from './codec.ts';
import type { CoreConnection } from './connection.ts';
import type { TimerWheel, WheelEntry } from './timer-wheel.ts';
import type { TopicTrie, TrieEntry } from './topic-trie.ts';
import type {
  CoreHooks,
  CoreLimits,
  CoreMessage,
  SessionJournal,
  SessionState,
  SessionStore,
  Subscription,
} from './types.ts';

export interface TrieSub extends TrieEntry<SessionState> {
  readonly subscription: Subscription;
}

export interface CoreCounters {
  /** Connections accepted since start. */
  connectionsAccepted: number;
  messagesReceived: number;
  messagesSent: number;
  droppedQueueFull: number;
  droppedTooLarge: number;
  droppedExpired: number;
  packetsTooLarge: number;
  malformed: number;
  protocolErrors: number;
}

/** A will waiting for its delay (§3.1.3.2.2), with the session it is published as. */
export interface PendingWillEntry<S> extends WheelEntry {
  readonly session: S;
  readonly message: CoreMessage;
}

export interface CoreContext<S> {
  readonly hooks: CoreHooks<S>;
  readonly limits: CoreLimits;
  readonly store: SessionStore;
  /** What the other broker nodes are told (a single node: the local bus, which tells no one). */
  readonly bus: ClusterBus;
  /** Where persistent sessions are made durable (absent: they live in memory only). */
  readonly journal: SessionJournal | undefined;
  readonly trie: TopicTrie<SessionState, TrieSub>;
  readonly wheel: TimerWheel;
  /** The connected connection of each client id. */
  readonly live: Map<string, CoreConnection<S>>;
  /** Every open connection. */
  readonly conns: Set<CoreConnection<S>>;
  /** Wills waiting for their delay, and sessions waiting for their expiry, by client id. */
  readonly wills: Map<string, PendingWillEntry<S>>;
  readonly expiries: Map<string, WheelEntry>;
  readonly counters: CoreCounters;
  readonly now: () => number;
  /**
   * The message being routed and its encodings by variant: one map, cleared per fan-out, so a message is
   * encoded once per variant for all its subscribers without allocating a cache per message.
   */
  readonly fanout: { message: CoreMessage | undefined; readonly cache: Map<string, EncodedPublish> };
}
