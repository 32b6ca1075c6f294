import { subjectOf } from '../events/index.ts';
import type { Firewall } from '../firewall/index.ts';
import type { Emit } from './emit.ts';
import type { BrokerSession } from './stages.ts';

/** Why a session is dropped, and what caused it (`audit:<seq>`, `policy change`, `firewall`, …). */
export interface DropCause {
  reason: string;
  trigger: string;
  /** Drop only the session of this certificate (a certificate revoked while the device has another). */
  serial?: string | undefined;
}

/**
 * What a revocation blocks for a connection being checked: the device id, or `app:<name>` for an app (see
 * `blockOfApp`), and the certificate serial (`token:<id>` for an app token).
 */
export interface Blockable {
  block: string;
  serial: string;
}

/** The block key of an app, `app:<name>` (a device id has no `:`, so it never equals one). */
export const blockOfApp = (app: string): string => subjectOf.app(app);

/**
 * The registry and firewall key of an app instance, `app:<clientId>`: never a device id (those have no `:`).
 * An app's subject (`app:<name>`) is the key of its instance without a suffix.
 */
export const appKey = (clientId: string): string => subjectOf.app(clientId);

export interface SessionRegistryDeps<C extends object> {
  firewall: Pick<Firewall, 'forgetDevice' | 'recordTakeover' | 'limits'>;
  emit: Emit;
  /**
   * Ends the client's connection (the transport's own close); the cause lets an engine that can say why (an
   * MQTT 5 DISCONNECT reason code) say it.
   */
  close(client: C, cause: DropCause): void;
}

type Takeover = Pick<BrokerSession, 'key' | 'serial' | 'actor' | 'subject'>;

/**
 * What a re-authentication replaces in an app session (readonly to the stages: only the registry changes
 * them): the token it holds, the serial revocations match (`token:<id>`) and the expiry the sweep reads.
 */
type Renewable = {
  -readonly [K in keyof Pick<BrokerSession, 'principal' | 'serial' | 'expiresAt'>]: BrokerSession[K];
};

type RenewedToken = { tokenId: string; expiresAt: number | null };

/**
 * An app session re-authenticated (MQTT 5 AUTH, enhanced-auth.ts) with another token of its app: from now
 * on it is that token's session: revoking it (not the old one) ends the session, and its expiry is the one
 * the sweep reads. Undefined when it is no live app session authenticated by a token.
 */
function renewToken(session: BrokerSession | undefined, token: RenewedToken): BrokerSession | undefined {
  const principal = session?.principal;
  if (!session?.active || principal?.kind !== 'app' || principal.tokenId === null) return undefined;
  const renewable: Renewable = session;
  renewable.principal = { ...principal, tokenId: token.tokenId };
  renewable.serial = `token:${token.tokenId}`;
  renewable.expiresAt = token.expiresAt;
  return session;
}

/** A takeover counted by the firewall; when it makes a clone, the event and the ban's reason. */
function recordConflict(
  deps: Pick<SessionRegistryDeps<object>, 'firewall' | 'emit'>,
  takeover: { next: Takeover; previous: BrokerSession; remoteAddress: string },
): string | undefined {
  const { next, previous, remoteAddress } = takeover;
  const conflict = deps.firewall.recordTakeover(next.key, remoteAddress);
  if (!conflict) return undefined;
  deps.emit({
    type: 'mqtt.identity_conflict',
    actor: next.actor,
    subject: next.subject,
    data: {
      remoteAddresses: [...new Set([previous.remoteAddress, ...conflict.addresses])],
      takeovers: conflict.takeovers,
      windowMs: deps.firewall.limits.takeoverWindowMs,
      certSerial: next.serial,
    },
  });
  return conflict.ban.reason;
}

