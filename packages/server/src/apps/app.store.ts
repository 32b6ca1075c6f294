import type { AppDeliveryStatsTable, AppsTable, AppTokensTable, DbOrTx } from '../store/index.ts';

/** Rows of the apps module's tables (apps, app_tokens, app_delivery_stats); only this module writes them. */

export const appStatuses = ['active', 'revoked'] as const;
export type AppStatus = (typeof appStatuses)[number];

export interface AppRecord {
  name: string;
  purpose: string | null;
  zone: string | null;
  description: string | null;
  status: AppStatus;
  createdAt: number;
  updatedAt: number;
  revokedAt: number | null;
}

export interface AppTokenInfo {
  id: string;
  createdAt: number;
  createdBy: string;
  expiresAt: number | null;
  lastUsedAt: number | null;
  lastUsedFrom: string | null;
  revokedAt: number | null;
}

/** What one broker node counts for one app since it started (cumulative). */
export interface DeliveryReport {
  app: string;
  messages: number;
  bytes: number;
  dropped: number;
  queuedBytes: number;
  connections: number;
}

const num = (v: number | string | bigint | null): number | null => (v === null ? null : Number(v));

export function appOf(row: AppsTable): AppRecord {
  return {
    name: row.name,
    purpose: row.purpose,
    zone: row.zone,
    description: row.description,
    status: row.status === 'revoked' ? 'revoked' : 'active',
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    revokedAt: num(row.revoked_at),
  };
}

export function tokenOf(row: AppTokensTable): AppTokenInfo {
  return {
    id: row.id,
    createdAt: Number(row.created_at),
    createdBy: row.created_by,
    expiresAt: num(row.expires_at),
    lastUsedAt: num(row.last_used_at),
    lastUsedFrom: row.last_used_from,
    revokedAt: num(row.revoked_at),
  };
}

export async function getApp(q: DbOrTx, name: string): Promise<AppRecord | undefined> {
  const row = await q.selectFrom('apps').selectAll().where('name', '=', name).executeTakeFirst();
  return row && appOf(row);
}

export async function listApps(q: DbOrTx): Promise<AppRecord[]> {
  return (await q.selectFrom('apps').selectAll().orderBy('name').execute()).map(appOf);
}

export async function insertApp(q: DbOrTx, app: AppRecord): Promise<void> {
  await q
    .insertInto('apps')
    .values({
      name: app.name,
      purpose: app.purpose,
      zone: app.zone,
      description: app.description,
      status: app.status,
      created_at: app.createdAt,
      updated_at: app.updatedAt,
      revoked_at: app.revokedAt,
    })
    .execute();
}

export async function updateApp(
  q: DbOrTx,
  name: string,
  change: Partial<Pick<AppsTable, 'purpose' | 'zone' | 'description' | 'status' | 'revoked_at'>> & {
    updated_at: number;
  },
): Promise<void> {
  await q.updateTable('apps').set(change).where('name', '=', name).execute();
}

export async function insertToken(q: DbOrTx, row: AppTokensTable): Promise<void> {
  await q.insertInto('app_tokens').values(row).execute();
}

export async function tokensOf(q: DbOrTx, app: string): Promise<AppTokenInfo[]> {
  const rows = await q
    .selectFrom('app_tokens')
    .selectAll()
    .where('app', '=', app)
    .orderBy('created_at')
    .orderBy('id')
    .execute();
  return rows.map(tokenOf);
}

export async function tokenByHash(q: DbOrTx, hash: string): Promise<AppTokensTable | undefined> {
  return q.selectFrom('app_tokens').selectAll().where('token_hash', '=', hash).executeTakeFirst();
}

/** Revokes one token of the app; resolves with whether it was active. */
export async function revokeToken(
  q: DbOrTx,
  token: { app: string; id: string; at: number },
): Promise<boolean> {
  const res = await q
    .updateTable('app_tokens')
    .set({ revoked_at: token.at })
    .where('app', '=', token.app)
    .where('id', '=', token.id)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) > 0;
}

/** Revokes every active token of the app; resolves with how many. */
export async function revokeTokensOf(q: DbOrTx, app: string, at: number): Promise<number> {
  const res = await q
    .updateTable('app_tokens')
    .set({ revoked_at: at })
    .where('app', '=', app)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return Number(res.numUpdatedRows);
}

export async function touchToken(q: DbOrTx, use: { id: string; at: number; from: string }): Promise<void> {
  await q
    .updateTable('app_tokens')
    .set({ last_used_at: use.at, last_used_from: use.from })
    .where('id', '=', use.id)
    .execute();
}

export async function upsertDelivery(
  q: DbOrTx,
  report: { node: string; at: number; stats: readonly DeliveryReport[] },
): Promise<void> {
  for (const s of report.stats) {
    const row: AppDeliveryStatsTable = {
      app: s.app,
      node: report.node,
      messages: s.messages,
      bytes: s.bytes,
      dropped: s.dropped,
      queued_bytes: s.queuedBytes,
      connections: s.connections,
      updated_at: report.at,
    };
    const { app: _app, node: _node, ...counters } = row;
    await q
      .insertInto('app_delivery_stats')
      .values(row)
      .onConflict((oc) => oc.columns(['app', 'node']).doUpdateSet(counters))
      .execute();
  }
}

export async function deliveryRows(q: DbOrTx, app: string): Promise<AppDeliveryStatsTable[]> {
  return q.selectFrom('app_delivery_stats').selectAll().where('app', '=', app).execute();
}
