import { DEVICE_TOPIC_ROOT } from '@bulwark/protocol';
import type { Targets } from './document.ts';

/** What is known of another device for a statement's `targets`: its group and zone. */
export interface DeviceFacts {
  group: string | null;
  zone: string | null;
}

/**
 * Which device a topic or filter reaches: one device (`devices/pump-1/…`), possibly any (`devices/+/…`,
 * `#`, `+/…`), or none (any other root, or `devices` alone).
 */
export type Reach = { kind: 'none' } | { kind: 'device'; id: string } | { kind: 'wildcard' };

const NONE: Reach = Object.freeze({ kind: 'none' });
const WILDCARD: Reach = Object.freeze({ kind: 'wildcard' });

export function reachOf(levels: readonly string[]): Reach {
  const root = levels[0];
  if (root === '#' || root === '+') return WILDCARD;
  if (root !== DEVICE_TOPIC_ROOT) return NONE;
  const id = levels[1];
  if (id === undefined || id === '') return NONE;
  if (id === '+' || id === '#') return WILDCARD;
  return { kind: 'device', id };
}

/** Does the device `id` fall in the targets? Every kind listed must hold; names of one kind are alternatives. */
export function targetsHold(
  targets: Targets,
  id: string,
  facts: (id: string) => DeviceFacts | undefined,
): boolean {
  const known = facts(id);
  if (!known) return false; // an unknown device is in no group or zone, and not listed by id either
  if (targets.devices && !targets.devices.includes(id)) return false;
  if (targets.groups && (known.group === null || !targets.groups.includes(known.group))) return false;
  if (targets.zones && (known.zone === null || !targets.zones.includes(known.zone))) return false;
  return true;
}
