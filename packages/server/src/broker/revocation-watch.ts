import type { Logger } from 'pino';
import { deviceIdOf, subjectIdOf, type AuditEntry, type EventBus } from '../events/index.ts';
import { addressIn, type DeviceAccess } from '../policy/index.ts';
import type { AppAccessIdentity } from '../access/index.ts';
import type { DropCause } from './sessions.ts';
import type { BrokerSession } from './stages.ts';

/** The part of the session registry the watchers act on. */
export interface WatchedSessions {
  list(): [string, BrokerSession][];
  sessionOf(key: string): BrokerSession | undefined;
  drop(key: string, cause: DropCause): void;
  sessionsOfApp(app: string): BrokerSession[];
  appNames(): string[];
  dropApp(app: string, cause: DropCause): void;
}

const dropEvents = [
  'firewall.ban_created',
  'device.revoked',
  'device.disabled',
  'certificate.revoked',
  'app.revoked',
  'app.token_revoked',
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
    if (entry.type === 'certificate.revoked') deps.refreshCrls();
    const app = subjectIdOf(entry.subject, 'app');
    if (app !== undefined) {
      appRevoked(sessions, entry, { app, trigger });
      return;
    }
    const deviceId = deviceIdOf(entry.subject);
    if (!deviceId) return;
    if (entry.type === 'device.revoked') sessions.drop(deviceId, { reason: 'device revoked', trigger });
    else if (entry.type === 'device.disabled')
      sessions.drop(deviceId, { reason: 'device disabled', trigger });
    else if (entry.type === 'certificate.revoked')
      sessions.drop(deviceId, { reason: 'certificate revoked', trigger, serial: entry.data.serial });
  });
}

/** An app revoked (every session), one of its tokens (the sessions it authenticated), or a certificate. */
function appRevoked(
  sessions: WatchedSessions,
  entry: AuditEntry<Exclude<DropEvent, 'firewall.ban_created'>>,
  at: { app: string; trigger: string },
): void {
  const { app, trigger } = at;
  if (entry.type === 'app.revoked') sessions.dropApp(app, { reason: 'app revoked', trigger });
  else if (entry.type === 'app.token_revoked')
    sessions.dropApp(app, { reason: 'token revoked', trigger, serial: `token:${entry.data.tokenId}` });
  else if (entry.type === 'certificate.revoked')
    sessions.dropApp(app, { reason: 'certificate revoked', trigger, serial: entry.data.serial });
}

/**
 * Policy, zone and quarantine changes recompile the access of live sessions, so they apply within a second:
 * one device at once when only it changed, all of them (coalesced) otherwise; and every app session (an app's
 * grants may depend on any device's group or zone). Returns the unsubscribe.
 */
export function watchAccessChanges(
  deps: AppWatchDeps & {
    onAccessChange(listener: (deviceId?: string) => void): () => void;
    accessFor(identity: {
      deviceId: string;
      remoteAddress: string | null;
      certSubject: Record<string, string>;
      anonymous?: boolean;
    }): Promise<DeviceAccess>;
  },
): () => void {
  const { sessions, logger } = deps;
  const policyChange = (reason: string) => ({ reason, trigger: 'policy change' });

  async function recompileOne(deviceId: string): Promise<void> {
    const session = sessions.sessionOf(deviceId);
    if (session?.principal.kind !== 'device') return;
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
        for (const [key, s] of sessions.list()) if (s.principal.kind === 'device') await recompileOne(key);
      } while (again);
    } finally {
      recompiling = false;
    }
  }

  const apps = appRecompiler(deps);
  return deps.onAccessChange((deviceId) => {
    // An app's grants may name any device's group or zone: every change recompiles the app sessions.
    apps.recompileAll();
    if (deviceId !== undefined) {
      recompileOne(deviceId).catch((err: unknown) =>
        logger.error({ err, deviceId }, 'recompiling access failed'),
      );
      return;
    }
    recompileAll().catch((err: unknown) => logger.error({ err }, 'recompiling access failed'));
  });
}

export interface AppWatchDeps {
  accessForApp?: ((identity: AppAccessIdentity) => Promise<DeviceAccess>) | undefined;
  /** An app's current facts (undefined: it is gone); see BrokerDeps.appFacts. */
  appFacts?:
    ((app: string) => Promise<{ zone: string | null; purpose: string | null } | undefined>) | undefined;
  sessions: WatchedSessions;
  logger: Pick<Logger, 'error'>;
}