/** Live sessions by key: devices by id, app instances by client id. */
function createIndex<C extends object>() {
  const sessions = new WeakMap<C, BrokerSession>();
  const byKey = new Map<string, C>();
  // The clients of each app (several instances at once).
  const byApp = new Map<string, Set<C>>();
  return {
    sessions,
    byKey,
    byApp,
    add(client: C, session: BrokerSession): void {
      sessions.set(client, session);
      byKey.set(session.key, client);
      if (session.principal.kind !== 'app') return;
      const set = byApp.get(session.principal.id) ?? new Set<C>();
      set.add(client);
      byApp.set(session.principal.id, set);
    },
    /** Connected devices (apps are not listed). */
    deviceIds(): string[] {
      const out: string[] = [];
      for (const [key, client] of byKey) if (sessions.get(client)?.principal.kind === 'device') out.push(key);
      return out;
    },
    /** Sessions by key, as a copy (safe to drop while iterating). */
    list(): [string, BrokerSession][] {
      const out: [string, BrokerSession][] = [];
      for (const [key, client] of byKey) {
        const s = sessions.get(client);
        if (s) out.push([key, s]);
      }
      return out;
    },
    /** App sessions whose credential ended at or before `now`, as a copy. */
    expired(now: number): [C, BrokerSession][] {
      const out: [C, BrokerSession][] = [];
      for (const clients of byApp.values())
        for (const client of clients) {
          const session = sessions.get(client);
          if (session && session.expiresAt != null && session.expiresAt <= now) out.push([client, session]);
        }
      return out;
    },
    /** Lets go of the client in the indexes; whether it still held its key (then the key is free). */
    unlink(client: C, session: BrokerSession): boolean {
      if (session.principal.kind === 'app') {
        const set = byApp.get(session.principal.id);
        set?.delete(client);
        if (set?.size === 0) byApp.delete(session.principal.id);
      }
      if (byKey.get(session.key) !== client) return false;
      byKey.delete(session.key);
      return true;
    },
  };
}

/**
 * Live sessions, by connection and by key (one per device, one per app client id [MQTT-3.1.4-2]), and when
 * each device, app or certificate was last blocked: a connection whose check started before a revocation is
 * refused, closing the window between the store read in identify and the session being registered.
 */
