import type { Logger } from 'pino';
import { deviceIdOf, type AuditEntry, type EventBus } from '../events/index.ts';
import { addressIn, type DeviceAccess } from '../policy/index.ts';
import type { DropCause } from './sessions.ts';
import type { BrokerSession } from './stages.ts';

/** The part of the session registry the watchers act on. */
export interface WatchedSessions {
  list(): [string, BrokerSession][];
  sessionOf(deviceId: string): BrokerSession | undefined;
  drop(deviceId: string, cause: DropCause): void;
}

const dropEvents = [
  'firewall.ban_created',
  'device.revoked',
  'device.disabled',
  'certificate.revoked',
] as const;
type DropEvent = (typeof dropEvents)[number];

/**
 * Revocations, disables and bans reach the broker as events, from this process or (via the audit-log tail)
 * any other, and end the sessions they concern. Returns the unsubscribe.
 */
export function watchRevocations(deps: {
  events: Pick<EventBus, 'on'>;
  sessions: WatchedSessions;
  /** A certificate was revoked: the listener's CRLs are read again. */
  refreshCrls(): void;
}): () => void {
  const { sessions } = deps;
  /** A new ban also ends sessions that are already open. */
  function banned(entry: AuditEntry<'firewall.ban_created'>, trigger: string): void {
    const { kind, value } = entry.data;
    if (kind === 'device') {
      sessions.drop(value, { reason: 'device banned', trigger });
      return;
    }
    for (const [id, s] of sessions.list()) {
      if (kind === 'certificate' && s.serial === value)
        sessions.drop(id, { reason: 'certificate banned', trigger, serial: value });
      else if (kind !== 'certificate' && addressIn([value], s.remoteAddress))
        sessions.drop(id, { reason: 'address banned', trigger });
    }
  }
  return deps.events.on(dropEvents, (entry: AuditEntry<DropEvent>) => {
    const trigger = `audit:${entry.seq}`;
    if (entry.type === 'firewall.ban_created') {
      banned(entry, trigger);
      return;
    }
    const deviceId = deviceIdOf(entry.subject);
    if (!deviceId) return;
    if (entry.type === 'device.revoked') sessions.drop(deviceId, { reason: 'device revoked', trigger });
    else if (entry.type === 'device.disabled')
      sessions.drop(deviceId, { reason: 'device disabled', trigger });
    else {
      deps.refreshCrls();
      sessions.drop(deviceId, { reason: 'certificate revoked', trigger, serial: entry.data.serial });
    }
  });
}

/**
 * Policy, zone and quarantine changes recompile the access of live sessions, so they apply within a second:
 * one device at once when only it changed, all of them (coalesced) otherwise. Returns the unsubscribe.
 */
export function watchAccessChanges(deps: {
  onAccessChange(listener: (deviceId?: string) => void): () => void;
  accessFor(identity: {
    deviceId: string;
    remoteAddress: string | null;
    certSubject: Record<string, string>;
    anonymous?: boolean;
  }): Promise<DeviceAccess>;
  sessions: WatchedSessions;
  logger: Pick<Logger, 'error'>;
}): () => void {
  const { sessions, logger } = deps;
  const policyChange = (reason: string) => ({ reason, trigger: 'policy change' });

  async function recompileOne(deviceId: string): Promise<void> {
    const session = sessions.sessionOf(deviceId);
    if (!session) return;
    try {
      const access = await deps.accessFor({
        deviceId,
        remoteAddress: session.remoteAddress,
        certSubject: session.certSubject,
        anonymous: session.anonymous,
      });
      if (!session.active) return;
      session.access = access;
      const connect = access.connect();
      if (!connect.allow)
        sessions.drop(deviceId, policyChange(`connect no longer allowed: ${connect.reason}`));
    } catch (err) {
      logger.error({ err, deviceId }, 'cannot recompile access; dropping the session');
      sessions.drop(deviceId, policyChange('access could not be recompiled'));
    }
  }

  let recompiling = false;
  let again = false;
  async function recompileAll(): Promise<void> {
    if (recompiling) {
      again = true;
      return;
    }
    recompiling = true;
    try {
      do {
        again = false;
        for (const [deviceId] of sessions.list()) await recompileOne(deviceId);
      } while (again);
    } finally {
      recompiling = false;
    }
  }

  return deps.onAccessChange((deviceId) => {
    if (deviceId !== undefined) {
      recompileOne(deviceId).catch((err: unknown) =>
        logger.error({ err, deviceId }, 'recompiling access failed'),
      );
      return;
    }
    recompileAll().catch((err: unknown) => logger.error({ err }, 'recompiling access failed'));
  });
}
