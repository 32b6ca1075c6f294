import { BulwarkError } from '@bulwark/protocol';
import { subjectOf } from '../events/index.ts';
import type { DbOrTx, DevicesTable } from '../store/index.ts';
import { atomically, requireDevice, type DeviceContext } from './device.context.ts';
import { hashToken, requireStatus, statusRefusal } from './device.rules.ts';
import * as store from './device.store.ts';
import { allowedFor, type Device, type DeviceOperation, type DeviceStatus } from './device.types.ts';

/** Lifecycle use cases: enrollment, disable/enable, revocation, quarantine. */

export interface TokenCheck {
  tokenId: string;
  device: Device;
}

/**
 * Inside the caller's transaction: re-checks the state with a conditional write (so a concurrent revoke or
 * disable cannot interleave), applies `changes`, and throws the state's refusal if it does not allow `operation`.
 */
export async function lockStatus(
  ctx: DeviceContext,
  trx: DbOrTx,
  lock: { id: string; operation: DeviceOperation; changes?: Partial<Omit<DevicesTable, 'id'>> },
): Promise<void> {
  const changes = { updated_at: ctx.now(), ...lock.changes };
  if (
    !(await store.updateDevice(trx, { id: lock.id, changes, onlyIfStatusIn: allowedFor(lock.operation) }))
  ) {
    throw statusRefusal(await requireDevice(trx, lock.id), lock.operation);
  }
}

/**
 * Checks a presented token without using it up, so a request refused later (bad CSR) changes nothing.
 * An unknown device and a wrong token get the same answer: the refusal does not reveal which ids exist.
 */
export async function checkToken(
  ctx: DeviceContext,
  presented: { id: string; token: string },
): Promise<TokenCheck> {
  const { id, token } = presented;
  const row = await store.findTokenByHash(ctx.db, hashToken(token));
  if (!row || row.device_id !== id) {
    throw new BulwarkError('token_invalid', 'enrollment token is not valid for this device id');
  }
  if (row.used_at !== null) throw new BulwarkError('token_used', 'enrollment token has already been used');
  if (row.expires_at <= ctx.now()) throw new BulwarkError('token_expired', 'enrollment token has expired');
  const device = await requireDevice(ctx.db, id);
  requireStatus(device, 'enroll');
  return { tokenId: row.id, device };
}

/** Uses the token up and marks the device enrolled, inside the caller's transaction. */
export async function completeEnrollment(ctx: DeviceContext, trx: DbOrTx, check: TokenCheck): Promise<void> {
  const t = ctx.now();
  if (!(await store.consumeToken(trx, check.tokenId, t))) {
    throw new BulwarkError('token_used', 'enrollment token has already been used');
  }
  const ok = await store.updateDevice(trx, {
    id: check.device.id,
    changes: { status: 'active', enrolled_at: t, updated_at: t },
    onlyIfStatusIn: ['registered', 'active'],
  });
  if (!ok) throw new BulwarkError('conflict', 'device changed state during enrollment; try again');
}

/** Disables or enables a device; the change and its event commit together. */
export async function setDisabled(
  ctx: DeviceContext,
  change: { id: string; disabled: boolean; reason?: string | undefined },
  actor: string,
): Promise<Device> {
  const { id, disabled, reason } = change;
  const device = await requireDevice(ctx.db, id);
  requireStatus(device, 'setDisabled');
  const target: DeviceStatus = disabled ? 'disabled' : device.enrolledAt ? 'active' : 'registered';
  if (device.status === target) return device;
  const subject = subjectOf.device(id);
  return atomically(ctx, async (tx, emit) => {
    await lockStatus(ctx, tx, { id, operation: 'setDisabled', changes: { status: target } });
    if (disabled) emit({ type: 'device.disabled', actor, subject, data: reason ? { reason } : {} });
    else emit({ type: 'device.enabled', actor, subject, data: {} });
    return requireDevice(tx, id);
  });
}

/** Marks the device revoked inside the caller's transaction (pki revokes its certificates alongside). */
export async function markRevoked(ctx: DeviceContext, trx: DbOrTx, id: string): Promise<Device> {
  const device = await requireDevice(trx, id);
  if (device.status === 'revoked') throw new BulwarkError('conflict', `device ${id} is already revoked`);
  await lockStatus(ctx, trx, {
    id,
    operation: 'revoke',
    changes: { status: 'revoked', revoked_at: ctx.now() },
  });
  return requireDevice(trx, id);
}

/**
 * Quarantines or releases the device inside the caller's transaction (the access module records the event
 * with it). Resolves false when it already was in that state; a revoked device is refused.
 */
export async function markQuarantined(
  ctx: DeviceContext,
  trx: DbOrTx,
  change: { id: string; quarantined: boolean },
): Promise<boolean> {
  const device = await requireDevice(trx, change.id);
  if (device.status === 'revoked') throw new BulwarkError('device_revoked', `device ${change.id} is revoked`);
  if ((device.quarantinedAt !== null) === change.quarantined) return false;
  const t = ctx.now();
  return store.updateDevice(trx, {
    id: change.id,
    changes: { quarantined_at: change.quarantined ? t : null, updated_at: t },
  });
}
