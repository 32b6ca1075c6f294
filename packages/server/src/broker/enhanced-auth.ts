/**
 * MQTT 5 enhanced authentication (§4.12) for applications: the method `bulwark-app-token` carries an app
 * token as Authentication Data, at CONNECT (in place of the password: the same apps check, the same
 * refusals) and in a re-authentication (AUTH 0x19), which moves the session onto the new token of its app.
 * Devices and app certificates authenticate by their certificate only. The core's auth hook stays generic
 * (core/connect-flow.ts); this is what Bulwark answers it.
 */
import { parseAppClientId } from '@bulwark/protocol';
import type { IConnectPacket } from 'mqtt-packet';
import type { AppCheckRequest, AppDecision } from '../apps/index.ts';
import type { EventBus } from '../events/index.ts';
import type { Emit } from './emit.ts';
import { RC, type AuthStep, type AuthVerdict } from './core/index.ts';
import type { Admission } from './listeners.ts';
import { blockOfApp, type SessionRegistry } from './sessions.ts';
import type { BrokerSession } from './stages.ts';

/** The one authentication method Bulwark supports: an app token as Authentication Data. */
export const APP_TOKEN_METHOD = 'bulwark-app-token';

/**
 * The app credentials of a CONNECT: with `bulwark-app-token`, the token is the Authentication Data and the
 * user name, when absent, the app of the client id (`NAME` or `NAME/<instance>`); otherwise user name and
 * password, when it carries both.
 */
export function credentialsOf(packet: IConnectPacket): { username: string; password: Buffer } | undefined {
  const { username, password } = packet;
  if (packet.properties?.authenticationMethod === APP_TOKEN_METHOD) {
    const token = packet.properties.authenticationData;
    if (token === undefined) return undefined;
    // An unparsable client id is refused by the apps check, which names the client id's problem.
    return { username: username ?? parseAppClientId(packet.clientId)?.app ?? '', password: token };
  }
  return username !== undefined && password !== undefined
    ? { username, password: Buffer.from(password) }
    : undefined;
}

/**
 * Why a CONNECT naming an authentication method is refused before the connect stages run, with its CONNACK
 * reason code; undefined when it names none, or `bulwark-app-token` from a TLS client without a certificate.
 */
export function methodRefusal(
  packet: IConnectPacket,
  admission: Admission,
): { reasonCode: number; reason: string } | undefined {
  const method = packet.properties?.authenticationMethod;
  if (method === undefined) return undefined;
  // [MQTT-4.12.0-1]: a method the server does not support. Never echoed: a client may have put its token there.
  if (method !== APP_TOKEN_METHOD)
    return {
      reasonCode: RC.badAuthenticationMethod,
      reason: `authentication method not supported (${APP_TOKEN_METHOD} only)`,
    };
  if (admission !== 'password')
    return {
      reasonCode: RC.badAuthenticationMethod,
      reason:
        admission === 'insecure'
          ? `${APP_TOKEN_METHOD} is for the TLS listener: the development listener authenticates no one`
          : `${APP_TOKEN_METHOD} is for apps without a client certificate: a certificate is the only credential of its holder`,
    };
  if (packet.password !== undefined)
    return {
      reasonCode: RC.badUserNameOrPassword,
      reason: `a password and ${APP_TOKEN_METHOD}: send the app token once, as Authentication Data`,
    };
  return undefined;
}

export interface EnhancedAuthDeps<C extends object> {
  /** The apps check (connect-stages.ts's, through the apps door); without it, no app re-authenticates. */
  checkApp?: ((request: AppCheckRequest) => Promise<AppDecision>) | undefined;
  sessions: Pick<SessionRegistry<C>, 'get' | 'reauthenticated' | 'blockedSince'>;
  events: Pick<EventBus, 'emit'>;
  emit: Emit;
}

type Refused = { ok: false; reason: string };

/** A refused re-authentication, recorded like a refused CONNECT (the `guessing` detectors count both). */
const refusedEvent = (session: BrokerSession, reason: string) =>
  ({
    type: 'mqtt.connect_refused',
    actor: session.actor,
    subject: session.subject,
    data: { remoteAddress: session.remoteAddress, reason: `re-authentication refused: ${reason}` },
  }) as const;
