import type { DeviceService } from '../devices/index.ts';
import type { AttachedPolicy } from '../policy/index.ts';
import type { AccessContext } from './access.context.ts';
import { APP_POLICY_PREFIX } from './access.policies.ts';

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

/** A policy statement as the compliance checks read it: its effect, actions and topic filters. */
export interface StatementFact {
  effect: 'allow' | 'deny';
  actions: string[];
  topics: string[];
}

/**
 * The access module's compliance facts (the `access` source of the compliance engine): operator policies with
 * their statements and where they are attached, zones, conduits, devices no zone takes in, and app grants.
 */
export interface AccessComplianceFacts {
  /** Operator-written policies (not apps' `app.<name>` grants; the built-in ones are not stored). */
  policies: { name: string; attachedTo: string[]; statements: StatementFact[] }[];
  zones: { name: string; securityLevel: number; devices: number }[];
  conduits: {
    name: string;
    from: string;
    to: string;
    direction: string;
    topics: string[];
    rateCap: number | null;
  }[];
  /** Devices in service (registered, active, disabled) no zone takes in: every one when no zone exists. */
  devicesInNoZone: string[];
  /** Statements of the policies attached to apps (their grants, `app.<name>`), per app. */
  appGrants: ({ app: string } & StatementFact)[];
}

/** `*`, `group:<g>`, `zone:<z>`, `device:<id>`, `app:<name>`. */
const attachmentText = (a: { kind: string; target: string }) =>
  a.kind === 'all' ? '*' : `${a.kind}:${a.target}`;

const statementsOf = (policy: AttachedPolicy | undefined): StatementFact[] =>
  (policy?.document.statements ?? []).map((s) => ({
    effect: s.effect,
    actions: [...s.actions],
    topics: [...s.resources],
  }));

/** The devices in service come from the devices door (its one definition of "in service"). */
export async function accessComplianceFacts(
  ctx: Pick<AccessContext, 'cache'> & { devices: Pick<DeviceService, 'inServiceIds'> },
): Promise<AccessComplianceFacts> {
  const [snap, ids] = await Promise.all([ctx.cache.current(), ctx.devices.inServiceIds()]);
  const perZone = new Map<string, number>();
  const inNoZone: string[] = [];
  for (const id of ids) {
    const zone = snap.deviceZones.get(id) ?? null;
    if (zone === null) inNoZone.push(id);
    else perZone.set(zone, (perZone.get(zone) ?? 0) + 1);
  }
  const operatorPolicies = [...snap.policies.values()]
    .filter((p) => !p.name.startsWith(APP_POLICY_PREFIX))
    .sort((a, b) => a.name.localeCompare(b.name));
  return {
    policies: operatorPolicies.map((p) => ({
      name: p.name,
      attachedTo: snap.attachments.filter((a) => a.policy === p.name).map(attachmentText),
      statements: statementsOf(p),
    })),
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
      topics: [...c.topics],
      rateCap: c.rateCap ?? null,
    })),
    devicesInNoZone: inNoZone,
    appGrants: snap.attachments
      .filter((a) => a.kind === 'app')
      .sort((a, b) => a.target.localeCompare(b.target) || a.policy.localeCompare(b.policy))
      .flatMap((a) => statementsOf(snap.policies.get(a.policy)).map((s) => ({ app: a.target, ...s }))),
  };
}
