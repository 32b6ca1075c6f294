import { appCertificateSummaries } from '../pki/index.ts';
import type { AppContext } from './app.context.ts';
import { grantsIn } from './app.grants.ts';
import { requireApp } from './app.lookup.ts';
import * as store from './app.store.ts';

/** An app as the API lists it: its record and its grants. */
export type AppView = store.AppRecord & { grants: string[] };

export interface DeliveryStats {
  messages: number;
  bytes: number;
  dropped: number;
  queuedBytes: number;
  connections: number;
  /** The newest report of any node; null: never reported. */
  updatedAt: number | null;
}

export async function listApps(ctx: AppContext): Promise<AppView[]> {
  const [apps, policies] = await Promise.all([store.listApps(ctx.db), ctx.access.listPolicies()]);
  return apps.map((app) => ({ ...app, grants: grantsIn(policies, app.name) }));
}

export async function getApp(ctx: AppContext, name: string): Promise<AppView> {
  const app = await requireApp(ctx.db, name);
  return { ...app, grants: grantsIn(await ctx.access.listPolicies(), name) };
}

/** What a broker node reports (its counters since it started), stored per node. */
export async function recordDelivery(
  ctx: AppContext,
  report: { node: string; stats: readonly store.DeliveryReport[] },
): Promise<void> {
  await store.upsertDelivery(ctx.db, { node: report.node, at: ctx.now(), stats: report.stats });
}

/** Delivery to the app summed over the nodes that reported it. */
export async function deliveryStats(ctx: AppContext, name: string): Promise<DeliveryStats> {
  const rows = await store.deliveryRows(ctx.db, name);
  const total: DeliveryStats = {
    messages: 0,
    bytes: 0,
    dropped: 0,
    queuedBytes: 0,
    connections: 0,
    updatedAt: null,
  };
  for (const r of rows) {
    total.messages += Number(r.messages);
    total.bytes += Number(r.bytes);
    total.dropped += Number(r.dropped);
    total.queuedBytes += Number(r.queued_bytes);
    total.connections += Number(r.connections);
    total.updatedAt = Math.max(total.updatedAt ?? 0, Number(r.updated_at));
  }
  return total;
}

/** An app with its tokens (never secrets), certificates and delivery. */
export type AppDetail = AppView & {
  tokens: store.AppTokenInfo[];
  certificates: { serial: string; notBefore: number; notAfter: number; revokedAt: number | null }[];
  delivery: DeliveryStats;
};

/** Everything about one app: grants, tokens (never secrets), certificates, delivery. */
export async function describeApp(ctx: AppContext, name: string): Promise<AppDetail> {
  const app = await getApp(ctx, name);
  const [tokens, certificates, delivery] = await Promise.all([
    store.tokensOf(ctx.db, name),
    appCertificateSummaries(ctx.db, name),
    deliveryStats(ctx, name),
  ]);
  return { ...app, tokens, certificates, delivery };
}
