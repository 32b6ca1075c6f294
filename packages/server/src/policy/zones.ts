import { z } from 'zod';
import { DEVICE_TOPIC_ROOT } from '@bulwark/protocol';
import { cidrSchema } from './document.ts';
import { covers, isValidFilter, matches } from './topic-filter.ts';

export const ZONE_TOPIC_ROOT = 'zones';
const name = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9-]{0,31}$/,
    'must be 1-32 characters of a-z 0-9 -, starting with a letter or digit',
  );

/** IEC 62443-3-2: a zone groups assets with a target security level and owns a topic namespace `zones/<name>/#`. */
export const zoneSchema = z
  .object({
    name,
    securityLevel: z.number().int().min(1).max(4),
    description: z.string().max(512).optional(),
    members: z
      .object({
        groups: z.array(z.string().max(64)).max(256).optional(),
        attributes: z.record(z.string().max(64), z.string().max(256)).optional(),
      })
      .strict(),
    /** Network addresses of the zone's hosts, for the exported firewall rules. */
    addresses: z.array(cidrSchema).max(1024).default([]),
  })
  .strict();
export type Zone = z.infer<typeof zoneSchema>;

/** A conduit: the only way traffic crosses from one zone to another (IEC 62443-3-2 ZCR 3.x). */
export const conduitSchema = z
  .object({
    name,
    from: name,
    to: name,
    topics: z
      .array(z.string().min(1).max(512).refine(isValidFilter, 'must be a valid MQTT topic filter'))
      .min(1)
      .max(256),
    direction: z.enum(['one-way', 'two-way']).default('one-way'),
    /** Messages per second across the conduit, per device (enforced by the broker firewall). */
    rateCap: z.number().int().positive().optional(),
    /** TCP ports the conduit opens in exported firewall rules. */
    ports: z.array(z.number().int().min(1).max(65535)).max(32).default([8883]),
  })
  .strict()
  .refine((c) => c.from !== c.to, 'a conduit joins two different zones');
export type Conduit = z.infer<typeof conduitSchema>;

export interface Segmentation {
  zones: readonly Zone[];
  conduits: readonly Conduit[];
}

/** The zone a device belongs to: the first (by name) whose group list or attribute set it matches. */
export function zoneOf(
  device: { group: string | null; attributes: Readonly<Record<string, string>> },
  zones: readonly Zone[],
): string | null {
  for (const zone of [...zones].sort((a, b) => a.name.localeCompare(b.name))) {
    const { groups, attributes } = zone.members;
    if (groups && device.group !== null && groups.includes(device.group)) return zone.name;
    if (
      attributes &&
      Object.keys(attributes).length > 0 &&
      Object.entries(attributes).every(([k, v]) => device.attributes[k] === v)
    )
      return zone.name;
  }
  return null;
}

/** Owner of a topic or filter: `zones/<z>/…` → z; `devices/<id>/…` → that device's zone; other topics → none. */
export type Owner = { kind: 'none' } | { kind: 'zone'; zone: string | null } | { kind: 'ambiguous' };

export function ownerOf(topicOrFilter: string, deviceZone: (id: string) => string | null | undefined): Owner {
  const slash = topicOrFilter.indexOf('/');
  const root = slash < 0 ? topicOrFilter : topicOrFilter.slice(0, slash);
  if (root !== DEVICE_TOPIC_ROOT && root !== ZONE_TOPIC_ROOT)
    return root === '#' || root === '+' ? { kind: 'ambiguous' } : { kind: 'none' };
  const rest = slash < 0 ? '' : topicOrFilter.slice(slash + 1);
  const second = rest.split('/', 1)[0] ?? '';
  if (second === '' || second === '+' || second === '#') return { kind: 'ambiguous' };
  if (root === ZONE_TOPIC_ROOT) return { kind: 'zone', zone: second };
  const zone = deviceZone(second);
  return { kind: 'zone', zone: zone ?? null };
}

/** Is there a conduit carrying `topic` (or, for subscriptions, the whole filter) from zone `from` to `to`? */
export function conduitFor(
  seg: Segmentation,
  route: { from: string | null; to: string | null; topic: string; isFilter: boolean },
): Conduit | undefined {
  const { from, to, topic: topicOrFilter, isFilter } = route;
  if (from === null || to === null) return undefined;
  return seg.conduits.find(
    (c) =>
      ((c.from === from && c.to === to) || (c.direction === 'two-way' && c.from === to && c.to === from)) &&
      c.topics.some((t) => (isFilter ? covers(t, topicOrFilter) : matches(t, topicOrFilter))),
  );
}
