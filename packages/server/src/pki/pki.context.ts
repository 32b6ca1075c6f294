import type { DeviceService } from '../devices/index.ts';
import type { EventBus, EventRateLimit } from '../events/index.ts';
import type { Db } from '../store/index.ts';
import type { PkiMaterial } from './ca.ts';

export interface PkiServiceDeps {
  db: Db;
  material: PkiMaterial;
  devices: Pick<
    DeviceService,
    'checkToken' | 'completeEnrollment' | 'markRevoked' | 'find' | 'lockStatus' | 'list'
  >;
  events: Pick<EventBus, 'emit' | 'atomically'>;
  now: () => number;
  deviceCertValidityMs: number;
}

/** What the PKI's use cases share: their deps and the rate limit of refusal events. */
export interface PkiContext extends PkiServiceDeps {
  refusals: EventRateLimit;
}
