import { useEffect, useState, type RefObject } from 'react';
import { api } from '@bulwark/protocol';
import { follow, type FollowState } from './sse.ts';

/** How often the list is read again when the alert stream is not live (not allowed, connecting, broken). */
export const FALLBACK_REFRESH_MS = 15_000;
/** The stream's events reload the list at most this often. */
const COALESCE_MS = 1_000;

/**
 * Follows the alert stream while `mayFollow`, calling `reload` (at most once every COALESCE_MS) when an alert
 * changes; returns whether the stream is live, so the caller can fall back to polling when it is not.
 */
export function useAlertStream(mayFollow: boolean, reload: RefObject<() => void>): boolean {
  const [state, setState] = useState<FollowState>();
  useEffect(() => {
    if (!mayFollow) return;
    let timer: number | undefined;
    const stop = follow(api.monitor.alertStream, {
      schema: api.audit.auditEntry,
      onEvent: () => {
        if (timer !== undefined) return;
        timer = window.setTimeout(() => {
          timer = undefined;
          reload.current();
        }, COALESCE_MS);
      },
      onState: (next) => setState(next),
    });
    return () => {
      stop();
      window.clearTimeout(timer);
    };
  }, [mayFollow, reload]);
  return mayFollow && state === 'live';
}
