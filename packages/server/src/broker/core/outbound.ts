/**
 * Messages to subscribers: routing through the trie, one copy per session (its matching subscriptions
 * merged), flow control (the client's Receive Maximum), the bounded session queue, and encoding once per
 * variant for all subscribers of a message.
 */
import {
  encodePublish,
  publishFrames,
  publishSize,
  withTopicAlias,
  type EncodedPublish,
  type PublishProperties,
  type TopicAliasUse,
} from './codec.ts';
import type { CoreConnection } from './connection.ts';
import type { CoreContext, TrieSub } from './context.ts';
import { Deque } from './deque.ts';
import { forget, journalOf } from './session-store.ts';
import type { ShareGroup } from './topic-trie.ts';
import type {
  CoreDelivery,
  CoreMessage,
  Inflight,
  MessageProperties,
  Pending,
  QoS,
  SessionState,
} from './types.ts';

type Outcome = 'sent' | 'queued' | 'withheld' | 'dropped';

/** Encodings of one message during one fan-out, by variant (version, QoS, retain, ids, expiry). */
type EncodingCache = Map<string, EncodedPublish>;

/** The connection a session is connected on, if it is (CONNACK sent). */
export function liveConnection<S>(ctx: CoreContext<S>, state: SessionState): CoreConnection<S> | undefined {
  const conn = ctx.live.get(state.clientId);
  return conn && conn.state === state && conn.phase === 'connected' ? conn : undefined;
}

interface Merged {
  qos: QoS;
  retainAsPublished: boolean;
  ids: number[] | undefined;
}

/**
 * Routes a message to every session with a matching subscription: one copy per session at the highest QoS
 * of its matching subscriptions, with all their subscription identifiers [MQTT-3.3.4-2, 3.3.4-3], and one
 * member of each matching share group (§4.8.2).
 */
export function routeMessage<S>(ctx: CoreContext<S>, message: CoreMessage): void {
  const merged = new Map<SessionState, Merged>();
  const groups: ShareGroup<TrieSub>[] = [];
  ctx.trie.match(
    message.topic,
    (entry) => {
      const sub = entry.subscription;
      // [MQTT-3.8.3-3]: No Local, a client's own messages are not sent back to it.
      if (sub.noLocal && message.origin === entry.owner.clientId) return;
      const seen = merged.get(entry.owner);
      if (!seen) {
        merged.set(entry.owner, {
          qos: sub.qos,
          retainAsPublished: sub.retainAsPublished,
          ids: sub.id !== undefined ? [sub.id] : undefined,
        });
        return;
      }
      if (sub.qos > seen.qos) seen.qos = sub.qos;
      if (sub.retainAsPublished) seen.retainAsPublished = true;
      if (sub.id !== undefined) (seen.ids ??= []).push(sub.id);
    },
    (group) => groups.push(group),
  );
  const { fanout } = ctx;
  fanout.message = message;
  fanout.cache.clear();
  for (const [state, m] of merged) {
    deliverTo(ctx, state, {
      message,
      qos: Math.min(m.qos, message.qos) as QoS,
      // [MQTT-3.3.1-12, 3.3.1-13]: the retain flag is kept only for Retain As Published.
      retain: m.retainAsPublished && message.retain,
      subscriptionIds: m.ids,
    });
  }
  for (const group of groups) deliverShared(ctx, group, message);
  fanout.message = undefined;
  fanout.cache.clear();
}

/**
 * One member of a share group gets the message, round robin [§4.8.2]: connected members that can take it
 * first (a member whose deliver hook withholds it is skipped); with none, a member whose session is kept
 * offline queues it.
 */
