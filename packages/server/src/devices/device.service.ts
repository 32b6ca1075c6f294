import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { BulwarkError, deviceIdProblem } from '@bulwark/protocol';
import type { EventBus } from '../events/index.ts';
import type { Db, DbOrTx, DevicesTable } from '../store/index.ts';
import * as store from './device.store.ts';
import {
  allowedFor,
  deviceStatuses,
  statusAllows,
  type Device,
  type DeviceOperation,
  type DeviceStatus,
} from './device.types.ts';

export interface DeviceServiceDeps {
  db: Db;
  events: Pick<EventBus, 'emit'>;
  now: () => number;
  /** Default lifetime of an enrollment token, in ms. */
  tokenTtlMs: number;
}

const groupPattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const TOKEN_PREFIX = 'bwk_';
const MAX_TOKEN_TTL_MS = 30 * 86_400_000;

export const hashToken = (token: string) => createHash('sha256').update(token, 'utf8').digest('hex');

function checkGroup(group: string | null | undefined): string | null {
  if (group === undefined || group === null || group === '') return null;
  if (!groupPattern.test(group)) {
    throw new BulwarkError(
      'validation_failed',
      'group must be 1-64 characters of A-Z a-z 0-9 _ . -, starting with a letter or digit',
    );
  }
  return group;
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
  return new BulwarkError('conflict', `device ${device.id} is ${device.status}: cannot ${operation}`);
}

export function requireStatus(device: Pick<Device, 'id' | 'status'>, operation: DeviceOperation): void {
  if (!statusAllows(device.status, operation)) throw statusRefusal(device, operation);
}

export interface TokenCheck {
  tokenId: string;
  device: Device;
}

