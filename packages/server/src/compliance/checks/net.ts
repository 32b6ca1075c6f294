import type { ListenerFact } from '../facts.ts';
import type { CheckDefinition, Evidence } from './types.ts';
import { count, outcome } from './util.ts';

const listenerEvidence = (l: ListenerFact, detail: string): Evidence => ({
  kind: 'listener',
  id: l.name,
  detail: `port ${l.port}: ${detail}`,
});

const plaintext: CheckDefinition = {
  id: 'net.plaintext-listener',
  title: 'No listener accepts plaintext connections',
  severity: 'critical',
  rationale:
    'Plaintext MQTT exposes credentials and device data to anyone on the path and allows tampering (ETSI EN 303 645 5.5-1).',
  remediation:
    'Remove mqtt.devListener from the configuration (and BULWARK_MQTT_DEV_PORT / --mqtt-dev-port), then restart `bulwark serve`.',
  reads: ['listeners'],
  run({ facts }) {
    const evidence = facts.listeners
      .filter((l) => l.transport === 'tcp')
      .map((l) => listenerEvidence(l, 'accepts plaintext TCP (no TLS)'));
    return outcome({
      evidence,
      examined: facts.listeners.length,
      pass: `all ${count(facts.listeners.length, 'listener')} use TLS`,
      fail: (e) => `${e.length} of ${facts.listeners.length} listeners accept plaintext connections`,
    });
  },
};

const unauthenticated: CheckDefinition = {
  id: 'net.unauthenticated-listener',
  title: 'Every listener authenticates its clients',
  severity: 'critical',
  rationale:
    'A listener without authentication lets anyone connect as any client id and bypasses device identity.',
  remediation:
    'Remove mqtt.devListener from the configuration (it is for development only), then restart `bulwark serve`.',
  reads: ['listeners'],
  run({ facts }) {
    const evidence = facts.listeners
      .filter((l) => l.authentication === 'none')
      .map((l) => listenerEvidence(l, 'accepts clients without authentication'));
    return outcome({
      evidence,
      examined: facts.listeners.length,
      pass: `all ${count(facts.listeners.length, 'listener')} authenticate their clients`,
      fail: (e) => `${e.length} of ${facts.listeners.length} listeners accept unauthenticated clients`,
    });
  },
};

const weakTls = new Set(['TLSv1', 'TLSv1.1']);

const tlsVersion: CheckDefinition = {
  id: 'net.tls-version',
  title: 'TLS listeners refuse versions below TLS 1.2',
  severity: 'high',
  rationale: 'TLS 1.0 and 1.1 are deprecated (RFC 8996) and have known weaknesses.',
  remediation:
    'Set the minimum TLS version of the listener to TLSv1.2 or TLSv1.3 and restart `bulwark serve`.',
  reads: ['listeners'],
  run({ facts }) {
    const tls = facts.listeners.filter((l) => l.transport === 'tls');
    const evidence = tls
      .filter((l) => l.minTlsVersion === null || weakTls.has(l.minTlsVersion))
      .map((l) => listenerEvidence(l, `accepts ${l.minTlsVersion ?? 'an unknown TLS version'}`));
    return outcome({
      evidence,
      examined: tls.length,
      pass: `all ${count(tls.length, 'TLS listener')} require TLS 1.2 or later`,
      fail: (e) => `${e.length} of ${tls.length} TLS listeners accept a version below TLS 1.2`,
    });
  },
};

const deviceListeners = new Set<ListenerFact['name']>(['mqtt', 'https-device']);
const certificateAuthentication = new Set<ListenerFact['authentication']>([
  'mutual-tls',
  'mutual-tls-or-app-token',
]);

const deviceMutualTls: CheckDefinition = {
  id: 'net.device-mutual-tls',
  title: 'Devices authenticate with their certificate (mutual TLS)',
  severity: 'high',
  rationale:
    'Mutual TLS binds each connection to a device key that never leaves the device, instead of a shared secret.',
  remediation:
    'Run the device listeners (mqtt, https-device) with client certificates required: remove custom listener settings that turn mutual TLS off and restart `bulwark serve`.',
  reads: ['listeners'],
  run({ facts }) {
    const listeners = facts.listeners.filter((l) => deviceListeners.has(l.name));
    const evidence = listeners
      .filter((l) => !certificateAuthentication.has(l.authentication))
      .map((l) => listenerEvidence(l, `authenticates devices by ${l.authentication}, not by certificate`));
    return outcome({
      evidence,
      examined: listeners.length,
      pass: `all ${count(listeners.length, 'device listener')} require device certificates`,
      fail: (e) => `${e.length} of ${listeners.length} device listeners do not require a device certificate`,
    });
  },
};

export const netChecks: readonly CheckDefinition[] = [
  plaintext,
  unauthenticated,
  tlsVersion,
  deviceMutualTls,
];