function deliverShared<S>(ctx: CoreContext<S>, group: ShareGroup<TrieSub>, message: CoreMessage): void {
  const n = group.members.length;
  const pendingOf = (entry: TrieSub): Pending => ({
    message,
    qos: Math.min(entry.subscription.qos, message.qos) as QoS,
    retain: false,
    subscriptionIds: entry.subscription.id !== undefined ? [entry.subscription.id] : undefined,
  });
  for (let k = 0; k < n; k++) {
    const i = (group.next + k) % n;
    const entry = group.members[i];
    if (!entry) continue;
    const conn = liveConnection(ctx, entry.owner);
    if (!conn || conn.congested) continue;
    const outcome = deliverTo(ctx, entry.owner, pendingOf(entry));
    if (outcome === 'withheld') continue;
    group.next = (i + 1) % n;
    return;
  }
  for (let k = 0; k < n; k++) {
    const i = (group.next + k) % n;
    const entry = group.members[i];
    if (!entry || message.qos === 0 || liveConnection(ctx, entry.owner)) continue;
    deliverTo(ctx, entry.owner, pendingOf(entry));
    group.next = (i + 1) % n;
    return;
  }
}

/**
 * A message for one session: sent now when its connection can take it, else queued (bounded). A QoS 1 or 2
 * message for a persistent session is journaled as kept first, and done with at once when it was not (the
 * journal's batch cancels the pair).
 */
export function deliverTo<S>(ctx: CoreContext<S>, state: SessionState, pending: Pending): Outcome {
  const journal = pending.qos > 0 ? journalOf(ctx, state) : undefined;
  if (!journal) return place(ctx, state, pending);
  journal.kept(state.clientId, pending);
  const outcome = place(ctx, state, pending);
  if (outcome === 'dropped' || outcome === 'withheld') journal.done(state.clientId, pending.message);
  return outcome;
}

function place<S>(ctx: CoreContext<S>, state: SessionState, pending: Pending): Outcome {
  const conn = liveConnection(ctx, state);
  if (!conn) {
    // QoS 0 messages are not kept for an offline session (optional session state, §4.1).
    if (pending.qos === 0) return 'dropped';
    return enqueue(ctx, state, pending);
  }
  // Behind what already waits (in order), when the socket is congested, or beyond the client's window.
  const waiting = state.queue !== undefined && state.queue.length > 0;
  if (waiting || conn.congested || (pending.qos > 0 && inflightFull(conn, state)))
    return enqueue(ctx, state, pending);
  return sendNow(ctx, conn, pending);
}

const inflightFull = (conn: CoreConnection<unknown>, state: SessionState): boolean =>
  (state.inflight?.size ?? 0) >= conn.clientReceiveMaximum;

/**
 * Queues a message for a session, within `maxQueuedMessages`: when full, a QoS 0 message is dropped, and a
 * QoS 1 or 2 message takes the place of the oldest QoS 0 one (or is dropped when there is none). Every drop
 * is counted, per session too.
 */
function enqueue<S>(ctx: CoreContext<S>, state: SessionState, pending: Pending): Outcome {
  const queue = (state.queue ??= new Deque());
  if (queue.length >= ctx.limits.maxQueuedMessages) {
    // An expired message gives way first [MQTT-3.3.2-5]: it would never be sent anyway.
    const now = ctx.now();
    const expired = queue.removeFirst((p) => p.message.expiresAt !== undefined && p.message.expiresAt <= now);
    const evicted = expired ?? (pending.qos > 0 ? queue.removeFirst((p) => p.qos === 0) : undefined);
    if (expired) ctx.counters.droppedExpired += 1;
    else ctx.counters.droppedQueueFull += 1;
    state.drops += 1;
    if (!evicted) return 'dropped';
    state.queuedBytes -= evicted.message.payload.length;
    forget(ctx, state, evicted);
  }
  queue.push(pending);
  state.queuedBytes += pending.message.payload.length;
  return 'queued';
}

/** Sends what waits in the session's queue while the connection and the client's window allow. */
export function drain<S>(ctx: CoreContext<S>, state: SessionState): void {
  const conn = liveConnection(ctx, state);
  const queue = state.queue;
  if (!conn || !queue) return;
  while (queue.length > 0 && !conn.congested) {
    const head = queue.peek();
    if (!head) break;
    // [MQTT-3.3.4-9]: never more unacknowledged QoS 1 and 2 PUBLISHes than the client's Receive Maximum.
    if (head.qos > 0 && inflightFull(conn, state)) break;
    queue.shift();
    state.queuedBytes -= head.message.payload.length;
    const outcome = sendNow(ctx, conn, head);
    if (outcome === 'dropped' || outcome === 'withheld') forget(ctx, state, head);
  }
}

