/**
 * Persistent sessions made durable (types.ts `SessionJournal`): which changes are journaled, the
 * acknowledgements that wait for them, and the sessions given back at start.
 */
import type { Packet } from './codec.ts';
import type { CoreConnection } from './connection.ts';
import type { CoreContext } from './context.ts';
import { Deque } from './deque.ts';
import { endSession, scheduleExpiryFrom } from './lifecycle.ts';
import { newSessionState } from './session-store.ts';
import type { Pending, PersistedSession } from './types.ts';

interface WaitingAck {
  readonly packet: Packet;
  ready: boolean;
}

/** Acknowledgements waiting for the journal, per connection, in the order the PUBLISHes came. */
const waiting = new WeakMap<CoreConnection<unknown>, WaitingAck[]>();

function sendReady(conn: CoreConnection<unknown>, acks: WaitingAck[], bound: number): void {
  while (acks.length > 0 && acks[0]?.ready) {
    const ack = acks.shift() as WaitingAck;
    conn.send(ack.packet);
  }
  if (acks.length < bound) conn.backlog(false);
  if (acks.length === 0) waiting.delete(conn);
}

/**
 * Sends a PUBACK or PUBREC: at once when routing the message recorded nothing durable and none waits before
 * it; otherwise once the journal has made the message durable. Acknowledgements leave in the order of their
 * PUBLISHes [MQTT-4.6.0-2, 4.6.0-3] (one that needs no wait still waits behind one that does).
 */
export function acknowledge<S>(
  ctx: CoreContext<S>,
  conn: CoreConnection<S>,
  ack: { packet: Packet; mark: number | undefined },
): void {
  const journal = ctx.journal;
  const durable = journal !== undefined && ack.mark !== undefined && journal.recorded !== ack.mark;
  let acks = waiting.get(conn);
  if (!durable && !acks) return conn.send(ack.packet);
  if (!acks) {
    acks = [];
    waiting.set(conn, acks);
  }
  const entry: WaitingAck = { packet: ack.packet, ready: !durable };
  acks.push(entry);
  const list = acks;
  // At most the server's Receive Maximum wait: then the connection is not read until they go out.
  const bound = ctx.limits.receiveMaximum;
  if (!durable) return sendReady(conn, list, bound);
  if (list.length >= bound) conn.backlog(true);
  // The journal retries while its store is down: the acknowledgement waits (the publisher's window fills and
  // it stops sending), it is never sent for a message that is not durable.
  void journal.durable().then(
    () => {
      entry.ready = true;
      if (!conn.closed) sendReady(conn, list, bound);
    },
    (err: unknown) => {
      ctx.hooks.error?.(conn, err instanceof Error ? err : new Error(String(err)));
      conn.violate(0x80, 'the session store failed');
    },
  );
}

/**
 * The persistent sessions a journal kept, given back at start (before the first connection): subscriptions
 * in the trie, messages queued in order, QoS 2 messages in flight with their packet ids (resent with DUP, or
 * their PUBREL, when the client is back [MQTT-4.4.0-1]), and each session's expiry counted from when its
 * last connection ended (or from now, for one connected when the server stopped).
 */
export function restoreSessions<S>(ctx: CoreContext<S>, sessions: Iterable<PersistedSession>): number {
  let restored = 0;
  const now = ctx.now();
  for (const kept of sessions) {
    if (ctx.store.get(kept.clientId)) continue;
    const state = newSessionState(kept.clientId, kept.expirySec);
    if (kept.subscriptions.length > 0) state.subscriptions = new Map();
    for (const sub of kept.subscriptions) {
      state.subscriptions?.set(sub.topic, sub);
      ctx.trie.add({ owner: state, filter: sub.filter, share: sub.share, subscription: sub });
    }
    if (kept.received.length > 0) state.received = new Set(kept.received);
    let lastId = 0;
    for (const entry of kept.pending) {
      const { packetId, phase, ...pending } = entry;
      if (entry.qos === 2 && packetId !== undefined) {
        (state.inflight ??= new Map()).set(packetId, { ...pending, packetId, phase: phase ?? 'publish' });
        lastId = Math.max(lastId, packetId);
        continue;
      }
      (state.queue ??= new Deque<Pending>()).push(pending);
      state.queuedBytes += pending.message.payload.length;
    }
    state.nextPacketId = lastId >= 65535 ? 1 : lastId + 1;
    ctx.store.set(state);
    restored += 1;
    const from = kept.disconnectedAt ?? now;
    if (kept.expirySec <= 0 || from + kept.expirySec * 1000 <= now) endSession(ctx, state);
    else scheduleExpiryFrom(ctx, state, from);
  }
  return restored;
}
