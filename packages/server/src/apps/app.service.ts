import { checkApp, type AppCheckRequest } from './app.check.ts';
import { issueCertificate } from './app.certificates.ts';
import type { AppContext, AppServiceDeps } from './app.context.ts';
import { appComplianceFacts, appFacts } from './app.facts.ts';
import { addGrant, removeGrant, setGrants } from './app.grants.ts';
import { addApp, revokeApp, updateApp, type AppChange, type NewApp } from './app.lifecycle.ts';
import { appSubjectData } from './app.privacy.ts';
import type { DeliveryReport } from './app.store.ts';
import { createToken, listTokens, revokeToken } from './app.tokens.ts';
import * as views from './app.views.ts';

export type { AppServiceDeps } from './app.context.ts';

/**
 * Applications as principals (docs/apps.md): their record, purpose and zone, grants (the policy
 * `app.<name>` through the access door), credentials (tokens here, certificates through the PKI), the
 * broker's apps check and delivery counters. Every change commits with its event.
 */
export function createAppService(deps: AppServiceDeps) {
  const ctx: AppContext = deps;
  const facts = appFacts(ctx);
  const current = async (name: string) => (await views.getApp(ctx, name)).grants;
  return {
    add: async (input: NewApp, actor: string) => {
      await addApp(ctx, input, actor);
      return views.getApp(ctx, input.name);
    },
    list: () => views.listApps(ctx),
    get: (name: string) => views.getApp(ctx, name),
    /** The app with its tokens, certificates and delivery counters (`app show`). */
    describe: (name: string) => views.describeApp(ctx, name),
    update: async (name: string, change: AppChange, actor: string) => {
      await updateApp(ctx, { name, change, actor, grants: await current(name) });
      return views.getApp(ctx, name);
    },
    setGrants: (name: string, grants: readonly string[], actor: string) =>
      setGrants(ctx, { app: name, grants, actor }),
    grant: (name: string, grant: string, actor: string) => addGrant(ctx, { app: name, grant, actor }),
    /** A grant as text, or its 1-based position in the list. */
    ungrant: (name: string, grant: string, actor: string) => removeGrant(ctx, { app: name, grant, actor }),
    /** Revokes the app with its tokens and certificates; its sessions end within a second. */
    revoke: async (name: string, actor: string, reason?: string) => {
      await revokeApp(ctx, { name, actor, reason });
      return views.getApp(ctx, name);
    },
    createToken: (name: string, options: { ttlMs?: number | undefined }, actor: string) =>
      createToken(ctx, { app: name, ttlMs: options.ttlMs, actor }),
    listTokens: (name: string) => listTokens(ctx, name),
    revokeToken: (name: string, id: string, actor: string) => revokeToken(ctx, { app: name, id, actor }),
    issueCertificate: (name: string, csrPem: string, actor: string) =>
      issueCertificate(ctx, { app: name, csrPem, actor }),
    /** The broker's identify stage, for every app connection. */
    checkApp: (request: AppCheckRequest) => checkApp(ctx, request),
    recordDelivery: (node: string, stats: readonly DeliveryReport[]) =>
      views.recordDelivery(ctx, { node, stats }),
    deliveryStats: (name: string) => views.deliveryStats(ctx, name),
    /** For the compliance checks. */
    facts: () => facts.facts(),
    /** The compliance engine's `apps` source: every app with its purpose and tokens in force. */
    complianceFacts: () => appComplianceFacts(ctx),
    subjectData: appSubjectData(ctx),
  };
}

export type AppService = ReturnType<typeof createAppService>;
