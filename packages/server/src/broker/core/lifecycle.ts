/**
 * How connections and sessions end: wills (§3.1.2.5, with their delay), session expiry (§4.1), keep alive
 * and connect deadlines on the shared timer wheel.
 */
import type { CoreConnection } from './connection.ts';
import type { CoreContext, PendingWillEntry } from './context.ts';
import { routeMessage } from './outbound.ts';
import { RC } from './reason-codes.ts';
import type { CoreMessage, CorePublish, SessionState } from './types.ts';

/** A will (or a delayed one whose time came) goes through the publish hook like any PUBLISH, then out. */
export function publishWill<S>(ctx: CoreContext<S>, will: { session: S; message: CoreMessage }): void {
  const { session, message } = will;
  const publish: CorePublish = {
    topic: message.topic,
    payload: message.payload,
    qos: message.qos,
    retain: message.retain,
    properties: message.properties,
  };
  ctx.hooks.publish(session, publish, (err) => {
    if (err) return;
    const payload = Buffer.isBuffer(publish.payload) ? publish.payload : Buffer.from(publish.payload);
    // The message expiry interval runs from when the will is published.
    const expiry = message.properties?.messageExpiryInterval;
    const out: CoreMessage = {
      ...message,
      payload,
      retain: publish.retain,
      expiresAt: expiry !== undefined ? ctx.now() + expiry * 1000 : undefined,
    };
    if (out.retain)
      ctx.hooks.retained.store?.(session, {
        topic: out.topic,
        payload,
        qos: out.qos,
        properties: out.properties,
      });
    routeMessage(ctx, out);
    ctx.bus.publish(out);
  });
}

export function cancelPendingWill<S>(ctx: CoreContext<S>, clientId: string): void {
  const entry = ctx.wills.get(clientId);
  if (!entry) return;
  ctx.wheel.cancel(entry);
  ctx.wills.delete(clientId);
}

export function cancelExpiry<S>(ctx: CoreContext<S>, clientId: string): void {
  const entry = ctx.expiries.get(clientId);
  if (!entry) return;
  ctx.wheel.cancel(entry);
  ctx.expiries.delete(clientId);
}

/** The session ends: its subscriptions and queues go, and a will still waiting on its delay is published. */
export function endSession<S>(ctx: CoreContext<S>, state: SessionState): void {
  const { clientId } = state;
  for (const sub of state.subscriptions?.values() ?? []) ctx.trie.remove(state, sub.filter, sub.share);
  state.subscriptions = undefined;
  state.queue?.clear();
  state.queuedBytes = 0;
  state.inflight = undefined;
  state.received = undefined;
  if (ctx.store.get(clientId) === state) {
    ctx.store.delete(clientId);
    // Whatever its expiry was, the journal forgets it (one that began at 0 was never kept: a no-op there).
    ctx.journal?.ended(clientId);
  }
  cancelExpiry(ctx, clientId);
  // [MQTT-3.1.3-9]: the will is published when its delay passes or the session ends, whichever first.
  const will = ctx.wills.get(clientId);
  if (will) {
    cancelPendingWill(ctx, clientId);
    publishWill(ctx, will);
  }
}

export function startKeepAlive<S>(ctx: CoreContext<S>, conn: CoreConnection<S>): void {
  if (conn.keepAliveMs > 0) {
    conn.timer.deadline = ctx.now() + conn.keepAliveMs;
    ctx.wheel.schedule(conn.timer);
  } else ctx.wheel.cancel(conn.timer);
}

/** The connection's deadline passed: no CONNECT in time, or no packet within the keep alive. */
export function deadlinePassed<S>(conn: CoreConnection<S>): void {
  // An ended connection whose last bytes were not taken in time (see CoreConnection.end).
  if (conn.closed) return void conn.stream.destroy();
  if (conn.phase === 'connected') {
    // [MQTT-3.1.2-22]: no packet within one and a half keep alives: closed (DISCONNECT 0x8D on MQTT 5).
    conn.end(
      conn.protocolVersion === 5 ? { cmd: 'disconnect', reasonCode: RC.keepAliveTimeout } : undefined,
      {
        reason: 'keep alive timeout',
        reasonCode: RC.keepAliveTimeout,
      },
    );
    return;
  }
  conn.end(undefined, { reason: 'connect timeout', reasonCode: RC.maximumConnectTime });
}

/**
 * [MQTT-3.1.2-8]: the will is published when the connection ends other than by a normal DISCONNECT; after
 * its delay (capped by the session expiry), unless the client is back first [MQTT-3.1.3-9].
 */
function handleWill<S>(
  ctx: CoreContext<S>,
  conn: CoreConnection<S>,
  state: SessionState,
): CoreMessage | null {
  const will = conn.will;
  const session = conn.session;
  conn.will = undefined;
  if (!will || session === undefined) return null;
  const delaySec = Math.min(will.delaySec, state.expirySec);
  if (delaySec <= 0) {
    publishWill(ctx, { session, message: will.message });
    return will.message;
  }
  const { clientId } = state;
  const entry: PendingWillEntry<S> = {
    session,
    message: will.message,
    deadline: ctx.now() + delaySec * 1000,
    fire: () => {
      ctx.wills.delete(clientId);
      publishWill(ctx, entry);
    },
  };
  ctx.wills.set(clientId, entry);
  ctx.wheel.schedule(entry);
  return will.message;
}

/** §4.1: the session ends with the connection when its expiry is 0, otherwise when its expiry passes. */
function scheduleExpiry<S>(ctx: CoreContext<S>, state: SessionState): void {
  if (state.expirySec === 0) {
    endSession(ctx, state);
    return;
  }
  // The journal keeps when it went offline: a restart counts its expiry from then.
  ctx.journal?.session(state, false);
  scheduleExpiryFrom(ctx, state, ctx.now());
}

/** The session ends `expirySec` after `from` (when its last connection ended), unless it is back before. */
export function scheduleExpiryFrom<S>(ctx: CoreContext<S>, state: SessionState, from: number): void {
  if (!Number.isFinite(state.expirySec)) return;
  const { clientId } = state;
  const entry = {
    deadline: from + state.expirySec * 1000,
    fire: () => {
      ctx.expiries.delete(clientId);
      if (!ctx.live.has(clientId) && ctx.store.get(clientId) === state) endSession(ctx, state);
    },
  };
  ctx.expiries.set(clientId, entry);
  ctx.wheel.schedule(entry);
}

/** A connection is closed (by either side): its will, its session's expiry, and the disconnected hook. */
export function connectionClosed<S>(ctx: CoreContext<S>, conn: CoreConnection<S>): void {
  ctx.conns.delete(conn);
  ctx.wheel.cancel(conn.timer);
  const { state, session } = conn;
  const why = conn.endReason ?? { reason: 'connection lost', reasonCode: RC.unspecified };
  // The session's key: its client id, unless the connect hook namespaced it (ConnectVerdict.sessionKey).
  const clientId = state?.clientId;
  if (!state || clientId === undefined || ctx.live.get(clientId) !== conn) {
    if (session !== undefined) ctx.hooks.disconnected(session, { ...why, will: null });
    else if (!conn.endedByPeer && !conn.refusedByHook) ctx.hooks.rejected?.(conn, why);
    return;
  }
  ctx.live.delete(clientId);
  const will = handleWill(ctx, conn, state);
  scheduleExpiry(ctx, state);
  if (session !== undefined) ctx.hooks.disconnected(session, { ...why, will });
}
