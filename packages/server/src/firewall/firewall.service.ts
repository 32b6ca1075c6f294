import { randomUUID } from 'node:crypto';
import { BulwarkError, deviceIdProblem } from '@bulwark/protocol';
import type { AuditEntry, EventBus } from '../events/index.ts';
import { cidrSchema } from '../policy/index.ts';
import type { Db } from '../store/index.ts';
import { createFirewall, type Ban, type FirewallLimits } from './firewall.ts';

export interface FirewallServiceDeps {
  db: Db;
  events: Pick<EventBus, 'emit' | 'subscribe'>;
  now: () => number;
  limits: FirewallLimits;
}

/** Persistent bans (addresses/CIDRs and devices, with expiry) plus the broker's in-memory firewall. */
export function createFirewallService(deps: FirewallServiceDeps) {
  const { db, events, now } = deps;
  const firewall = createFirewall(deps.limits, now);

  async function reload(): Promise<void> {
    const rows = await db.selectFrom('bans').selectAll().execute();
    firewall.setBans(
      rows.map((r) => ({
        kind: r.kind as Ban['kind'],
        value: r.value,
        reason: r.reason,
        expiresAt: r.expires_at,
      })),
    );
  }

  // Bans made by another process (CLI, another node) arrive as events through the audit-log tail.
  events.subscribe((entry: AuditEntry) => {
    if (entry.type === 'firewall.ban_created' || entry.type === 'firewall.ban_removed')
      void reload().catch(() => undefined);
  });

  return {
    firewall,
    reload,

    async list() {
      const t = now();
      const rows = await db.selectFrom('bans').selectAll().orderBy('created_at').execute();
      return rows.map((r) => ({
        id: r.id,
        kind: r.kind,
        value: r.value,
        reason: r.reason,
        actor: r.actor,
        createdAt: r.created_at,
        expiresAt: r.expires_at,
        active: r.expires_at === null || r.expires_at > t,
      }));
    },

    async add(
      input: { kind: string; value: string; reason: string; ttlMs?: number | undefined },
      actor: string,
    ) {
      if (input.kind === 'address') {
        if (!cidrSchema.safeParse(input.value).success)
          throw new BulwarkError(
            'validation_failed',
            'value must be an IP address or CIDR such as 203.0.113.0/24',
          );
      } else if (input.kind === 'device') {
        const problem = deviceIdProblem(input.value);
        if (problem) throw new BulwarkError('validation_failed', problem);
      } else throw new BulwarkError('validation_failed', 'kind must be address or device');
      const reason = String(input.reason ?? '').trim();
      if (!reason || reason.length > 256)
        throw new BulwarkError('validation_failed', 'a reason of 1-256 characters is required');
      if (input.ttlMs !== undefined && !(input.ttlMs > 0 && input.ttlMs <= 365 * 86_400_000))
        throw new BulwarkError('validation_failed', 'ttl must be more than 0 and at most 365 days');
      const t = now();
      const row = {
        id: randomUUID(),
        kind: input.kind,
        value: input.value,
        reason,
        actor,
        created_at: t,
        expires_at: input.ttlMs ? t + input.ttlMs : null,
      };
      await db.insertInto('bans').values(row).execute();
      await reload();
      await events.emit({
        type: 'firewall.ban_created',
        actor,
        subject: `${row.kind}:${row.value}`,
        data: { kind: row.kind, value: row.value, reason, expiresAt: row.expires_at },
      });
      return { id: row.id, kind: row.kind, value: row.value, reason, expiresAt: row.expires_at };
    },

    async remove(id: string, actor: string) {
      const row = await db.selectFrom('bans').selectAll().where('id', '=', id).executeTakeFirst();
      if (!row) throw new BulwarkError('not_found', `no ban ${id}`);
      await db.deleteFrom('bans').where('id', '=', id).execute();
      await reload();
      await events.emit({
        type: 'firewall.ban_removed',
        actor,
        subject: `${row.kind}:${row.value}`,
        data: { kind: row.kind, value: row.value },
      });
    },
  };
}

export type FirewallService = ReturnType<typeof createFirewallService>;
