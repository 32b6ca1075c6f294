import { BulwarkError } from '@bulwark/protocol';
import type { DbOrTx } from '../store/index.ts';
import * as store from './app.store.ts';

/** The app, or `not_found`. */
export async function requireApp(q: DbOrTx, name: string): Promise<store.AppRecord> {
  const app = await store.getApp(q, name);
  if (!app) throw new BulwarkError('not_found', `app ${name} does not exist`);
  return app;
}

/** A revoked app stays revoked: no new credentials, grants or changes. */
export function requireActive(app: store.AppRecord): store.AppRecord {
  if (app.status === 'revoked') throw new BulwarkError('conflict', `app ${app.name} is revoked`);
  return app;
}
