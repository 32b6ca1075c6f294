import { randomUUID } from 'node:crypto';
import type { z } from 'zod';
import type { api } from '@bulwark/protocol';
import type { DbOrTx, RiskRegisterTable } from '../store/index.ts';
import type { RiskFactor, RiskInputs } from './register.live.ts';
import type { Feasibility, ImpactLevel, Treatment } from './tara-method.ts';

/** The register's rows (risk_register) and their history (risk_history), owned by risk. */

export type RegisterRisk = z.infer<typeof api.riskRegister.registerRisk>;
export type RiskHistoryEntry = z.infer<typeof api.riskRegister.riskHistoryEntry>;
export type RiskStatus = RegisterRisk['status'];

export function toRisk(row: RiskRegisterTable): RegisterRisk {
  return {
    id: row.id,
    title: row.title,
    source: JSON.parse(row.source) as RegisterRisk['source'],
    assets: JSON.parse(row.assets) as string[],
    owner: row.owner,
    treatment: row.treatment as Treatment,
    controls: JSON.parse(row.controls) as string[],
    checks: JSON.parse(row.checks) as string[],
    due: row.due,
    status: row.status as RiskStatus,
    impact: row.impact as ImpactLevel,
    baseFeasibility: row.base_feasibility as Feasibility,
    baseRisk: Number(row.base_risk),
    feasibility: row.feasibility as Feasibility,
    risk: Number(row.risk),
    raised: Number(row.raised) === 1,
    factors: JSON.parse(row.factors) as RiskFactor[],
    assessedAt: Number(row.assessed_at),
    reviewDueAt: Number(row.review_due_at),
    updatedAt: Number(row.updated_at),
  };
}

export const inputsOf = (r: RegisterRisk): RiskInputs => ({
  source: r.source,
  assets: r.assets,
  checks: r.checks,
  impact: r.impact,
  baseFeasibility: r.baseFeasibility,
});

export async function allRows(q: DbOrTx): Promise<RiskRegisterTable[]> {
  return q.selectFrom('risk_register').selectAll().execute();
}

export async function rowById(q: DbOrTx, id: string): Promise<RiskRegisterTable | undefined> {
  return q.selectFrom('risk_register').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function rowByKey(q: DbOrTx, key: string): Promise<RiskRegisterTable | undefined> {
  return q.selectFrom('risk_register').selectAll().where('source_key', '=', key).executeTakeFirst();
}

/** The next `R-<n>` id (n one above the highest so far). */
export async function nextRiskId(q: DbOrTx): Promise<string> {
  const rows = await q.selectFrom('risk_register').select('id').execute();
  const highest = rows.reduce((n, r) => Math.max(n, Number(r.id.slice(2)) || 0), 0);
  return `R-${highest + 1}`;
}

export async function addHistory(
  q: DbOrTx,
  entry: {
    riskId: string;
    at: number;
    actor: string;
    change: string;
    from: number | null;
    to: number | null;
    detail: Record<string, unknown>;
  },
): Promise<void> {
  const last = await q
    .selectFrom('risk_history')
    .select((eb) => eb.fn.max('seq').as('seq'))
    .where('risk_id', '=', entry.riskId)
    .executeTakeFirst();
  await q
    .insertInto('risk_history')
    .values({
      id: randomUUID(),
      risk_id: entry.riskId,
      seq: Number(last?.seq ?? 0) + 1,
      at: entry.at,
      actor: entry.actor,
      change: entry.change,
      from_risk: entry.from,
      to_risk: entry.to,
      detail: JSON.stringify(entry.detail),
    })
    .execute();
}

export async function historyOf(q: DbOrTx, riskId: string, limit = 500): Promise<RiskHistoryEntry[]> {
  const rows = await q
    .selectFrom('risk_history')
    .selectAll()
    .where('risk_id', '=', riskId)
    .orderBy('seq', 'desc')
    .limit(limit)
    .execute();
  return rows.map((r) => ({
    at: Number(r.at),
    actor: r.actor,
    change: r.change,
    from: r.from_risk === null ? null : Number(r.from_risk),
    to: r.to_risk === null ? null : Number(r.to_risk),
    detail: JSON.parse(r.detail) as Record<string, unknown>,
  }));
}

/** Highest live risk first, then the most raised, then id order. */
export const byRisk = (a: RegisterRisk, b: RegisterRisk) =>
  b.risk - a.risk ||
  b.risk - b.baseRisk - (a.risk - a.baseRisk) ||
  Number(a.id.slice(2)) - Number(b.id.slice(2));