type Renewal = { ok: true; clientId: string; tokenId: string; expiresAt: number | null } | Refused;

/**
 * The core's auth hook. At CONNECT the method was checked with the whole packet (`methodRefusal`, in the
 * connect hook) and the token goes through the connect stages like a password: `done`. Bulwark never
 * challenges, so a `continue` is not expected. A re-authentication checks the new token.
 */
export function createEnhancedAuth<C extends object>(deps: EnhancedAuthDeps<C>) {
  const { sessions, events, emit } = deps;

  /** The apps check of the new token, for the session's own client id, and the revocation window. */
  async function checkRenewal(client: C, token: Buffer | undefined, startedAt: number): Promise<Renewal> {
    const session = sessions.get(client);
    const principal = session?.principal;
    if (principal?.kind !== 'app' || principal.tokenId === null)
      return { ok: false, reason: 'not an app session authenticated by a token' };
    if (token === undefined) return { ok: false, reason: 'no token in the Authentication Data' };
    if (!deps.checkApp) return { ok: false, reason: 'apps are not configured' };
    const decision = await deps.checkApp({
      clientId: principal.clientId,
      remoteAddress: session?.remoteAddress ?? 'unknown',
      password: { username: principal.id, password: token },
    });
    if (!decision.ok) return { ok: false, reason: decision.reason };
    if (decision.tokenId === null) return { ok: false, reason: 'not a token' };
    // Revoked (the app, or this token) while it was being checked: as at CONNECT (revocationGuardStage).
    const identity = { block: blockOfApp(principal.id), serial: decision.serial };
    if (sessions.blockedSince(identity, startedAt))
      return { ok: false, reason: 'app revoked while re-authenticating' };
    const { tokenId, expiresAt } = decision;
    return { ok: true, clientId: principal.clientId, tokenId, expiresAt };
  }

  /** The refusal is durable before the DISCONNECT, as a CONNECT's before its CONNACK. */
  async function refuse(client: C, reason: string): Promise<AuthVerdict> {
    const session = sessions.get(client);
    if (session) await events.emit(refusedEvent(session, reason));
    // [MQTT-4.12.1-2]: the connection ends with DISCONNECT; 0x87 is the one code for "not this token".
    return { fail: RC.notAuthorized };
  }

  /** AUTH 0x19 [MQTT-4.12.1-1]: the session moves onto the new token (its id, its expiry), or it ends. */
  async function reauthenticate(client: C, token: Buffer | undefined): Promise<AuthVerdict> {
    const renewal = await checkRenewal(client, token, Date.now());
    if (!renewal.ok) return refuse(client, renewal.reason);
    // Swapped before anything is awaited: a revocation of the new token from now on ends this session.
    const session = sessions.reauthenticated(client, renewal);
    if (!session) return { fail: RC.notAuthorized }; // it ended meanwhile (revoked, expired, gone)
    await events.emit({
      type: 'mqtt.reauthenticated',
      actor: session.actor,
      subject: session.subject,
      data: { clientId: renewal.clientId, tokenId: renewal.tokenId },
    });
    return { done: true };
  }

  return {
    auth(client: C, step: AuthStep): Promise<AuthVerdict> {
      if (step.phase === 'reauth') return reauthenticate(client, step.data);
      if (step.phase === 'connect') return Promise.resolve({ done: true });
      // [MQTT-4.12.0-3]: AUTH 0x18 answers a challenge, and Bulwark sends none.
      return Promise.resolve({ fail: RC.protocolError });
    },
    /**
     * The core's AUTH protocol errors (a method other than the CONNECT's, AUTH without one, an unexpected
     * reason code: core/connect-flow.ts `handleAuth`) end a session without asking the auth hook: recorded
     * here, when the session ends, as refused re-authentications.
     */
    ended(session: BrokerSession, info: { reason: string; reasonCode: number }): void {
      if (info.reasonCode !== RC.protocolError || !/\bAUTH\b/.test(info.reason)) return;
      emit(refusedEvent(session, info.reason));
    },
  };
}
