import type { AccessService } from '../access/index.ts';
import type { DeviceService } from '../devices/index.ts';
import type { EventBus } from '../events/index.ts';
import type { PkiService } from '../pki/index.ts';
import type { Db } from '../store/index.ts';

export interface AppServiceDeps {
  db: Db;
  events: Pick<EventBus, 'emit' | 'atomically'>;
  now: () => number;
  /** Grants are the policy `app.<name>`, attached to the app; zones are access's. */
  access: Pick<AccessService, 'listZones' | 'listPolicies' | 'putAppPolicy' | 'attach' | 'detach'>;
  /**
   * Device ids and app names share one MQTT client-id space (the broker ends an older connection with the
   * same client id): an app may not be named after a device, nor connect as `NAME` while a device has it.
   */
  devices: Pick<DeviceService, 'find'>;
  /** The PKI loads at first use (first start creates it). */
  pki: () => Promise<Pick<PkiService, 'issueAppCertificate'>>;
}

/** What the apps module's use cases share. */
export type AppContext = AppServiceDeps;

/** The transaction handle of `events.atomically`. */
export type Tx = Parameters<Parameters<AppServiceDeps['events']['atomically']>[0]>[0];
