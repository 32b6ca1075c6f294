/**
 * CONNECT (§3.1), enhanced authentication (§4.12) and CONNACK (§3.2): the protocol checks, then the
 * embedder's connect hook, then the session (taken over, resumed or new).
 */
import { randomUUID } from 'node:crypto';
import type { IAuthPacket, IConnackPacket, IConnectPacket } from 'mqtt-packet';
import { CLIENT_ID_PROBLEM, duplicateProperty, malformedConnect } from './codec.ts';
import type { CoreConnection } from './connection.ts';
import type { CoreContext } from './context.ts';
import { cancelExpiry, cancelPendingWill, endSession, startKeepAlive } from './lifecycle.ts';
import { resumeSession } from './outbound.ts';
import { RC, V3_CONNACK, v3ConnackOf } from './reason-codes.ts';
import { newSessionState } from './session-store.ts';
import { validTopicName } from './topic-trie.ts';
import type { AuthStep, AuthVerdict, ConnectVerdict, CoreMessage, SessionState } from './types.ts';

const NEVER = 0xffffffff;

/** The session expiry granted: the client's, capped by the server's maximum; Infinity for "never". */
function grantedExpiry(requested: number, maxSec: number): number {
  const capped = Math.min(requested, maxSec);
  return capped === NEVER ? Infinity : capped;
}

/**
 * Refuses a CONNECT: CONNACK with the reason (the 3.1.1 return code for 3.1.1), Session Present 0, then close
 * [MQTT-3.2.2-6, 3.2.2-7] (3.1.1: [MQTT-3.2.2-4, 3.2.2-5]).
 */
export function refuseConnect<S>(
  conn: CoreConnection<S>,
  refusal: { reasonCode: number; reasonString?: string | undefined; reason?: string },
): void {
  const { reasonCode, reasonString } = refusal;
  const reason = refusal.reason ?? 'connect refused';
  conn.end(
    conn.protocolVersion === 5
      ? {
          cmd: 'connack',
          sessionPresent: false,
          reasonCode,
          ...(reasonString ? { properties: { reasonString } } : {}),
        }
      : { cmd: 'connack', sessionPresent: false, returnCode: v3ConnackOf(reasonCode) },
    { reason: reasonString ? `${reason}: ${reasonString}` : reason, reasonCode },
  );
}

/**
 * A CONNECT with a string that is not well-formed UTF-8 or holds U+0000 [MQTT-1.5.4-1, 1.5.4-2] (client id,
 * user name, will topic, a string property) is malformed: the connection is closed [MQTT-3.1.4-1], after a
 * CONNACK 0x81 on MQTT 5 (§3.1.4, §4.13.1). 3.1.1 closes it [MQTT-1.5.3-1, 1.5.3-2 (3.1.1)] and has no return
 * code for a malformed packet; a client id it cannot take is the one it names: 0x02 first [MQTT-3.1.3-9 (3.1.1)].
 */
function refuseMalformed<S>(ctx: CoreContext<S>, conn: CoreConnection<S>, problem: string): void {
  ctx.counters.malformed += 1;
  const reason = `malformed CONNECT: ${problem}`;
  ctx.hooks.error?.(conn, new Error(reason));
  const connack: IConnackPacket | undefined =
    conn.protocolVersion === 5
      ? { cmd: 'connack', sessionPresent: false, reasonCode: RC.malformed }
      : problem.startsWith(CLIENT_ID_PROBLEM)
        ? { cmd: 'connack', sessionPresent: false, returnCode: V3_CONNACK.identifierRejected }
        : undefined;
  conn.end(connack, { reason, reasonCode: RC.malformed });
}

