import type { Subject, SubjectData } from '../events/index.ts';
import type { AppContext } from './app.context.ts';
import { describeApp } from './app.views.ts';

/**
 * What the apps module holds about an `app:` subject: the app, its grants, token metadata (never secrets),
 * certificates and delivery counters. An application is not a person: erasure removes nothing (its records
 * are the evidence of what it was allowed); revoking it ends its access.
 */
export function appSubjectData(ctx: AppContext): SubjectData {
  async function exportSubject(subject: Subject): Promise<Record<string, unknown>[]> {
    if (subject.kind !== 'app') return [];
    const found = await describeApp(ctx, subject.id).catch(() => undefined);
    if (!found) return [];
    const { tokens, certificates, delivery, ...app } = found;
    return [
      { record: 'app', ...app },
      ...tokens.map((t) => ({ record: 'app_token', ...t })),
      ...certificates.map((c) => ({ record: 'app_certificate', ...c })),
      { record: 'app_delivery', ...delivery },
    ];
  }
  return {
    module: 'apps',
    exportSubject,
    eraseSubject: () => Promise.resolve({ erased: 0 }),
  };
}
