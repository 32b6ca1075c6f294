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
