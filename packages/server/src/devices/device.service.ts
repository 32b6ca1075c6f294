import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { BulwarkError, deviceIdProblem } from '@bulwark/protocol';
import type { AuditEntry, AuditLog, EventBus } from '../events/index.ts';
import type { Db, DbOrTx, DevicesTable } from '../store/index.ts';
import * as store from './device.store.ts';
import {
  allowedFor,
  deviceStates,
  deviceStatuses,
  statusAllows,
  type Device,
  type DeviceOperation,
  type DeviceState,
  type DeviceStatus,
} from './device.types.ts';

export interface DeviceServiceDeps {
  db: Db;
  events: Pick<EventBus, 'emit'>;
  now: () => number;
  /** Default lifetime of an enrollment token, in ms. */
  tokenTtlMs: number;
  /** Where a device's refusals are read from. */
  audit?: Pick<AuditLog, 'query'> | undefined;
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

/** A refusal recorded in the audit log about the device: why a publish "succeeded" but nothing arrived. */
export interface DeviceDenial {
  at: number;
  type: 'mqtt.publish_denied' | 'mqtt.subscribe_denied' | 'mqtt.connect_refused';
  topic: string | null;
  reason: string;
}

/** Facts other modules hold about a device; the composition root binds them (the consumer names them here). */
export interface DeviceFacts {
  /** Which zone a device is in (the access module's zones), read once for a whole list. */
  zones(): Promise<(device: Device) => string | null>;
  /** What the device last reported it runs (the firmware module). */
  firmwareOf(deviceId: string): Promise<{ version: string | null; reportedAt: number } | undefined>;
}

const denialTypes = ['mqtt.publish_denied', 'mqtt.subscribe_denied', 'mqtt.connect_refused'] as const;
/**
 * How far back `device show` looks for refusals: the last hour first, then the day, then the week, so the
 * latest are found without reading a week of a noisy device; at most this many pages per type and span.
 */
const DENIAL_SPANS_MS = [3_600_000, 86_400_000, 7 * 86_400_000];
const DENIAL_PAGES = 20;

/** A device as the operator sees it: its own state and what the other modules know about it. */
export interface DeviceView extends Device {
  zone: string | null;
  firmwareVersion: string | null;
  firmwareReportedAt: number | null;
}

const attributeName = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;

/** Validates attributes and returns them as stored: JSON with the names sorted. */
function checkAttributes(attributes: Record<string, string>): string {
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

function checkTokenTtl(ttlMs: number): void {
  if (!Number.isFinite(ttlMs) || ttlMs <= 0 || ttlMs > MAX_TOKEN_TTL_MS) {
    throw new BulwarkError('validation_failed', 'token lifetime must be more than 0 and at most 30 days');
  }
}

export interface TokenCheck {
  tokenId: string;
  device: Device;
}

/** A device as registered: not enrolled, never seen. */
function newDeviceRow(id: string, group: string | null, attributes: string, t: number): DevicesTable {
  return {
    id,
    group_name: group,
    status: 'registered',
    attributes,
    created_at: t,
    updated_at: t,
    enrolled_at: null,
    revoked_at: null,
    quarantined_at: null,
    last_seen_at: null,
    connected_at: null,
    sessions: 0,
    cert_expires_at: null,
  };
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

  let facts: DeviceFacts | undefined;

  /**
   * The device's latest refusals, newest first. MQTT 3.1.1 has no way to refuse a QoS 0/1 PUBLISH
   * ([MQTT-3.3.5-2]: acknowledge and drop, or close): the client's side says "sent", the audit log says why.
   */
  async function denials(id: string, limit: number): Promise<DeviceDenial[]> {
    if (!deps.audit) return [];
    const found: AuditEntry<DeviceDenial['type']>[] = [];
    const t = now();
    for (const type of denialTypes) {
      const latest: AuditEntry<DeviceDenial['type']>[] = [];
      let to = t + 1;
      for (const span of DENIAL_SPANS_MS) {
        if (latest.length >= limit) break;
        const from = t - span;
        const older: AuditEntry<DeviceDenial['type']>[] = [];
        let after: number | undefined;
        for (let page = 0; page < DENIAL_PAGES; page++) {
          const entries = await deps.audit.query({
            type,
            subject: `device:${id}`,
            from,
            to,
            after,
            limit: 500,
          });
          older.push(...entries);
          older.splice(0, Math.max(0, older.length - limit));
          if (entries.length < 500) break;
          after = entries[entries.length - 1]?.seq;
        }
        latest.unshift(...older.slice(-(limit - latest.length)));
        to = from;
      }
      found.push(...latest);
    }
    // Newest first, in the log's own order (several refusals can share a millisecond).
    return found
      .sort((a, b) => b.seq - a.seq)
      .slice(0, limit)
      .map((e) => ({
        at: e.ts,
        type: e.type,
        topic: 'topic' in e.data ? e.data.topic : null,
        reason: e.data.reason,
      }));
  }

  async function views(list: Device[]): Promise<DeviceView[]> {
    const zoneOf = facts ? await facts.zones() : () => null;
    const out: DeviceView[] = [];
    for (const device of list) {
      const firmware = await facts?.firmwareOf(device.id);
      out.push({
        ...device,
        zone: zoneOf(device),
        firmwareVersion: firmware?.version ?? null,
        firmwareReportedAt: firmware?.reportedAt ?? null,
      });
    }
    return out;
  }

  /** Session and certificate events keep the device's operational state current (see `follow`). */
  async function onEntry(q: DbOrTx, entry: AuditEntry): Promise<void> {
    const id = entry.subject?.startsWith('device:') ? entry.subject.slice(7) : undefined;
    if (!id) return;
    if (entry.type === 'mqtt.connected') await store.recordConnected(q, id, entry.ts);
    else if (entry.type === 'mqtt.disconnected' || entry.type === 'mqtt.session_dropped')
      await store.recordDisconnected(q, id, entry.ts);
    else if (entry.type === 'certificate.issued' && typeof entry.data.notAfter === 'number')
      await store.recordCertificate(q, id, entry.data.notAfter);
  }

  return {
    lockStatus,

    /** Binds the facts other modules hold (zone, firmware); until then they read as unknown. */
    setFacts(bound: DeviceFacts) {
      facts = bound;
    },

    /**
     * In the server: follows session and certificate events so the device's last-seen time, online flag
     * and certificate expiry can be read by any process (the CLI has no broker). Counts left by a crash are
     * cleared first: nothing is connected before the broker listens. One broker node per store.
     */
    async follow(bus: Pick<EventBus, 'subscribe'>, onError: (err: unknown) => void): Promise<() => void> {
      await store.clearSessions(db);
      // In order (a disconnect never overtakes the connect before it), and in batches: what arrives while one
      // transaction commits goes into the next, so a connection storm costs a few durable commits, not one
      // per connection on the broker's event loop.
      let pending: AuditEntry[] = [];
      let draining = false;
      const drain = async () => {
        draining = true;
        while (pending.length > 0) {
          const batch = pending;
          pending = [];
          try {
            await db.transaction().execute(async (trx) => {
              for (const entry of batch) await onEntry(trx, entry);
            });
          } catch (err) {
            onError(err);
          }
        }
        draining = false;
      };
      return bus.subscribe((entry) => {
        if (
          entry.type !== 'mqtt.connected' &&
          entry.type !== 'mqtt.disconnected' &&
          entry.type !== 'mqtt.session_dropped' &&
          entry.type !== 'certificate.issued'
        )
          return;
        pending.push(entry);
        if (!draining) void drain();
      });
    },

    /** Devices with their zone and firmware version. */
    views,

    /** One device with its zone and firmware, and its latest refusals. */
    async show(id: string, limit = 10): Promise<DeviceView & { recentDenials: DeviceDenial[] }> {
      const [device] = await views([await require(db, id)]);
      if (!device) throw new BulwarkError('not_found', `device ${id} does not exist`);
      return { ...device, recentDenials: await denials(id, limit) };
    },

    async add(input: { id: string; group?: string | null | undefined }, actor: string): Promise<Device> {
      const problem = deviceIdProblem(input.id);
      if (problem) throw new BulwarkError('validation_failed', problem);
      const group = checkGroup(input.group);
      const row = newDeviceRow(input.id, group, '{}', now());
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

    /**
     * Registers a device with its group and attributes and issues its enrollment token, all or nothing (one
     * transaction): a bulk import never leaves a device without its token or without its attributes.
     */
    async addWithToken(
      input: {
        id: string;
        group?: string | null | undefined;
        attributes?: Record<string, string> | undefined;
      },
      actor: string,
      ttlMs = deps.tokenTtlMs,
    ): Promise<{ device: Device; token: string; expiresAt: number }> {
      const problem = deviceIdProblem(input.id);
      if (problem) throw new BulwarkError('validation_failed', problem);
      const group = checkGroup(input.group);
      const attributes = checkAttributes(input.attributes ?? {});
      checkTokenTtl(ttlMs);
      const row = newDeviceRow(input.id, group, attributes, now());
      const t = row.created_at;
      const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
      const tokenId = randomUUID();
      if (await store.getDeviceRow(db, input.id))
        throw new BulwarkError('conflict', `device ${input.id} already exists`);
      try {
        await db.transaction().execute(async (trx) => {
          await store.insertDevice(trx, row);
          await store.insertToken(trx, {
            id: tokenId,
            device_id: input.id,
            token_hash: hashToken(token),
            created_at: t,
            expires_at: t + ttlMs,
            used_at: null,
          });
        });
      } catch (err) {
        if (await store.getDeviceRow(db, input.id))
          throw new BulwarkError('conflict', `device ${input.id} already exists`);
        throw err;
      }
      const subject = `device:${input.id}`;
      await events.emit({ type: 'device.added', actor, subject, data: { group } });
      if (attributes !== '{}')
        await events.emit({
          type: 'device.updated',
          actor,
          subject,
          data: { changes: { attributes: JSON.parse(attributes) as Record<string, string> } },
        });
      await events.emit({
        type: 'enrollment.token_issued',
        actor,
        subject,
        data: { tokenId, expiresAt: t + ttlMs },
      });
      return { device: store.toDevice(row), token, expiresAt: t + ttlMs };
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
        /** The effective state: a status, or `quarantined`. */
        state?: string | undefined;
        after?: string | undefined;
        limit?: number | undefined;
      } = {},
    ): Promise<Device[]> {
      if (filter.status !== undefined && !(deviceStatuses as readonly string[]).includes(filter.status)) {
        throw new BulwarkError('validation_failed', `status must be one of ${deviceStatuses.join(', ')}`);
      }
      if (filter.state !== undefined && !(deviceStates as readonly string[]).includes(filter.state)) {
        throw new BulwarkError(
          'validation_failed',
          `state must be one of ${deviceStates.join(', ')}, not "${filter.state}"`,
        );
      }
      const limit = filter.limit ?? 1000;
      if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) {
        throw new BulwarkError('validation_failed', 'limit must be an integer from 1 to 10000');
      }
      const rows = await store.listDeviceRows(db, {
        group: filter.group,
        groupsIn: filter.groupsIn,
        status: filter.status as DeviceStatus | undefined,
        state: filter.state as DeviceState | undefined,
        after: filter.after,
        limit,
      });
      return rows.map(store.toDevice);
    },

    /**
     * Changes a device's group and/or attributes: `attributes` replaces them as a whole; `setAttributes` and
     * `unsetAttributes` change only the names given (an empty value in `setAttributes` removes the name).
     */
    async update(
      id: string,
      changes: {
        group?: string | null | undefined;
        attributes?: Record<string, string> | undefined;
        setAttributes?: Record<string, string> | undefined;
        unsetAttributes?: readonly string[] | undefined;
      },
      actor: string,
    ): Promise<Device> {
      const device = await require(db, id);
      if (changes.setAttributes !== undefined || changes.unsetAttributes !== undefined) {
        if (changes.attributes !== undefined)
          throw new BulwarkError(
            'validation_failed',
            'give either attributes or set/unset attributes, not both',
          );
        for (const name of [...Object.keys(changes.setAttributes ?? {}), ...(changes.unsetAttributes ?? [])])
          if (!attributeName.test(name))
            throw new BulwarkError(
              'validation_failed',
              `attribute name "${name}" must start with a letter and be at most 64 letters, digits, _ . -`,
            );
        const merged: Record<string, string> = { ...device.attributes };
        for (const [k, v] of Object.entries(changes.setAttributes ?? {})) {
          if (v === '') delete merged[k];
          else merged[k] = v;
        }
        for (const k of changes.unsetAttributes ?? []) delete merged[k];
        changes = { group: changes.group, attributes: merged };
      }
      const set: Partial<Omit<DevicesTable, 'id'>> = {};
      const recorded: Record<string, string | null | Record<string, string>> = {};
      if (changes.group !== undefined) {
        set.group_name = checkGroup(changes.group);
        recorded.group = set.group_name;
      }
      if (changes.attributes !== undefined) {
        set.attributes = checkAttributes(changes.attributes);
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
      checkTokenTtl(ttlMs);
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
      return require(db, id);
    },

    /** Marks the device revoked inside the caller's transaction (pki revokes its certificates alongside). */
    async markRevoked(trx: DbOrTx, id: string): Promise<Device> {
      const device = await require(trx, id);
      if (device.status === 'revoked') throw new BulwarkError('conflict', `device ${id} is already revoked`);
      const t = now();
      await lockStatus(trx, id, 'revoke', { status: 'revoked', revoked_at: t });
      return require(trx, id);
    },
  };
}

export type DeviceService = ReturnType<typeof createDeviceService>;