/** The protocol-level checks of a CONNECT; a reason code to refuse with, 'close', or undefined. */
function checkConnect(packet: IConnectPacket): number | 'close' | undefined {
  const v5 = packet.protocolVersion === 5;
  if (v5) {
    const props = packet.properties;
    // §2.2.2.2: a property included twice is a protocol error.
    if (duplicateProperty(props) || duplicateProperty(packet.will?.properties)) return RC.protocolError;
    // §3.1.2.11: Receive Maximum and Maximum Packet Size of 0 are protocol errors.
    if (props?.receiveMaximum === 0 || props?.maximumPacketSize === 0) return RC.protocolError;
    if (props?.authenticationData && !props.authenticationMethod) return RC.protocolError;
  }
  // §3.1.3.3: the will topic is a topic name (no wildcards).
  if (packet.will && !validTopicName(packet.will.topic)) return v5 ? RC.topicNameInvalid : 'close';
  if (packet.clientId === '' && !v5 && packet.clean === false) return RC.clientIdNotValid; // [MQTT-3.1.3-8]
  return undefined;
}

/** Handles a CONNECT: checks, enhanced authentication, the connect hook, the session, CONNACK. */
export function handleConnect<S>(ctx: CoreContext<S>, conn: CoreConnection<S>, packet: IConnectPacket): void {
  conn.phase = 'connecting';
  // [MQTT-3.1.2-1, 3.1.2-2]: MQTT 3.1 (level 3, `MQIsdp`) is refused with return code 1.
  if (packet.protocolVersion === 3 || packet.protocolId !== 'MQTT') {
    const reason = `unsupported protocol level ${String(packet.protocolVersion)}`;
    conn.end(
      { cmd: 'connack', sessionPresent: false, returnCode: V3_CONNACK.unacceptableProtocolVersion },
      { reason, reasonCode: RC.unsupportedProtocolVersion },
    );
    return;
  }
  conn.protocolVersion = packet.protocolVersion === 5 ? 5 : 4;
  const malformed = malformedConnect(packet);
  if (malformed !== undefined) return refuseMalformed(ctx, conn, malformed);
  const problem = checkConnect(packet);
  if (problem === 'close')
    return conn.end(undefined, { reason: 'invalid will topic', reasonCode: RC.topicNameInvalid });
  if (problem !== undefined)
    return refuseConnect(conn, { reasonCode: problem, reason: 'connect refused by the protocol checks' });
  const props = packet.properties;
  if (conn.protocolVersion === 5) {
    conn.clientReceiveMaximum = props?.receiveMaximum ?? 65535;
    conn.clientMaxPacketSize = props?.maximumPacketSize ?? Infinity;
    conn.problemInformation = props?.requestProblemInformation !== false;
    // [MQTT-3.3.2-11]: topic aliases towards the client only up to its Topic Alias Maximum (absent: none).
    conn.clientTopicAliasMaximum = ctx.limits.topicAliasesOut ? (props?.topicAliasMaximum ?? 0) : 0;
  }
  // [MQTT-3.1.3-6, 3.1.3-7]: an empty client id gets one assigned (returned to a v5 client, 3.2.2.3.7).
  conn.clientId = packet.clientId === '' ? `auto-${randomUUID()}` : packet.clientId;
  conn.hold();
  const method = props?.authenticationMethod;
  if (method === undefined) {
    void finishConnect(ctx, conn, { packet, authData: undefined });
    return;
  }
  if (!ctx.hooks.auth) {
    // [MQTT-4.12.0-1]: an authentication method the server does not support; then close.
    refuseConnect(conn, {
      reasonCode: RC.badAuthenticationMethod,
      reasonString: 'enhanced authentication is not supported',
    });
    return;
  }
  conn.authMethod = method;
  conn.pendingConnect = packet;
  void runAuth(ctx, conn, { method, data: props?.authenticationData, phase: 'connect' });
}

async function askAuth<S>(
  ctx: CoreContext<S>,
  conn: CoreConnection<S>,
  step: AuthStep,
): Promise<AuthVerdict> {
  try {
    return (await ctx.hooks.auth?.(conn, step)) ?? { fail: RC.badAuthenticationMethod };
  } catch (err) {
    ctx.hooks.error?.(conn, err instanceof Error ? err : new Error(String(err)));
    return { fail: RC.unspecified };
  }
}

