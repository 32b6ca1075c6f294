import type { AppContext } from './app.context.ts';
import { requireActive, requireApp } from './app.lookup.ts';

/**
 * Signs the app's client certificate from its CSR (the key stays with the app). The app must be active,
 * checked again in the transaction that stores the certificate: a revocation meanwhile wins.
 */
export async function issueCertificate(
  ctx: AppContext,
  request: { app: string; csrPem: string; actor: string },
) {
  const { app, csrPem, actor } = request;
  requireActive(await requireApp(ctx.db, app));
  const pki = await ctx.pki();
  return pki.issueAppCertificate({
    app,
    csrPem,
    actor,
    check: async (tx) => {
      requireActive(await requireApp(tx, app));
    },
  });
}
