import type { z } from 'zod';
import { api, severities, type Severity } from '@bulwark/protocol';
import { call } from './api.ts';

export type Device = z.output<typeof api.devices.deviceView>;
export type Alert = z.output<typeof api.monitor.alert>;
export type Risk = z.output<typeof api.riskRegister.registerRisk>;
export type DeviceState = (typeof api.devices.deviceStates)[number];
export const deviceStates = api.devices.deviceStates;

/** The colour class of each device state (styles.css), worst states red. */
export const stateTone: Record<DeviceState, string> = {
  active: 'tone-ok',
  registered: 'tone-info',
  disabled: 'tone-muted',
  quarantined: 'tone-high',
  revoked: 'tone-critical',
  lost: 'tone-critical',
  decommissioned: 'tone-muted',
};

export const severityTone = (s: Severity) => `tone-${s}`;

/** Severities worst first, as an operator reads them. */
export const severitiesWorstFirst = [...severities].reverse();

/** Every device the role sees, page by page (keyset: `after` the last id), at most `max`. */
export async function allDevices(max = 10_000): Promise<{ devices: Device[]; truncated: boolean }> {
  const devices: Device[] = [];
  let after: string | undefined;
  do {
    const page = await call(api.devices.list, { query: { limit: 1000, ...(after ? { after } : {}) } });
    devices.push(...page.devices);
    after = page.next ?? undefined;
  } while (after && devices.length < max);
  return { devices, truncated: after !== undefined };
}

export function countBy<T, K extends string>(items: readonly T[], key: (item: T) => K): Map<K, number> {
  const counts = new Map<K, number>();
  for (const item of items) counts.set(key(item), (counts.get(key(item)) ?? 0) + 1);
  return counts;
}

/** Short names of the built-in standards (a framework added by the operator shows its id). */
const standardNames: Record<string, string> = {
  'etsi-en-303-645': 'ETSI EN 303 645',
  'iec-62443-4-2': 'IEC 62443-4-2',
  'iec-62443-3-3': 'IEC 62443-3-3',
  'nist-800-82': 'NIST SP 800-82',
  'iso-21434': 'ISO/SAE 21434',
  gdpr: 'GDPR',
};

export const standardName = (id: string) => standardNames[id] ?? id;

/** The colour class of a compliance score (0..1; null: no clause applies). */
export const scoreTone = (score: number | null) =>
  score === null ? 'tone-muted' : score >= 0.9 ? 'tone-ok' : score >= 0.6 ? 'tone-medium' : 'tone-critical';

/** The colour class of a risk value (1-5). */
export const riskTone = (risk: number) =>
  risk >= 5 ? 'tone-critical' : risk >= 4 ? 'tone-high' : risk >= 3 ? 'tone-medium' : 'tone-low';