/**
 * Writes one message to a connection: the deliver hook first (null withholds it), then the encoding (shared
 * by every subscriber of the same variant), a packet id for QoS 1 and 2 (kept in flight until acknowledged).
 * An in-flight message (with its packet id) is a resend: same id, DUP set.
 */
function sendNow<S>(ctx: CoreContext<S>, conn: CoreConnection<S>, pending: Pending | Inflight): Outcome {
  const state = conn.state as SessionState;
  const now = ctx.now();
  const { message } = pending;
  // [MQTT-3.3.2-5]: an expired message is not sent.
  if (message.expiresAt !== undefined && message.expiresAt <= now) {
    ctx.counters.droppedExpired += 1;
    state.drops += 1;
    return 'dropped';
  }
  const out = askDeliver(ctx, conn, message);
  if (out === null) return 'withheld';
  const cache = out === message && ctx.fanout.message === message ? ctx.fanout.cache : undefined;
  let encoded: EncodedPublish;
  try {
    encoded = encodeFor(conn, { pending, out, now, cache });
  } catch (err) {
    // A copy the codec cannot write (a deliver hook's bad property) is withheld like a hook that throws,
    // never a throw into the publisher's handler (fuzzer-found).
    ctx.hooks.error?.(conn, err instanceof Error ? err : new Error(String(err)));
    return 'withheld';
  }
  // [MQTT-3.1.2-24, 3.1.2-25]: a packet larger than the client's Maximum Packet Size is discarded as if sent.
  if (publishSize(encoded) > conn.clientMaxPacketSize) {
    ctx.counters.droppedTooLarge += 1;
    state.drops += 1;
    return 'dropped';
  }
  const resend = 'packetId' in pending;
  let packetId = 0;
  if (pending.qos > 0) {
    packetId = resend ? pending.packetId : allocatePacketId(state);
    (state.inflight ??= new Map()).set(
      packetId,
      resend ? pending : { ...pending, packetId, phase: 'publish' },
    );
    // A QoS 2 message keeps its packet id across a restart (exactly once); QoS 1 gets a new one.
    if (pending.qos === 2 && !resend)
      journalOf(ctx, state)?.inflight(state.clientId, message, { packetId, phase: 'publish' });
  }
  // [MQTT-3.3.1-1]: DUP on a resend, [MQTT-3.3.1-2] never on QoS 0.
  for (const frame of publishFrames(encoded, packetId, resend)) conn.write(frame);
  ctx.counters.messagesSent += 1;
  return 'sent';
}

/** The deliver hook's answer; a hook that throws withholds the message from this subscriber only. */
function askDeliver<S>(
  ctx: CoreContext<S>,
  conn: CoreConnection<S>,
  message: CoreMessage,
): CoreDelivery | null {
  const session = conn.session;
  if (session === undefined) return null;
  try {
    return ctx.hooks.deliver(session, message);
  } catch (err) {
    ctx.hooks.error?.(conn, err instanceof Error ? err : new Error(String(err)));
    return null;
  }
}

/** A packet id not in use by this session's in-flight messages [MQTT-2.2.1-4]. */
function allocatePacketId(state: SessionState): number {
  for (;;) {
    const id = state.nextPacketId;
    state.nextPacketId = id >= 65535 ? 1 : id + 1;
    if (!state.inflight?.has(id)) return id;
  }
}

interface EncodeRequest {
  pending: Pending;
  out: CoreDelivery;
  now: number;
  cache: EncodingCache | undefined;
}

/**
 * This subscriber's encoding: the one shared by every subscriber of its variant (encoded on the first), and
 * with its topic alias when it has one (publishFrames then writes its own few header bytes).
 */