/** Runs one step of enhanced authentication (at CONNECT, or a re-authentication) and acts on its verdict. */
async function runAuth<S>(ctx: CoreContext<S>, conn: CoreConnection<S>, step: AuthStep): Promise<void> {
  const verdict = await askAuth(ctx, conn, step);
  if (conn.closed) return;
  const method = conn.authMethod ?? step.method;
  // A re-authentication happens on a connected client; the first authentication before CONNACK.
  const reauth = conn.phase === 'connected';
  if ('continue' in verdict) {
    // [MQTT-4.12.0-2]: AUTH 0x18 with the server's data; the client answers with AUTH 0x18 [MQTT-4.12.0-3].
    const properties = { authenticationMethod: method, authenticationData: verdict.continue };
    conn.send({ cmd: 'auth', reasonCode: RC.continueAuthentication, properties });
    if (reauth) conn.reauthenticating = true;
    else conn.phase = 'authenticating';
    conn.release();
    return;
  }
  if ('fail' in verdict) {
    if (!reauth) {
      conn.refusedByHook = true;
      return refuseConnect(conn, { reasonCode: verdict.fail, reason: 'authentication failed' });
    }
    // [MQTT-4.12.1-2]: a failed re-authentication ends the connection with DISCONNECT.
    const why = { reason: 're-authentication failed', reasonCode: verdict.fail };
    return conn.end({ cmd: 'disconnect', reasonCode: verdict.fail }, why);
  }
  if (reauth) {
    conn.reauthenticating = false;
    const data = verdict.data ? { authenticationData: verdict.data } : {};
    conn.send({ cmd: 'auth', reasonCode: RC.success, properties: { authenticationMethod: method, ...data } });
    conn.release();
    return;
  }
  const packet = conn.pendingConnect;
  conn.pendingConnect = undefined;
  if (packet) await finishConnect(ctx, conn, { packet, authData: verdict.data });
}

/** An AUTH packet from the client (§3.15): the next step of an exchange, or a re-authentication. */
export function handleAuth<S>(ctx: CoreContext<S>, conn: CoreConnection<S>, packet: IAuthPacket): void {
  const method = packet.properties?.authenticationMethod;
  // [MQTT-4.12.0-5, 4.12.0-7, 4.12.1-1]: AUTH only when the CONNECT named a method, and with that method.
  if (conn.authMethod === undefined || method !== conn.authMethod)
    return conn.violate(RC.protocolError, 'AUTH without the CONNECT authentication method');
  const data = packet.properties?.authenticationData;
  const inExchange = conn.phase === 'authenticating' || conn.reauthenticating;
  if (packet.reasonCode === RC.continueAuthentication && inExchange) {
    conn.hold();
    void runAuth(ctx, conn, { method, data, phase: 'continue' });
    return;
  }
  if (packet.reasonCode === RC.reAuthenticate && conn.phase === 'connected' && !conn.reauthenticating) {
    conn.hold();
    void runAuth(ctx, conn, { method, data, phase: 'reauth' });
    return;
  }
  conn.violate(RC.protocolError, `unexpected AUTH reason code ${packet.reasonCode}`);
}

/** The will of a CONNECT as the message it becomes (§3.1.3.2); its expiry runs from when it is published. */
function willOf(
  packet: IConnectPacket,
  clientId: string,
): { message: CoreMessage; delaySec: number } | undefined {
  const will = packet.will;
  if (!will) return undefined;
  const { willDelayInterval, ...rest } = will.properties ?? {};
  return {
    message: {
      topic: will.topic,
      payload: Buffer.isBuffer(will.payload) ? will.payload : Buffer.from(will.payload),
      qos: will.qos ?? 0,
      retain: will.retain === true,
      properties: Object.keys(rest).length > 0 ? rest : undefined,
      origin: clientId,
    },
    delaySec: willDelayInterval ?? 0,
  };
}

