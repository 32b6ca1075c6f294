import { eventsIn, subjectOf } from '../doors.ts';
import { Attempts } from './attempts.ts';
import { defineDetector } from './detector.ts';

/**
 * Credential guessing: refused credentials (sign-in, MQTT, TLS, enrollment) from one address for many
 * identities within the window (settings: the `guessing` built-in of the profiles attached to all).
 */
export function createGuessingDetector() {
  const attempts = new Attempts();
  return defineDetector({
    name: 'guessing',
    consumes: [...eventsIn('guessing')],
    onEvent(entry, ctx) {
      const address = entry.type === 'auth.sign_in_failed' ? entry.data.address : entry.data.remoteAddress;
      if (!address || address === 'unknown') return;
      const b = ctx.builtins().guessing;
      if (!b.enabled) return;
      // A TLS failure names no identity: count it once per reason, so one device retrying with an expired
      // certificate is not mistaken for someone trying many.
      const identity =
        entry.subject ??
        (entry.type === 'tls.handshake_failed' ? `tls:${entry.data.reason}` : `unknown#${entry.seq}`);
      const { distinct, total, crossed } = attempts.add(
        address,
        { what: identity, at: entry.ts },
        { windowMs: b.window, threshold: b.identities },
      );
      if (crossed)
        ctx.raise({
          detector: 'guessing',
          subject: subjectOf.address(address),
          deviceId: null,
          severity: 'high',
          title: `Credential guessing from ${address}: ${distinct.length} identities tried`,
          at: entry.ts,
          evidence: {
            address,
            identities: distinct.slice(0, 20),
            distinctIdentities: distinct.length,
            failures: total,
            windowMs: b.window,
            lastReason: entry.data.reason,
          },
        });
    },
    onTick(at, ctx) {
      if (ctx.deviceCount() > 0 && at % 60_000 < 1000) attempts.prune(at, 86_400_000);
    },
  });
}
