import type { DeviceService } from '../devices/index.ts';
import type { EventBus, EventRateLimit } from '../events/index.ts';
import type { Db } from '../store/index.ts';
import type { PkiMaterial } from './ca.ts';
import type { LostSeen } from './lost-seen.ts';

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
  /** Work done on the side failed (recording a lost device seen again); the refusal itself is unaffected. */
  onError?: ((err: unknown, what: string) => void) | undefined;
}

/** What the PKI's use cases share: their deps and the rate limit of refusal events. */
export interface PkiContext extends PkiServiceDeps {
  refusals: EventRateLimit;
  /** A lost device's certificate presented again (`device.lost_seen`). */
  lostSeen: Pick<LostSeen, 'seen'>;
}