async function askConnect<S>(
  ctx: CoreContext<S>,
  conn: CoreConnection<S>,
  packet: IConnectPacket,
): Promise<ConnectVerdict<S>> {
  try {
    return await ctx.hooks.connect(conn, packet);
  } catch (err) {
    ctx.hooks.error?.(conn, err instanceof Error ? err : new Error(String(err)));
    return { ok: false, reasonCode: RC.serverUnavailable };
  }
}

/** [MQTT-3.1.4-3]: a connection with the same client id is taken over (DISCONNECT 0x8E on MQTT 5). */
function takeOver<S>(ctx: CoreContext<S>, conn: CoreConnection<S>, clientId: string): void {
  // On the other nodes too (cluster-bus.ts).
  ctx.bus.claim(clientId);
  const previous = ctx.live.get(clientId);
  if (!previous || previous === conn) return;
  if (previous.session !== undefined) ctx.hooks.sessionTakenOver?.(previous.session);
  const disconnect =
    previous.protocolVersion === 5
      ? { cmd: 'disconnect' as const, reasonCode: RC.sessionTakenOver }
      : undefined;
  previous.end(disconnect, { reason: 'taken over', reasonCode: RC.sessionTakenOver });
}

/**
 * The session of a CONNECT: resumed, or new when there is none or Clean Start discards it [MQTT-3.1.2-4];
 * Session Present tells which [MQTT-3.2.2-2, 3.2.2-3].
 */
function attachSession<S>(
  ctx: CoreContext<S>,
  conn: CoreConnection<S>,
  request: { clientId: string; clean: boolean; expirySec: number },
): { state: SessionState; sessionPresent: boolean } {
  const { clientId } = request;
  let state = ctx.store.get(clientId);
  if (state) {
    cancelExpiry(ctx, clientId);
    cancelPendingWill(ctx, clientId); // back before the will delay passed [MQTT-3.1.3-9]
  }
  if (state && request.clean) {
    endSession(ctx, state);
    state = undefined;
  }
  const sessionPresent = state !== undefined;
  if (!state) {
    state = newSessionState(clientId, request.expirySec);
    ctx.store.set(state);
  }
  state.expirySec = request.expirySec;
  conn.state = state;
  ctx.live.set(clientId, conn);
  return { state, sessionPresent };
}

/** Keep alive (§3.1.2.10): the server's maximum wins, sent as Server Keep Alive to a v5 client [MQTT-3.2.2-21]. */
function grantKeepAlive<S>(
  ctx: CoreContext<S>,
  conn: CoreConnection<S>,
  requested: number,
): number | undefined {
  const max = ctx.limits.keepAliveMaxSec;
  const override = conn.protocolVersion === 5 && max !== undefined && (requested === 0 || requested > max);
  const keepAlive = override ? (max ?? requested) : requested;
  conn.keepAliveMs = keepAlive * 1500; // one and a half times the keep alive [MQTT-3.1.2-22]
  return override ? keepAlive : undefined;
}

