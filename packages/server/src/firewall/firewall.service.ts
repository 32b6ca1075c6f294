import { randomUUID } from 'node:crypto';
import { BulwarkError, deviceIdProblem } from '@bulwark/protocol';
import { subjectOf, type EventBus } from '../events/index.ts';
import { normalizeSerial } from '../pki/index.ts';
import { cidrSchema } from '../policy/index.ts';
import type { BansTable, Db } from '../store/index.ts';
import {
  banKinds,
  createFirewall,
  type AutomaticBan,
  type Ban,
  type BanKind,
  type Firewall,
  type FirewallLimits,
} from './firewall.ts';
import * as store from './firewall.store.ts';

export interface FirewallServiceDeps {
  db: Db;
  events: Pick<EventBus, 'on' | 'atomically'>;
  now: () => number;
  limits: FirewallLimits;
  /** An automatic ban could not be stored (it still holds on this node until it expires). */
  onError?(err: unknown, what: string): void;
}

/** Expired bans stay listed for this long, then they are deleted. */
const EXPIRED_KEPT_MS = 7 * 86_400_000;
const AUTOMATIC = 'automatic:';

/** A ban as the list, the API and the CLI show it. */
export interface BanView {
  id: string;
  kind: BanKind;
  value: string;
  reason: string;
  /** `manual` (an operator, a response) or `automatic` (a firewall rule, named in `rule`). */
  origin: 'manual' | 'automatic';
  rule: string | null;
  actor: string;
  createdAt: number;
  expiresAt: number | null;
  active: boolean;
}

const isBanKind = (kind: string): kind is BanKind => (banKinds as readonly string[]).includes(kind);

/** The rule that imposed a ban (`automatic:<rule>`), or null for a manual one. */
const ruleOf = (origin: string | null | undefined) =>
  origin?.startsWith(AUTOMATIC) ? origin.slice(AUTOMATIC.length) : null;

function toView(r: BansTable, t: number): BanView {
  const rule = ruleOf(r.origin);
  return {
    id: r.id,
    kind: r.kind as BanKind,
    value: r.value,
    reason: r.reason,
    origin: rule === null ? 'manual' : 'automatic',
    rule,
    actor: r.actor,
    createdAt: Number(r.created_at),
    expiresAt: r.expires_at === null ? null : Number(r.expires_at),
    active: r.expires_at === null || Number(r.expires_at) > t,
  };
}

/** What a ban is about, as the audit log names it (`certificate:<serial>` for a certificate). */
function banSubject(kind: string, value: string): string {
  if (kind === 'address') return subjectOf.address(value);
  if (kind === 'device') return subjectOf.device(value);
  return subjectOf.certificate(value);
}

/** The stored form of a ban's value: CIDRs as given, device ids as given, serials in canonical form. */
function validValue(kind: string, value: string): string {
  if (kind === 'address') {
    if (!cidrSchema.safeParse(value).success)
      throw new BulwarkError(
        'validation_failed',
        'value must be an IP address or CIDR such as 203.0.113.0/24',
      );
    return value;
  }
  if (kind === 'device') {
    const problem = deviceIdProblem(value);
    if (problem) throw new BulwarkError('validation_failed', problem);
    return value;
  }
  if (kind === 'certificate') {
    // RFC 5280 §4.1.2.2: a serial is a positive integer of at most 20 octets (40 hex digits).
    if (!/^(?:[0-9a-fA-F]{2}:?)*[0-9a-fA-F]{1,2}$/.test(value) || normalizeSerial(value).length > 40)
      throw new BulwarkError(
        'validation_failed',
        'value must be a certificate serial in hex (at most 20 octets), such as 4a3f01',
      );
    return normalizeSerial(value);
  }
  throw new BulwarkError('validation_failed', `kind must be one of ${banKinds.join(', ')}`);
}

interface FirewallContext extends FirewallServiceDeps {
  firewall: Firewall;
}

async function reload(ctx: FirewallContext): Promise<void> {
  await store.deleteExpiredBefore(ctx.db, ctx.now() - EXPIRED_KEPT_MS);
  const rows = await store.listBans(ctx.db);
  ctx.firewall.setBans(
    rows.map((r): Ban => ({
      kind: r.kind as BanKind,
      value: r.value,
      reason: r.reason,
      expiresAt: r.expires_at === null ? null : Number(r.expires_at),
    })),
  );
}

/** Stores a ban with its event (one transaction), then enforces it on this node. */
async function insert(ctx: FirewallContext, row: BansTable): Promise<BanView> {
  const rule = ruleOf(row.origin);
  await ctx.events.atomically(async (tx, emit) => {
    await store.insertBan(tx, row);
    emit({
      type: 'firewall.ban_created',
      actor: row.actor,
      subject: banSubject(row.kind, row.value),
      data: {
        id: row.id,
        kind: row.kind,
        value: row.value,
        reason: row.reason,
        expiresAt: row.expires_at,
        origin: rule === null ? 'manual' : 'automatic',
        ...(rule === null ? {} : { rule }),
      },
    });
  });
  await reload(ctx);
  return toView(row, ctx.now());
}

/** A ban a firewall rule decided on (already in force on this node): stored, listed, shared. */
function addAutomatic(ctx: FirewallContext, ban: AutomaticBan): Promise<BanView> {
  return insert(ctx, {
    id: randomUUID(),
    kind: ban.kind,
    value: ban.value,
    reason: ban.reason,
    actor: 'system',
    origin: `${AUTOMATIC}${ban.rule}`,
    created_at: ctx.now(),
    expires_at: ban.until,
  });
}

