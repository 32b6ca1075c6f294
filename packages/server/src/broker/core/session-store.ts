import type { CoreContext } from './context.ts';
import type { CoreMessage, SessionJournal, SessionState, SessionStore } from './types.ts';

/** Sessions in memory: lost on restart, like aedes' default persistence. */
export function createMemorySessionStore(): SessionStore {
  const sessions = new Map<string, SessionState>();
  return {
    get: (clientId) => sessions.get(clientId),
    set: (state) => void sessions.set(state.clientId, state),
    delete: (clientId) => void sessions.delete(clientId),
    values: () => sessions.values(),
    get size() {
      return sessions.size;
    },
  };
}

/** A new, empty session: maps and queues are created when first needed (an idle session stays small). */
export function newSessionState(clientId: string, expirySec: number): SessionState {
  return {
    clientId,
    subscriptions: undefined,
    queue: undefined,
    queuedBytes: 0,
    inflight: undefined,
    received: undefined,
    nextPacketId: 1,
    expirySec,
    drops: 0,
  };
}

/** The journal when this session's changes are kept (a session expiry above 0); else undefined. */
export function journalOf<S>(ctx: CoreContext<S>, state: SessionState): SessionJournal | undefined {
  return state.expirySec > 0 ? ctx.journal : undefined;
}

/** A kept message is done with for this session (acknowledged, dropped, withheld, expired). */
export function forget<S>(
  ctx: CoreContext<S>,
  state: SessionState,
  kept: { message: CoreMessage; qos: number },
): void {
  if (kept.qos > 0) journalOf(ctx, state)?.done(state.clientId, kept.message);
}
