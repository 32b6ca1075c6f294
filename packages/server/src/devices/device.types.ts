export const deviceStatuses = ['registered', 'active', 'disabled', 'revoked'] as const;
/**
 * `registered`: known, not yet enrolled. `active`: holds a certificate. `disabled`: refused until
 * enabled again. `revoked`: its certificates are revoked; final.
 */
export type DeviceStatus = (typeof deviceStatuses)[number];

export interface Device {
  id: string;
  group: string | null;
  status: DeviceStatus;
  attributes: Record<string, string>;
  createdAt: number;
  updatedAt: number;
  enrolledAt: number | null;
  revokedAt: number | null;
}

/** The one place that says which device states allow which operation. */
const allowedStatuses = {
  issueToken: ['registered', 'active'],
  enroll: ['registered', 'active'],
  reenroll: ['active'],
  connect: ['active'],
  setDisabled: ['registered', 'active', 'disabled'],
  revoke: ['registered', 'active', 'disabled'],
} as const satisfies Record<string, readonly DeviceStatus[]>;
export type DeviceOperation = keyof typeof allowedStatuses;

export function statusAllows(status: DeviceStatus, operation: DeviceOperation): boolean {
  return (allowedStatuses[operation] as readonly DeviceStatus[]).includes(status);
}

export function allowedFor(operation: DeviceOperation): readonly DeviceStatus[] {
  return allowedStatuses[operation];
}
