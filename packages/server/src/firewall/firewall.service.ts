import { randomUUID } from 'node:crypto';
import { BulwarkError, deviceIdProblem } from '@bulwark/protocol';
import type { AuditEntry, EventBus } from '../events/index.ts';
import { normalizeSerial } from '../pki/index.ts';
import { cidrSchema } from '../policy/index.ts';
import type { BansTable, Db } from '../store/index.ts';
import {
  banKinds,
  createFirewall,
  type AutomaticBan,
  type Ban,
  type BanKind,
  type FirewallLimits,
} from './firewall.ts';

export interface FirewallServiceDeps {
  db: Db;
  events: Pick<EventBus, 'emit' | 'subscribe'>;
  now: () => number;
  limits: FirewallLimits;
  /** An automatic ban could not be stored (it still holds on this node until it expires). */
  onError?(err: unknown, what: string): void;
}

/** Expired bans stay listed for this long, then they are deleted. */
const EXPIRED_KEPT_MS = 7 * 86_400_000;

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

function toView(r: BansTable, t: number): BanView {
  const automatic = r.origin?.startsWith('automatic:') ?? false;
  return {
    id: r.id,
    kind: r.kind as BanKind,
    value: r.value,
    reason: r.reason,
    origin: automatic ? 'automatic' : 'manual',
    rule: automatic ? r.origin!.slice(10) : null,
    actor: r.actor,
    createdAt: Number(r.created_at),
    expiresAt: r.expires_at === null ? null : Number(r.expires_at),
    active: r.expires_at === null || Number(r.expires_at) > t,
  };
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

/**
 * Stored bans (addresses/CIDRs, devices and certificates, with expiry and origin) plus the broker's
 * in-memory firewall. Every ban, also one a firewall rule imposes, is a row here and an event, so it is
 * listed, applies on every node (others reload on the event from the audit-log tail) and can be lifted.
 */
export function createFirewallService(deps: FirewallServiceDeps) {
  const { db, events, now } = deps;
  const firewall = createFirewall(deps.limits, now, (ban) => {
    addAutomatic(ban).catch((err: unknown) => deps.onError?.(err, `storing the ${ban.rule} ban`));
  });

  async function reload(): Promise<void> {
    const t = now();
    await db
      .deleteFrom('bans')
      .where('expires_at', 'is not', null)
      .where('expires_at', '<', t - EXPIRED_KEPT_MS)
      .execute();
    const rows = await db.selectFrom('bans').selectAll().execute();
    firewall.setBans(
      rows.map((r): Ban => ({
        kind: r.kind as BanKind,
        value: r.value,
        reason: r.reason,
        expiresAt: r.expires_at === null ? null : Number(r.expires_at),
      })),
    );
  }

  // Bans made by another process (CLI, another node) arrive as events through the audit-log tail.
  events.subscribe((entry: AuditEntry) => {
    if (entry.type === 'firewall.ban_removed') {
      const { kind, value } = entry.data as { kind: BanKind; value: string };
      firewall.forget(kind, value);
    }
    if (entry.type === 'firewall.ban_created' || entry.type === 'firewall.ban_removed')
      void reload().catch((err: unknown) => deps.onError?.(err, 'reloading bans'));
  });

  async function insert(row: BansTable, rule?: string) {
    await db.insertInto('bans').values(row).execute();
    await reload();
    await events.emit({
      type: 'firewall.ban_created',
      actor: row.actor,
      subject: `${row.kind}:${row.value}`,
      data: {
        id: row.id,
        kind: row.kind,
        value: row.value,
        reason: row.reason,
        expiresAt: row.expires_at,
        origin: rule ? 'automatic' : 'manual',
        ...(rule ? { rule } : {}),
      },
    });
    return toView(row, now());
  }

  /** A ban a firewall rule decided on (already in force on this node): stored, listed, shared. */
  async function addAutomatic(ban: AutomaticBan) {
    return insert(
      {
        id: randomUUID(),
        kind: ban.kind,
        value: ban.value,
        reason: ban.reason,
        actor: 'system',
        origin: `automatic:${ban.rule}`,
        created_at: now(),
        expires_at: ban.until,
      },
      ban.rule,
    );
  }

  return {
    firewall,
    reload,
    addAutomatic,

    async list(): Promise<BanView[]> {
      const t = now();
      const rows = await db.selectFrom('bans').selectAll().orderBy('created_at').execute();
      return rows.map((r) => toView(r, t));
    },

    async add(
      input: { kind: string; value: string; reason: string; ttlMs?: number | undefined },
      actor: string,
    ): Promise<BanView> {
      const value = validValue(input.kind, String(input.value ?? '').trim());
      const reason = String(input.reason ?? '').trim();
      if (!reason || reason.length > 256)
        throw new BulwarkError('validation_failed', 'a reason of 1-256 characters is required');
      if (input.ttlMs !== undefined && !(input.ttlMs > 0 && input.ttlMs <= 365 * 86_400_000))
        throw new BulwarkError('validation_failed', 'ttl must be more than 0 and at most 365 days');
      const t = now();
      return insert({
        id: randomUUID(),
        kind: input.kind,
        value,
        reason,
        actor,
        origin: 'manual',
        created_at: t,
        expires_at: input.ttlMs ? t + input.ttlMs : null,
      });
    },

    async remove(id: string, actor: string) {
      const row = await db.selectFrom('bans').selectAll().where('id', '=', id).executeTakeFirst();
      if (!row) throw new BulwarkError('not_found', `no ban ${id}`);
      await db.deleteFrom('bans').where('id', '=', id).execute();
      firewall.forget(row.kind as BanKind, row.value);
      await reload();
      await events.emit({
        type: 'firewall.ban_removed',
        actor,
        subject: `${row.kind}:${row.value}`,
        data: {
          id: row.id,
          kind: row.kind,
          value: row.value,
          origin: row.origin?.startsWith('automatic:') ? 'automatic' : 'manual',
        },
      });
    },
  };
}

export type FirewallService = ReturnType<typeof createFirewallService>;