export function createDeviceService(deps: DeviceServiceDeps) {
  const { db, events, now } = deps;

  async function require(q: DbOrTx, id: string): Promise<Device> {
    const row = await store.getDeviceRow(q, id);
    if (!row) throw new BulwarkError('not_found', `device ${id} does not exist`);
    return store.toDevice(row);
  }

  /**
   * Inside the caller's transaction: re-checks the state with a conditional write (so a concurrent revoke or
   * disable cannot interleave), applies `changes`, and throws the state's refusal if it does not allow `operation`.
   */
  async function lockStatus(
    trx: DbOrTx,
    id: string,
    operation: DeviceOperation,
    changes: Partial<Omit<DevicesTable, 'id'>> = {},
  ): Promise<void> {
    if (!(await store.updateDevice(trx, id, { updated_at: now(), ...changes }, allowedFor(operation)))) {
      throw statusRefusal(await require(trx, id), operation);
    }
  }

  return {
    lockStatus,

    async add(input: { id: string; group?: string | null | undefined }, actor: string): Promise<Device> {
      const problem = deviceIdProblem(input.id);
      if (problem) throw new BulwarkError('validation_failed', problem);
      const group = checkGroup(input.group);
      const t = now();
      const row = {
        id: input.id,
        group_name: group,
        status: 'registered',
        attributes: '{}',
        created_at: t,
        updated_at: t,
        enrolled_at: null,
        revoked_at: null,
      };
      try {
        await store.insertDevice(db, row);
      } catch (err) {
        if (await store.getDeviceRow(db, input.id)) {
          throw new BulwarkError('conflict', `device ${input.id} already exists`);
        }
        throw err;
      }
      await events.emit({ type: 'device.added', actor, subject: `device:${input.id}`, data: { group } });
      return store.toDevice(row);
    },

    get: (id: string) => require(db, id),

    async find(id: string): Promise<Device | undefined> {
      const row = await store.getDeviceRow(db, id);
      return row && store.toDevice(row);
    },

    async list(
      filter: {
        group?: string | undefined;
        groupsIn?: readonly string[] | undefined;
        status?: string | undefined;
        after?: string | undefined;
        limit?: number | undefined;
      } = {},
    ): Promise<Device[]> {
      if (filter.status !== undefined && !(deviceStatuses as readonly string[]).includes(filter.status)) {
        throw new BulwarkError('validation_failed', `status must be one of ${deviceStatuses.join(', ')}`);
      }
      const limit = filter.limit ?? 1000;
      if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) {
        throw new BulwarkError('validation_failed', 'limit must be an integer from 1 to 10000');
      }
      const rows = await store.listDeviceRows(db, {
        group: filter.group,
        groupsIn: filter.groupsIn,
        status: filter.status as DeviceStatus | undefined,
        after: filter.after,
        limit,
      });
      return rows.map(store.toDevice);
    },

    /** Changes a device's group and/or attributes (attributes are replaced as a whole). */
    async update(
      id: string,
      changes: { group?: string | null | undefined; attributes?: Record<string, string> | undefined },
      actor: string,
    ): Promise<Device> {
      const device = await require(db, id);
      const set: Partial<Omit<DevicesTable, 'id'>> = {};
      const recorded: Record<string, string | null | Record<string, string>> = {};
      if (changes.group !== undefined) {
        set.group_name = checkGroup(changes.group);
        recorded.group = set.group_name;
      }
      if (changes.attributes !== undefined) {
        const entries = Object.entries(changes.attributes);
        if (
          entries.length > 64 ||
          entries.some(
            ([k, v]) => !/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/.test(k) || typeof v !== 'string' || v.length > 256,
          )
        ) {
          throw new BulwarkError(
            'validation_failed',
            'attributes must be at most 64 names (letters, digits, _ . -) with string values of at most 256 characters',
          );
        }
        set.attributes = JSON.stringify(Object.fromEntries(entries.sort(([a], [b]) => a.localeCompare(b))));
        recorded.attributes = JSON.parse(set.attributes) as Record<string, string>;
      }
      if (Object.keys(set).length === 0) return device;
      await store.updateDevice(db, id, { ...set, updated_at: now() });
      await events.emit({
        type: 'device.updated',
        actor,
        subject: `device:${id}`,
        data: { changes: recorded },
      });
      return require(db, id);
    },

    /** A one-time enrollment token, bound to this device, shown once and stored only as a hash. */
    async issueToken(
      id: string,
      actor: string,
      ttlMs = deps.tokenTtlMs,
    ): Promise<{ token: string; expiresAt: number }> {
      if (!Number.isFinite(ttlMs) || ttlMs <= 0 || ttlMs > MAX_TOKEN_TTL_MS) {
        throw new BulwarkError('validation_failed', 'token lifetime must be more than 0 and at most 30 days');
      }
      const device = await require(db, id);
      if (device.status === 'revoked')
        throw new BulwarkError('device_revoked', `device ${id} is revoked and cannot enroll again`);
      if (device.status === 'disabled')
        throw new BulwarkError('device_disabled', `device ${id} is disabled: enable it first`);
      const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
      const t = now();
      const tokenId = randomUUID();
      await store.insertToken(db, {
        id: tokenId,
        device_id: id,
        token_hash: hashToken(token),
        created_at: t,
        expires_at: t + ttlMs,
        used_at: null,
      });
      await events.emit({
        type: 'enrollment.token_issued',
        actor,
        subject: `device:${id}`,
        data: { tokenId, expiresAt: t + ttlMs },
      });
      return { token, expiresAt: t + ttlMs };
    },

    /**
     * Checks a presented token without using it up, so a request refused later (bad CSR) changes nothing.
     * An unknown device and a wrong token get the same answer: the refusal does not reveal which ids exist.
     */
    async checkToken(id: string, token: string): Promise<TokenCheck> {
      const row = await store.findTokenByHash(db, hashToken(token));
      if (!row || row.device_id !== id) {
        throw new BulwarkError('token_invalid', 'enrollment token is not valid for this device id');
      }
      if (row.used_at !== null)
        throw new BulwarkError('token_used', 'enrollment token has already been used');
      if (row.expires_at <= now()) throw new BulwarkError('token_expired', 'enrollment token has expired');
      const device = await require(db, id);
      requireStatus(device, 'enroll');
      return { tokenId: row.id, device };
    },

    /** Uses the token up and marks the device enrolled, inside the caller's transaction. */
    async completeEnrollment(trx: DbOrTx, check: TokenCheck): Promise<void> {
      const t = now();
      if (!(await store.consumeToken(trx, check.tokenId, t))) {
        throw new BulwarkError('token_used', 'enrollment token has already been used');
      }
      const ok = await store.updateDevice(
        trx,
        check.device.id,
        { status: 'active', enrolled_at: t, updated_at: t },
        ['registered', 'active'],
      );
      if (!ok) throw new BulwarkError('conflict', 'device changed state during enrollment; try again');
    },

    async setDisabled(id: string, disabled: boolean, actor: string, reason?: string): Promise<Device> {
      const device = await require(db, id);
      requireStatus(device, 'setDisabled');
      const target: DeviceStatus = disabled ? 'disabled' : device.enrolledAt ? 'active' : 'registered';
      if (device.status === target) return device;
      await lockStatus(db, id, 'setDisabled', { status: target });
      if (disabled) {
        await events.emit({
          type: 'device.disabled',
          actor,
          subject: `device:${id}`,
          data: reason ? { reason } : {},
        });
      } else {
        await events.emit({ type: 'device.enabled', actor, subject: `device:${id}`, data: {} });
      }
      return { ...device, status: target };
    },

    /** Marks the device revoked inside the caller's transaction (pki revokes its certificates alongside). */
    async markRevoked(trx: DbOrTx, id: string): Promise<Device> {
      const device = await require(trx, id);
      if (device.status === 'revoked') throw new BulwarkError('conflict', `device ${id} is already revoked`);
      const t = now();
      await lockStatus(trx, id, 'revoke', { status: 'revoked', revoked_at: t });
      return { ...device, status: 'revoked', revokedAt: t };
    },
  };
}

export type DeviceService = ReturnType<typeof createDeviceService>;