export function createSessionRegistry<C extends object>(deps: SessionRegistryDeps<C>) {
  const { firewall, emit } = deps;
  const index = createIndex<C>();
  const { sessions, byKey, byApp } = index;
  // When each device (or app), and each certificate (or token), was last revoked or disabled.
  const blockedKeys = new Map<string, number>();
  const blockedSerials = new Map<string, number>();

  function block(blocked: Map<string, number>, key: string): void {
    const t = Date.now();
    blocked.set(key, t);
    if (blocked.size > 10_000) for (const [id, at] of blocked) if (t - at > 60_000) blocked.delete(id);
  }

  /** No further publish, subscribe or delivery, even before the socket closes. */
  function forget(client: C, session: BrokerSession): void {
    session.active = false;
    // Its quota state goes with its last session (reconnect churn is bounded by the flapping detector).
    sessions.delete(client);
    if (index.unlink(client, session)) firewall.forgetDevice(session.key);
  }

  function dropSession(client: C, session: BrokerSession, cause: DropCause): void {
    forget(client, session);
    deps.close(client, cause);
    emit({
      type: 'mqtt.session_dropped',
      actor: 'system',
      subject: session.subject,
      data: { reason: cause.reason, trigger: cause.trigger },
    });
  }

  /** Drops the session under this key (a device id, or `app:<clientId>`). */
  function drop(key: string, cause: DropCause): void {
    if (cause.serial === undefined) block(blockedKeys, key);
    else block(blockedSerials, cause.serial);
    const client = byKey.get(key);
    const session = client && sessions.get(client);
    if (!client || !session || (cause.serial !== undefined && session.serial !== cause.serial)) return;
    dropSession(client, session, cause);
  }

  /** Drops every session of an app, or only those of one credential (`cause.serial`: a certificate or token). */
  function dropApp(app: string, cause: DropCause): void {
    if (cause.serial === undefined) block(blockedKeys, blockOfApp(app));
    else block(blockedSerials, cause.serial);
    for (const client of [...(byApp.get(app) ?? [])]) {
      const session = sessions.get(client);
      if (session && (cause.serial === undefined || session.serial === cause.serial))
        dropSession(client, session, cause);
    }
  }

  /**
   * Ends every app session whose credential (token or certificate) ended at or before `now`: its expiry is
   * checked at CONNECT, and this sweep (one timer per broker) ends a session that outlives it. Apps only.
   */
  function dropExpired(now: number): number {
    const expired = index.expired(now);
    for (const [client, session] of expired)
      dropSession(client, session, { reason: 'credential expired', trigger: 'expiry' });
    return expired.length;
  }

  return {
    get: (client: C): BrokerSession | undefined => sessions.get(client),
    has: (client: C): boolean => sessions.has(client),
    clientOf: (key: string): C | undefined => byKey.get(key),
    sessionOf(key: string): BrokerSession | undefined {
      const client = byKey.get(key);
      return client && sessions.get(client);
    },
    get size() {
      return byKey.size;
    },
    /** Connected devices (apps are not listed). */
    deviceIds: (): string[] => index.deviceIds(),
    /** Sessions by key, as a copy (safe to drop while iterating). */
    list: (): [string, BrokerSession][] => index.list(),
    /** The live sessions of an app (all its instances), as a copy. */
    sessionsOfApp(app: string): BrokerSession[] {
      const out: BrokerSession[] = [];
      for (const client of byApp.get(app) ?? []) {
        const s = sessions.get(client);
        if (s) out.push(s);
      }
      return out;
    },
    /** Apps with live sessions. */
    appNames: (): string[] => [...byApp.keys()],
    clientsOfApp: (app: string): C[] => [...(byApp.get(app) ?? [])],
    clients: (): C[] => [...byKey.values()],
    /** Registered before anything is awaited, so a revocation from then on finds and drops it. */
    register(client: C, session: BrokerSession): void {
      index.add(client, session);
    },
    /** Was this device (or app) or certificate (or token) revoked or disabled at or after `since`? */
    blockedSince(identity: Blockable, since: number): boolean {
      const at = Math.max(blockedKeys.get(identity.block) ?? 0, blockedSerials.get(identity.serial) ?? 0);
      return at >= since;
    },
    drop,
    dropApp,
    dropExpired,
    /**
     * A new session under a key whose session is still open takes it over ([MQTT-3.1.4-2]). Done again and
     * again, that is two agents with one identity: the key is banned for a while (stored, listed, an alert)
     * and both sessions end. Returns whether this connection is refused for it.
     */
    takenOver(client: C, next: Takeover, remoteAddress: string): boolean {
      const previous = byKey.get(next.key);
      const previousSession = previous && previous !== client ? sessions.get(previous) : undefined;
      if (!previousSession) return false;
      const conflict = recordConflict(deps, { next, previous: previousSession, remoteAddress });
      if (conflict) drop(next.key, { reason: conflict, trigger: 'firewall' });
      return conflict !== undefined;
    },
    /** An app session re-authenticated with another token of its app (see `renewToken`). */
    reauthenticated: (client: C, token: RenewedToken) => renewToken(sessions.get(client), token),
    /** The session ends now, like a drop, with its own event (a packet over the size limit). */
    end(client: C, reason: string): BrokerSession | undefined {
      const session = sessions.get(client);
      if (!session) return undefined;
      forget(client, session);
      emit({
        type: 'mqtt.session_dropped',
        actor: 'system',
        subject: session.subject,
        data: { reason, trigger: 'packet_size' },
      });
      return session;
    },
    /** The client went away: its session no longer counts; the session object stays for late deliveries. */
    disconnected(client: C): void {
      const session = sessions.get(client);
      if (!session) return;
      // The WeakMap entry stays (late deliveries still find the session); the indexes let go.
      if (index.unlink(client, session)) firewall.forgetDevice(session.key);
      emit({
        type: 'mqtt.disconnected',
        actor: session.actor,
        subject: session.subject,
        data: { remoteAddress: session.remoteAddress, reason: 'disconnected' },
      });
    },
  };
}

export type SessionRegistry<C extends object> = ReturnType<typeof createSessionRegistry<C>>;