/** Recompiles app sessions: one app's (with fresh facts) or all of them (coalesced). */
function appRecompiler(deps: AppWatchDeps) {
  const { sessions, logger } = deps;
  const policyChange = (reason: string) => ({ reason, trigger: 'policy change' });

  async function recompile(session: BrokerSession): Promise<void> {
    const { principal } = session;
    if (principal.kind !== 'app' || !session.active) return;
    const facts = session.appFacts ?? { zone: null, purpose: null };
    try {
      if (!deps.accessForApp) throw new Error('apps are not configured');
      const access = await deps.accessForApp({
        app: principal.id,
        instance: principal.instance,
        zone: facts.zone,
        purpose: facts.purpose,
        remoteAddress: session.remoteAddress,
        certSubject: session.certSubject,
      });
      if (!session.active) return;
      session.access = access;
      const connect = access.connect();
      if (!connect.allow)
        sessions.drop(session.key, policyChange(`connect no longer allowed: ${connect.reason}`));
    } catch (err) {
      logger.error({ err, app: principal.id }, 'cannot recompile access; dropping the session');
      sessions.drop(session.key, policyChange('access could not be recompiled'));
    }
  }

  let running = false;
  let again = false;
  async function all(): Promise<void> {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        for (const app of sessions.appNames())
          for (const s of sessions.sessionsOfApp(app)) await recompile(s);
      } while (again);
    } finally {
      running = false;
    }
  }

  /** `app.updated`: the app's facts are read again, then its sessions recompiled (dropped without appFacts). */
  async function one(app: string, trigger: string): Promise<void> {
    const live = sessions.sessionsOfApp(app);
    if (live.length === 0) return;
    let facts: Awaited<ReturnType<NonNullable<AppWatchDeps['appFacts']>>>;
    try {
      facts = deps.appFacts ? await deps.appFacts(app) : undefined;
    } catch (err) {
      // Fail closed: sessions whose facts cannot be read are not left running on the old ones.
      logger.error({ err, app }, 'cannot read the app; dropping its sessions');
      sessions.dropApp(app, { reason: 'app could not be read', trigger });
      return;
    }
    if (!facts) {
      sessions.dropApp(app, { reason: 'app changed', trigger });
      return;
    }
    for (const s of live) {
      s.appFacts = { zone: facts.zone, purpose: facts.purpose };
      await recompile(s);
    }
  }

  return {
    recompileAll(): void {
      all().catch((err: unknown) => logger.error({ err }, 'recompiling app access failed'));
    },
    recompileApp(app: string, trigger: string): void {
      one(app, trigger).catch((err: unknown) => logger.error({ err, app }, 'recompiling app access failed'));
    },
  };
}

/** `app.updated` (purpose, zone, grants) recompiles that app's live sessions. Returns the unsubscribe. */
export function watchAppChanges(deps: AppWatchDeps & { events: Pick<EventBus, 'on'> }): () => void {
  const apps = appRecompiler(deps);
  return deps.events.on('app.updated', (entry) => {
    const app = subjectIdOf(entry.subject, 'app');
    if (app !== undefined) apps.recompileApp(app, `audit:${entry.seq}`);
  });
}

/**
 * Retained messages another process deleted from the store (an erasure or a retention run of the retained
 * messages, by the CLI or another node) are forgotten here too, so they are no longer delivered: their events
 * reach the broker from any process (the audit-log tail). Returns the unsubscribe.
 */
export function watchRetainedDeletions(deps: {
  events: Pick<EventBus, 'on'>;
  retained: { forgetDeleted?: (() => Promise<number>) | undefined };
  logger: Pick<Logger, 'warn'>;
}): () => void {
  const { forgetDeleted } = deps.retained;
  if (!forgetDeleted) return () => undefined;
  return deps.events.on(['privacy.request_completed', 'privacy.retention_applied'], (entry) => {
    const deleted =
      entry.type === 'privacy.request_completed'
        ? entry.data.kind === 'erasure' &&
          entry.data.status === 'completed' &&
          entry.data.counts.retained !== 0
        : entry.data.store === 'retained' && entry.data.deleted > 0;
    if (!deleted) return;
    forgetDeleted().catch((err: unknown) =>
      deps.logger.warn({ err }, 'retained messages deleted elsewhere could not be forgotten here'),
    );
  });
}
