import type { AccessService } from '../access/index.ts';
import type { EventBus } from '../events/index.ts';
import type { PkiService } from '../pki/index.ts';
import type { Db } from '../store/index.ts';

export interface AppServiceDeps {
  db: Db;
  events: Pick<EventBus, 'emit' | 'atomically'>;
  now: () => number;
  /** Grants are the policy `app.<name>`, attached to the app; zones are access's. */
  access: Pick<AccessService, 'listZones' | 'listPolicies' | 'putAppPolicy' | 'attach' | 'detach'>;
  /** The PKI loads at first use (first start creates it). */
  pki: () => Promise<Pick<PkiService, 'issueAppCertificate'>>;
}

/** What the apps module's use cases share. */
export type AppContext = AppServiceDeps;

/** The transaction handle of `events.atomically`. */
export type Tx = Parameters<Parameters<AppServiceDeps['events']['atomically']>[0]>[0];
