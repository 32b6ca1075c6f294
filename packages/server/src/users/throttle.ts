import { sql } from 'kysely';
import type { Db, DbOrTx, Tx } from '../store/index.ts';

export interface ThrottleOptions {
  db: Db;
  now: () => number;
  /** Failures after which the key is locked for `lockoutMs`. */
  threshold: number;
  lockoutMs: number;
  /** From this many failures on, the next attempt must wait `backoffBaseMs × 2^(failures − backoffAfter)`. */
  backoffAfter: number;
  backoffBaseMs: number;
}

export interface ThrottleFailure {
  /** Keys that reached the lockout threshold with this failure, and until when each is locked. */
  lockedNow: { key: string; until: number }[];
}

/**
 * Exponential back-off and temporary lockout per key (`account:<name>`, `address:<ip>`), stored in the
 * database so every node sees the same counts. Counts fade after a quiet lockout period.
 */
export function createThrottle(options: ThrottleOptions) {
  const { db, now } = options;

  return {
    /** The back-off and lockout settings (stated in the users module's facts). */
    settings: {
      threshold: options.threshold,
      lockoutMs: options.lockoutMs,
      backoffAfter: options.backoffAfter,
      backoffBaseMs: options.backoffBaseMs,
    },

    /** The time until which any of the keys is blocked, if one is. */
    async blockedUntil(keys: readonly string[]): Promise<number | undefined> {
      const t = now();
      const rows = await db
        .selectFrom('auth_throttle')
        .select(['locked_until'])
        .where('key', 'in', keys)
        .execute();
      const until = Math.max(0, ...rows.map((r) => r.locked_until));
      return until > t ? until : undefined;
    },

    /**
     * Counts a failure against each key. In `tx` when given (the failure's events commit with the counts),
     * else in a transaction of its own.
     */
    async fail(keys: readonly string[], tx?: Tx): Promise<ThrottleFailure> {
      const t = now();
      const lockedNow: ThrottleFailure['lockedNow'] = [];
      const count = async (trx: Tx) => {
        for (const key of keys) {
          const row = await trx
            .selectFrom('auth_throttle')
            .selectAll()
            .where('key', '=', key)
            .executeTakeFirst();
          const stale = row && row.locked_until < t && t - row.updated_at > options.lockoutMs;
          const failures = row && !stale ? row.failures + 1 : 1;
          let lockedUntil = 0;
          if (failures >= options.threshold) {
            lockedUntil = t + options.lockoutMs;
            if (failures === options.threshold || (row?.locked_until ?? 0) < t)
              lockedNow.push({ key, until: lockedUntil });
          } else if (failures >= options.backoffAfter) {
            lockedUntil = t + options.backoffBaseMs * 2 ** (failures - options.backoffAfter);
          }
          await trx
            .insertInto('auth_throttle')
            .values({ key, failures, locked_until: lockedUntil, updated_at: t })
            .onConflict((oc) =>
              oc.column('key').doUpdateSet({ failures, locked_until: lockedUntil, updated_at: t }),
            )
            .execute();
        }
      };
      if (tx) await count(tx);
      else await db.transaction().execute(count);
      return { lockedNow };
    },

    /** Clears the keys' counts (through `q`, the transaction of the success that clears them). */
    async succeed(keys: readonly string[], q: DbOrTx = db): Promise<void> {
      await q.deleteFrom('auth_throttle').where('key', 'in', keys).execute();
    },

    /** Removes entries that are neither locked nor recent (housekeeping). */
    async prune(): Promise<void> {
      const t = now();
      await db
        .deleteFrom('auth_throttle')
        .where('locked_until', '<', t)
        .where(sql<boolean>`${sql.ref('updated_at')} < ${t - options.lockoutMs}`)
        .execute();
    },
  };
}

export type Throttle = ReturnType<typeof createThrottle>;
