import type { AccessContext } from './access.context.ts';

/** What the access module states for the compliance checks (IEC 62443-3-3 SR 5.1: zones and conduits). */
export interface AccessFacts {
  /** Policies an operator wrote (the built-in default and quarantine policies are not counted). */
  policies: { name: string; version: number; attachments: number }[];
  zones: { name: string; securityLevel: number; devices: number }[];
  conduits: {
    name: string;
    from: string;
    to: string;
    direction: string;
    topics: number;
    rateCap: number | null;
  }[];
  /** Devices that no zone takes in (segmentation does not cover them). */
  devicesInNoZone: number;
  devices: number;
}

export async function accessFacts(ctx: Pick<AccessContext, 'cache'>): Promise<AccessFacts> {
  const snap = await ctx.cache.current();
  const perZone = new Map<string, number>();
  let inNoZone = 0;
  for (const zone of snap.deviceZones.values()) {
    if (zone === null) inNoZone++;
    else perZone.set(zone, (perZone.get(zone) ?? 0) + 1);
  }
  return {
    policies: [...snap.policies.values()]
      .map((p) => ({
        name: p.name,
        version: p.version,
        attachments: snap.attachments.filter((a) => a.policy === p.name).length,
      }))
      .sort((a, b) => a.name.localeCompare(b.name)),
    zones: snap.zones.map((z) => ({
      name: z.name,
      securityLevel: z.securityLevel,
      devices: perZone.get(z.name) ?? 0,
    })),
    conduits: snap.conduits.map((c) => ({
      name: c.name,
      from: c.from,
      to: c.to,
      direction: c.direction,
      topics: c.topics.length,
      rateCap: c.rateCap ?? null,
    })),
    devicesInNoZone: inNoZone,
    devices: snap.deviceZones.size,
  };
}