async function add(
  ctx: FirewallContext,
  input: { kind: string; value: string; reason: string; ttlMs?: number | undefined },
  actor: string,
): Promise<BanView> {
  const value = validValue(input.kind, String(input.value ?? '').trim());
  const reason = String(input.reason ?? '').trim();
  if (!reason || reason.length > 256)
    throw new BulwarkError('validation_failed', 'a reason of 1-256 characters is required');
  if (input.ttlMs !== undefined && !(input.ttlMs > 0 && input.ttlMs <= 365 * 86_400_000))
    throw new BulwarkError('validation_failed', 'ttl must be more than 0 and at most 365 days');
  const t = ctx.now();
  return insert(ctx, {
    id: randomUUID(),
    kind: input.kind,
    value,
    reason,
    actor,
    origin: 'manual',
    created_at: t,
    expires_at: input.ttlMs ? t + input.ttlMs : null,
  });
}

/** Lifts a ban: the row and its event go together; the identity starts afresh on this node. */
async function remove(ctx: FirewallContext, id: string, actor: string): Promise<void> {
  const row = await ctx.events.atomically(async (tx, emit) => {
    const found = await store.getBan(tx, id);
    if (!found || !(await store.deleteBan(tx, id))) throw new BulwarkError('not_found', `no ban ${id}`);
    emit({
      type: 'firewall.ban_removed',
      actor,
      subject: banSubject(found.kind, found.value),
      data: {
        id: found.id,
        kind: found.kind,
        value: found.value,
        origin: ruleOf(found.origin) === null ? 'manual' : 'automatic',
      },
    });
    return found;
  });
  ctx.firewall.forget(row.kind as BanKind, row.value);
  await reload(ctx);
}

/** What the firewall states for the compliance checks: bans by kind and origin, and the limits in force. */
export interface FirewallFacts {
  bans: {
    active: number;
    expired: number;
    byKind: Record<BanKind, number>;
    automatic: number;
    manual: number;
  };
  limits: FirewallLimits;
}

async function facts(ctx: FirewallContext): Promise<FirewallFacts> {
  const t = ctx.now();
  const views = (await store.listBans(ctx.db)).map((r) => toView(r, t));
  const active = views.filter((v) => v.active);
  const byKind = Object.fromEntries(banKinds.map((k) => [k, 0])) as Record<BanKind, number>;
  for (const v of active) if (v.kind in byKind) byKind[v.kind] += 1;
  return {
    bans: {
      active: active.length,
      expired: views.length - active.length,
      byKind,
      automatic: active.filter((v) => v.origin === 'automatic').length,
      manual: active.filter((v) => v.origin === 'manual').length,
    },
    limits: { ...ctx.limits },
  };
}

/** The limits and active bans as the compliance checks read them (IEC 62443-4-2 CR 7.1, CR 2.11). */
export interface FirewallComplianceFacts {
  limits: {
    connectRate: number;
    maxConnectionsPerAddress: number;
    failureThreshold: number;
    banDurationMs: number;
    publishRate: number;
    maxPayloadBytes: number;
    maxSubscriptions: number;
  };
  activeBans: number;
}

async function complianceFacts(ctx: FirewallContext): Promise<FirewallComplianceFacts> {
  const t = ctx.now();
  const activeBans = (await store.listBans(ctx.db)).filter((r) => toView(r, t).active).length;
  const l = ctx.limits;
  return {
    limits: {
      connectRate: l.connectRate,
      maxConnectionsPerAddress: l.maxConnectionsPerAddress,
      failureThreshold: l.failureThreshold,
      banDurationMs: l.banDurationMs,
      publishRate: l.publishRate,
      maxPayloadBytes: l.maxPayloadBytes,
      maxSubscriptions: l.maxSubscriptions,
    },
    activeBans,
  };
}

/**
 * Stored bans (addresses/CIDRs, devices and certificates, with expiry and origin) plus the broker's
 * in-memory firewall. Every ban, also one a firewall rule imposes, is a row here and an event committed with
 * it, so it is listed, applies on every node (others reload on the event from the audit-log tail) and can
 * be lifted.
 */
export function createFirewallService(deps: FirewallServiceDeps) {
  const firewall = createFirewall(deps.limits, deps.now, (ban) => {
    addAutomatic(ctx, ban).catch((err: unknown) => deps.onError?.(err, `storing the ${ban.rule} ban`));
  });
  const ctx: FirewallContext = { ...deps, firewall };

  // Bans made by another process (CLI, another node) arrive as events through the audit-log tail.
  deps.events.on(['firewall.ban_created', 'firewall.ban_removed'], (entry) => {
    if (entry.type === 'firewall.ban_removed' && isBanKind(entry.data.kind))
      firewall.forget(entry.data.kind, entry.data.value);
    void reload(ctx).catch((err: unknown) => deps.onError?.(err, 'reloading bans'));
  });

  return {
    firewall,
    reload: () => reload(ctx),
    addAutomatic: (ban: AutomaticBan) => addAutomatic(ctx, ban),
    async list(): Promise<BanView[]> {
      const t = deps.now();
      return (await store.listBans(deps.db)).map((r) => toView(r, t));
    },
    add: (input: Parameters<typeof add>[1], actor: string) => add(ctx, input, actor),
    remove: (id: string, actor: string) => remove(ctx, id, actor),
    /** For the compliance checks. */
    facts: () => facts(ctx),
    /** The limits in force and the count of active bans, as the compliance facts state them. */
    complianceFacts: () => complianceFacts(ctx),
  };
}

export type FirewallService = ReturnType<typeof createFirewallService>;
