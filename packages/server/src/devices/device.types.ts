import { api } from '@bulwark/protocol';

/** The lifecycle statuses, as the API contract lists them (one list). */
export const deviceStatuses = api.devices.deviceStatuses;
/**
 * `registered`: known, not yet enrolled. `active`: holds a certificate. `disabled`: refused until
 * enabled again. `revoked`: its certificates are revoked; final. `decommissioned`: retired, its data was erased
 * (attributes and tokens gone, the row kept anonymised so the audit log's subject still resolves and its id is
 * never reused); final. `lost`: reported lost or stolen, its certificates revoked; `found` makes it
 * `registered` again (quarantined until released).
 */
export type DeviceStatus = (typeof deviceStatuses)[number];

/**
 * What an operator sees: the lifecycle status, except that quarantine shows over the statuses it restricts.
 * A new status is one line in the contract's `deviceStatuses`:
 * it outranks quarantine unless it is added to `quarantineShowsOver` too.
 */
export const deviceStates = api.devices.deviceStates;
export type DeviceState = (typeof deviceStates)[number];
const quarantineShowsOver: readonly DeviceStatus[] = ['registered', 'active'];

export function effectiveState(status: DeviceStatus, quarantined: boolean): DeviceState {
  return quarantined && quarantineShowsOver.includes(status) ? 'quarantined' : status;
}

/** The statuses a state filter selects, and whether the device must (true) or must not (false) be quarantined. */
export function stateFilter(state: DeviceState): {
  statuses: readonly DeviceStatus[];
  quarantined?: boolean;
} {
  if (state === 'quarantined') return { statuses: quarantineShowsOver, quarantined: true };
  return quarantineShowsOver.includes(state)
    ? { statuses: [state], quarantined: false }
    : { statuses: [state] };
}

export interface Device {
  id: string;
  group: string | null;
  status: DeviceStatus;
  attributes: Record<string, string>;
  createdAt: number;
  updatedAt: number;
  enrolledAt: number | null;
  revokedAt: number | null;
  /** The effective state (status, or `quarantined`). */
  state: DeviceState;
  quarantinedAt: number | null;
  /** Its last MQTT connect or disconnect; while online, it is being heard now. */
  lastSeenAt: number | null;
  online: boolean;
  /** Since when it is connected (null when offline). */
  connectedSince: number | null;
  /** notAfter of its newest certificate that is not revoked (RFC 5280 §4.1.2.5). */
  certificateExpiresAt: number | null;
}

/**
 * The one place that says which device states allow which operation. `lost` allows none of the device's
 * own operations (connect, enroll, reenroll, a new token): only `markFound` and `decommission`.
 */
const allowedStatuses = {
  issueToken: ['registered', 'active'],
  enroll: ['registered', 'active'],
  reenroll: ['active'],
  connect: ['active'],
  setDisabled: ['registered', 'active', 'disabled'],
  revoke: ['registered', 'active', 'disabled'],
  /** Reported lost or stolen: a device in service (a revoked or retired one has nothing left to revoke). */
  markLost: ['registered', 'active', 'disabled'],
  markFound: ['lost'],
  /** Retired from any status but retired: a lost, stolen or revoked device is decommissioned too. */
  decommission: ['registered', 'active', 'disabled', 'revoked', 'lost'],
} as const satisfies Record<string, readonly DeviceStatus[]>;
export type DeviceOperation = keyof typeof allowedStatuses;

export function statusAllows(status: DeviceStatus, operation: DeviceOperation): boolean {
  return (allowedStatuses[operation] as readonly DeviceStatus[]).includes(status);
}

export function allowedFor(operation: DeviceOperation): readonly DeviceStatus[] {
  return allowedStatuses[operation];
}