function connackProperties<S>(
  ctx: CoreContext<S>,
  conn: CoreConnection<S>,
  grant: {
    requestedExpiry: number;
    expirySec: number;
    assigned: boolean;
    serverKeepAlive: number | undefined;
    authData: Buffer | undefined;
    responseInformation: string | undefined;
  },
): IConnackPacket['properties'] {
  const { limits } = ctx;
  const expiryChanged =
    grant.expirySec !== (grant.requestedExpiry === NEVER ? Infinity : grant.requestedExpiry);
  return {
    ...(expiryChanged
      ? { sessionExpiryInterval: grant.expirySec === Infinity ? NEVER : grant.expirySec }
      : {}),
    ...(limits.receiveMaximum < 65535 ? { receiveMaximum: limits.receiveMaximum } : {}),
    maximumPacketSize: limits.maxPacketBytes,
    ...(limits.topicAliasMaximum > 0 ? { topicAliasMaximum: limits.topicAliasMaximum } : {}),
    ...(grant.assigned ? { assignedClientIdentifier: conn.clientId ?? '' } : {}),
    ...(grant.serverKeepAlive !== undefined ? { serverKeepAlive: grant.serverKeepAlive } : {}),
    // [MQTT-4.12.0-5]: the CONNECT's authentication method, in a successful CONNACK too.
    ...(conn.authMethod !== undefined ? { authenticationMethod: conn.authMethod } : {}),
    ...(grant.authData ? { authenticationData: grant.authData } : {}),
    ...(grant.responseInformation !== undefined ? { responseInformation: grant.responseInformation } : {}),
  };
}

/**
 * Response Information for CONNACK (§3.2.2.3.15): only when the client asked with Request Response
 * Information 1 (§3.1.2.11.7: 0, the default, means none is sent), and the embedder has one for its session.
 */
function responseInformationFor<S>(
  ctx: CoreContext<S>,
  conn: CoreConnection<S>,
  packet: IConnectPacket,
): string | undefined {
  if (packet.properties?.requestResponseInformation !== true || !ctx.hooks.responseInformation)
    return undefined;
  try {
    return ctx.hooks.responseInformation(conn.session as S);
  } catch (err) {
    // A hook that throws costs the client its Response Information, never its connection.
    ctx.hooks.error?.(conn, err instanceof Error ? err : new Error(String(err)));
    return undefined;
  }
}

async function finishConnect<S>(
  ctx: CoreContext<S>,
  conn: CoreConnection<S>,
  request: { packet: IConnectPacket; authData: Buffer | undefined },
): Promise<void> {
  const { packet } = request;
  const verdict = await askConnect(ctx, conn, packet);
  if (conn.closed) {
    // Gone while the hook ran: the embedder still learns that the session it made is over.
    const lost = { reason: 'connection lost', reasonCode: RC.unspecified, will: null };
    if (verdict.ok) ctx.hooks.disconnected(verdict.session, lost);
    return;
  }
  if (!verdict.ok) {
    conn.refusedByHook = true;
    return refuseConnect(conn, verdict);
  }
  conn.session = verdict.session;
  const clientId = verdict.sessionKey ?? conn.clientId ?? '';
  const v5 = conn.protocolVersion === 5;
  const clean = packet.clean !== false;
  takeOver(ctx, conn, clientId);
  // Session expiry: MQTT 5 asks for it; a 3.1.1 clean session 0 is kept as long as the server keeps any.
  const requestedExpiry = v5 ? (packet.properties?.sessionExpiryInterval ?? 0) : clean ? 0 : NEVER;
  const expirySec = grantedExpiry(requestedExpiry, ctx.limits.maxSessionExpirySec);
  conn.connectExpiryZero = requestedExpiry === 0;
  const { state, sessionPresent } = attachSession(ctx, conn, { clientId, clean, expirySec });
  const will = willOf(packet, clientId);
  if (will) conn.will = will;
  const serverKeepAlive = grantKeepAlive(ctx, conn, packet.keepalive ?? 0);
  if (v5) {
    const grant = {
      requestedExpiry,
      expirySec,
      assigned: packet.clientId === '',
      serverKeepAlive,
      authData: request.authData,
      responseInformation: responseInformationFor(ctx, conn, packet),
    };
    const properties = connackProperties(ctx, conn, grant);
    conn.send({ cmd: 'connack', sessionPresent, reasonCode: RC.success, properties });
  } else conn.send({ cmd: 'connack', sessionPresent, returnCode: V3_CONNACK.accepted });
  conn.phase = 'connected';
  startKeepAlive(ctx, conn);
  resumeSession(ctx, conn, state);
  conn.release();
}
