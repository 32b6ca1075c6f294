import { deviceIdOf, subjectOf } from '../doors.ts';
import { networkOf } from '../device-state.ts';
import { defineDetector } from './detector.ts';

/** A device connects from a network (/24, /48) it never used, after its warm-up connections. */
export const newSourceNetwork = defineDetector({
  name: 'new_source_network',
  consumes: ['mqtt.connected'],
  onEvent(entry, ctx) {
    const id = deviceIdOf(entry.subject);
    const state = id ? ctx.known(id) : undefined;
    if (!state) return;
    const b = ctx.builtins(state).new_source_network;
    const n = state.novelty;
    const address = entry.data.remoteAddress;
    const net = networkOf(address);
    if (n.networks.includes(net)) return;
    if (n.connections >= b.warmupConnections && b.enabled)
      ctx.raise({
        state,
        detector: 'new_source_network',
        subject: subjectOf.device(state.id),
        deviceId: state.id,
        severity: 'medium',
        title: `${state.id} connected from a network it never used: ${net}`,
        at: entry.ts,
        evidence: { network: net, address, known: n.networks.slice(-10), connections: n.connections },
      });
    n.networks.push(net);
    if (n.networks.length > 32) n.networks.shift();
  },
});
