import { createHash, randomBytes } from 'node:crypto';
import { BulwarkError } from '@bulwark/protocol';
import type { DevicesTable } from '../store/index.ts';
import { statusAllows, type Device, type DeviceOperation } from './device.types.ts';

/** Pure checks and constructors of the devices module: no store, no events. */

const groupPattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const attributeName = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;
const TOKEN_PREFIX = 'bwk_';
const MAX_TOKEN_TTL_MS = 30 * 86_400_000;

export const hashToken = (token: string) => createHash('sha256').update(token, 'utf8').digest('hex');

/** A new one-time enrollment token (shown once; only its hash is stored). */
export const newToken = () => TOKEN_PREFIX + randomBytes(32).toString('base64url');

export function checkGroup(group: string | null | undefined): string | null {
  if (group === undefined || group === null || group === '') return null;
  if (!groupPattern.test(group)) {
    throw new BulwarkError(
      'validation_failed',
      'group must be 1-64 characters of A-Z a-z 0-9 _ . -, starting with a letter or digit',
    );
  }
  return group;
}

/** Validates attributes and returns them as stored: JSON with the names sorted. */
export function checkAttributes(attributes: Record<string, string>): string {
  const entries = Object.entries(attributes);
  if (
    entries.length > 64 ||
    entries.some(([k, v]) => !attributeName.test(k) || typeof v !== 'string' || v.length > 256)
  ) {
    throw new BulwarkError(
      'validation_failed',
      'attributes must be at most 64 names (letters, digits, _ . -) with string values of at most 256 characters',
    );
  }
  return JSON.stringify(Object.fromEntries(entries.sort(([a], [b]) => a.localeCompare(b))));
}

export function checkAttributeNames(names: readonly string[]): void {
  for (const name of names)
    if (!attributeName.test(name))
      throw new BulwarkError(
        'validation_failed',
        `attribute name "${name}" must start with a letter and be at most 64 letters, digits, _ . -`,
      );
}

export function checkTokenTtl(ttlMs: number): void {
  if (!Number.isFinite(ttlMs) || ttlMs <= 0 || ttlMs > MAX_TOKEN_TTL_MS) {
    throw new BulwarkError('validation_failed', 'token lifetime must be more than 0 and at most 30 days');
  }
}

/** Why a device in its current state may not do `operation`. */
export function statusRefusal(
  device: Pick<Device, 'id' | 'status'>,
  operation: DeviceOperation,
): BulwarkError {
  if (device.status === 'revoked')
    return new BulwarkError('device_revoked', `device ${device.id} is revoked`);
  if (device.status === 'disabled')
    return new BulwarkError('device_disabled', `device ${device.id} is disabled: enable it first`);
  if (device.status === 'lost')
    return new BulwarkError(
      'conflict',
      `device ${device.id} is reported lost: cannot ${operation} until it is marked found`,
    );
  if (device.status === 'decommissioned')
    return new BulwarkError('conflict', `device ${device.id} was decommissioned: cannot ${operation}`);
  return new BulwarkError('conflict', `device ${device.id} is ${device.status}: cannot ${operation}`);
}

export function requireStatus(device: Pick<Device, 'id' | 'status'>, operation: DeviceOperation): void {
  if (!statusAllows(device.status, operation)) throw statusRefusal(device, operation);
}

/** A device as registered: not enrolled, never seen. */
export function newDeviceRow(input: {
  id: string;
  group: string | null;
  attributes: string;
  at: number;
}): DevicesTable {
  return {
    id: input.id,
    group_name: input.group,
    status: 'registered',
    attributes: input.attributes,
    created_at: input.at,
    updated_at: input.at,
    enrolled_at: null,
    revoked_at: null,
    quarantined_at: null,
    last_seen_at: null,
    connected_at: null,
    sessions: 0,
    cert_expires_at: null,
  };
}

/** `setAttributes`/`unsetAttributes` applied to the current attributes (an empty value removes the name). */
export function mergeAttributes(
  current: Record<string, string>,
  changes: {
    setAttributes?: Record<string, string> | undefined;
    unsetAttributes?: readonly string[] | undefined;
  },
): Record<string, string> {
  checkAttributeNames([...Object.keys(changes.setAttributes ?? {}), ...(changes.unsetAttributes ?? [])]);
  const merged: Record<string, string> = { ...current };
  for (const [k, v] of Object.entries(changes.setAttributes ?? {})) {
    if (v === '') delete merged[k];
    else merged[k] = v;
  }
  for (const k of changes.unsetAttributes ?? []) delete merged[k];
  return merged;
}
