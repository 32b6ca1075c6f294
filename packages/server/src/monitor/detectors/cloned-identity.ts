import { deviceIdOf, subjectOf } from '../doors.ts';
import { defineDetector } from './detector.ts';

/**
 * A cloned identity: one device identity connected from two addresses at once, or its sessions taking each
 * other over again and again (two agents behind one NAT). Once per episode: until an operator resolves it.
 */
export const clonedIdentity = defineDetector({
  name: 'cloned_identity',
  consumes: ['mqtt.connected', 'mqtt.identity_conflict'],
  onEvent(entry, ctx) {
    const id = deviceIdOf(entry.subject);
    if (!id) return;
    const state = ctx.device(id, entry.ts);
    if (!ctx.builtins(state).cloned_identity.enabled || state.alarms.has('cloned_identity')) return;
    const base = {
      state,
      detector: 'cloned_identity',
      subject: subjectOf.device(id),
      deviceId: id,
      severity: 'critical',
      at: entry.ts,
    } as const;
    if (entry.type === 'mqtt.identity_conflict') {
      ctx.raise({
        ...base,
        title: `${id}: two agents run with its identity (their sessions kept taking each other over)`,
        evidence: {
          addresses: entry.data.remoteAddresses.map(String),
          certSerial: entry.data.certSerial,
          takeovers: entry.data.takeovers,
        },
      });
      return;
    }
    const address = entry.data.remoteAddress;
    const others = [...state.sessions].filter(([a, n]) => a !== address && n > 0).map(([a]) => a);
    if (others.length > 0)
      ctx.raise({
        ...base,
        title: `${id}: its identity is in use from two addresses at once`,
        evidence: { addresses: [...others, address], certSerial: entry.data.certSerial },
      });
  },
});
