import { useCallback, useEffect, useRef, useState } from 'react';
import { api } from '@bulwark/protocol';
import { call, onSessionCall } from '../api.ts';

/** The warning shows this long before the end (half the idle time when that is shorter). */
const WARN_BEFORE_MS = 2 * 60_000;
/** After the end, the session is asked once more: the server may have seen a call from another tab. */
const CHECK_AFTER_MS = 2_000;
const RECHECK_MS = 10_000;

function minutesSeconds(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/**
 * A session ends after `idleMs` without a call (auth.sessionIdle; every call as the session restarts it). Shortly
 * before, a notice that blocks nothing offers to stay signed in; at the end, one call finds the session gone and
 * the console's session-ended flow shows the sign-in page (IEC 62443-3-3 SR 2.5).
 */
export function SessionTimeout(props: { idleMs: number | undefined }) {
  const { idleMs } = props;
  // The session answer that brought the console here was a call: counting from now is at most a moment late.
  const [lastCall, setLastCall] = useState(() => Date.now());
  const [now, setNow] = useState(() => Date.now());
  const checking = useRef(false);
  const lastCheck = useRef(0);
  useEffect(() => onSessionCall((at) => setLastCall((last) => Math.max(last, at))), []);
  useEffect(() => {
    if (idleMs === undefined) return;
    const timer = window.setInterval(() => setNow(Date.now()), 1000);
    return () => window.clearInterval(timer);
  }, [idleMs]);
  const left = idleMs === undefined ? Infinity : lastCall + idleMs - now;
  const stay = useCallback(() => {
    if (checking.current) return;
    checking.current = true;
    lastCheck.current = Date.now();
    // Any call restarts the idle time; a 401 (the session is gone) brings the sign-in page through onSessionEnded.
    call(api.users.currentSession)
      .catch(() => undefined) // unreachable: asked again at most every RECHECK_MS
      .finally(() => {
        checking.current = false;
      });
  }, []);
  useEffect(() => {
    if (left <= -CHECK_AFTER_MS && Date.now() - lastCheck.current > RECHECK_MS) stay();
  }, [left, stay]);
  if (idleMs === undefined || left > Math.min(WARN_BEFORE_MS, idleMs / 2)) return null;
  return (
    <section className="session-timeout" role="status" aria-label="Session timeout">
      <p>
        {left > 0 ? (
          <>
            Your session ends in <span aria-live="off">{minutesSeconds(left)}</span> without activity.
          </>
        ) : (
          'Your session is ending…'
        )}
      </p>
      <button type="button" className="primary" onClick={stay}>
        Stay signed in
      </button>
    </section>
  );
}
