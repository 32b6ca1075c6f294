/** A small typed event emitter: listeners that throw are reported as `error`, never break the emitter. */
export interface Emitter<Events extends { error: Error }> {
  emit: <E extends keyof Events>(event: E, payload: Events[E]) => void;
  /** Subscribes to an event; returns the unsubscribe function. */
  on: <E extends keyof Events>(event: E, listener: (payload: Events[E]) => void) => () => void;
  /** Resolves with the next `event` whose payload passes `filter`; rejects after `timeoutMs` (default 30 s). */
  waitFor: <E extends keyof Events>(
    event: E,
    options?: { timeoutMs?: number; filter?: (payload: Events[E]) => boolean },
  ) => Promise<Events[E]>;
}

export function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

export function createEmitter<Events extends { error: Error }>(): Emitter<Events> {
  const listeners = new Map<keyof Events, Set<(payload: never) => void>>();

  function emit<E extends keyof Events>(event: E, payload: Events[E]): void {
    for (const listener of listeners.get(event) ?? []) {
      try {
        (listener as (payload: Events[E]) => void)(payload);
      } catch (err) {
        // A faulty listener must not break the caller's loop; report it unless it is the error
        // listener itself (which would recurse).
        if (event !== 'error') emit('error', asError(err) as Events['error']);
      }
    }
  }

  function on<E extends keyof Events>(event: E, listener: (payload: Events[E]) => void): () => void {
    let set = listeners.get(event);
    if (set === undefined) listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  return {
    emit,
    on,
    waitFor: (event, { timeoutMs = 30_000, filter } = {}) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          off();
          reject(new Error(`no "${String(event)}" event within ${timeoutMs} ms`));
        }, timeoutMs);
        const off = on(event, (payload) => {
          if (filter !== undefined && !filter(payload)) return;
          clearTimeout(timer);
          off();
          resolve(payload);
        });
      }),
  };
}