function encodeFor(conn: CoreConnection<unknown>, request: EncodeRequest): EncodedPublish {
  const { pending, out, now, cache } = request;
  const version = conn.version;
  const expiresAt = pending.message.expiresAt;
  // [MQTT-3.3.2-6]: the expiry interval sent is what remains of it.
  const remaining = expiresAt === undefined ? undefined : Math.max(1, Math.ceil((expiresAt - now) / 1000));
  const ids = pending.subscriptionIds;
  const key = cache
    ? `${version}|${pending.qos}|${pending.retain ? 1 : 0}|${ids ? ids.join(',') : ''}|${remaining ?? ''}`
    : undefined;
  let encoded = key === undefined ? undefined : cache?.get(key);
  if (!encoded) {
    const properties = version === 5 ? outboundProperties(out.properties, remaining, ids) : undefined;
    encoded = encodePublish(
      { topic: out.topic, payload: out.payload, qos: pending.qos, retain: pending.retain, properties },
      version,
    );
    if (key !== undefined) cache?.set(key, encoded);
  }
  const alias = conn.clientTopicAliasMaximum > 0 ? topicAliasFor(conn, out.topic, encoded) : undefined;
  return alias ? withTopicAlias(encoded, alias) : encoded;
}

/**
 * The topic alias of this subscriber's PUBLISH (§3.3.2.3.4), for an MQTT 5 client whose CONNECT set a Topic
 * Alias Maximum (and `limits.topicAliasesOut`): the alias of a topic already sent on this connection, the
 * topic left out; or a new alias from 1 up to the client's maximum [MQTT-3.3.2-8, 3.3.2-11], sent with the
 * topic, which sets it; beyond, the topic in full (no replacement: a client's maximum is usually its hot set).
 * Aliases live as long as the connection (§3.3.2.3.4, [MQTT-3.3.2-7]): a reconnect starts afresh. An alias is
 * set only by a PUBLISH that fits the client's Maximum Packet Size (one dropped would leave the client
 * without it), and only for topics longer than its 3 bytes.
 */
function topicAliasFor(
  conn: CoreConnection<unknown>,
  topic: string,
  encoded: EncodedPublish,
): TopicAliasUse | undefined {
  const aliases = (conn.aliasesOut ??= new Map<string, TopicAliasUse>());
  const known = aliases.get(topic);
  if (known) return known;
  if (aliases.size >= conn.clientTopicAliasMaximum) return undefined;
  if (encoded.bytes.readUInt16BE(encoded.topicAt) <= 3) return undefined;
  const alias = aliases.size + 1;
  const use = { alias, withTopic: true };
  if (publishSize(withTopicAlias(encoded, use)) > conn.clientMaxPacketSize) return undefined;
  aliases.set(topic, { alias, withTopic: false });
  return use;
}

/**
 * Properties forwarded unaltered [MQTT-3.3.2-15, 3.3.2-16, 3.3.2-17, 3.3.2-18, 3.3.2-20], user properties in
 * their order; expiry and subscription ids set for this subscriber. A topic alias is per hop: never forwarded.
 */
function outboundProperties(
  properties: MessageProperties | undefined,
  remaining: number | undefined,
  ids: number[] | undefined,
): PublishProperties | undefined {
  if (!properties && remaining === undefined && !ids) return undefined;
  return {
    ...properties,
    ...(remaining !== undefined ? { messageExpiryInterval: remaining } : {}),
    topicAlias: undefined,
    subscriptionIdentifier: ids ? (ids.length === 1 ? ids[0] : ids) : undefined,
  };
}

/**
 * A session's connection is (re)established: unacknowledged PUBLISHes are sent again with DUP set and
 * PUBRELs again [MQTT-4.4.0-1], in their original order, then the queue.
 */
export function resumeSession<S>(ctx: CoreContext<S>, conn: CoreConnection<S>, state: SessionState): void {
  // A kept session resumed with expiry 0 now ends with this connection (or a crash): the journal forgets it
  // (a no-op for one it never kept), so that a restart does not bring it back.
  if (state.expirySec > 0) ctx.journal?.session(state, true);
  else ctx.journal?.ended(state.clientId);
  const inflight = state.inflight;
  if (inflight)
    for (const entry of [...inflight.values()]) {
      if (entry.phase === 'pubrel') {
        conn.send({ cmd: 'pubrel', messageId: entry.packetId });
        continue;
      }
      // Withheld, expired or too large now: then it is done with, as if acknowledged.
      inflight.delete(entry.packetId);
      const outcome = sendNow(ctx, conn, { ...entry, phase: 'publish' });
      if (outcome === 'dropped' || outcome === 'withheld') forget(ctx, state, entry);
    }
  drain(ctx, state);
}
