/**
 * From bytes to handlers: each whole packet is parsed and handed to its handler; bad frames, protocol
 * violations and deadlines end the connection with the right reason code (§4.13).
 */
import type { IConnectPacket } from 'mqtt-packet';
import { parsePacket, type Packet } from './codec.ts';
import { handleAuth, handleConnect } from './connect-flow.ts';
import type { ConnectionOwner, CoreConnection } from './connection.ts';
import type { CoreContext } from './context.ts';
import { PACKET_TYPE_CONNECT, type Frame } from './framing.ts';
import { handleAck, handleDisconnect, handlePublish, handleSubscribe, handleUnsubscribe } from './inbound.ts';
import { connectionClosed, deadlinePassed } from './lifecycle.ts';
import { drain } from './outbound.ts';
import { RC } from './reason-codes.ts';

/** How long an ended connection may take to hand over its last bytes before it is destroyed. */
const LINGER_MS = 2000;

/** Ends a connection for a protocol violation: DISCONNECT with the code on MQTT 5 once connected [MQTT-3.14.0-1]. */
function violation<S>(
  ctx: CoreContext<S>,
  conn: CoreConnection<S>,
  why: { code: number; reason: string },
): void {
  if (why.code === RC.malformed) ctx.counters.malformed += 1;
  // A refusal by the embedder (0x87, e.g. a PUBLISH its policy denies) or a failure of the server's own
  // (0x80, 0x83) is not the client breaking the protocol.
  else if (why.code !== RC.notAuthorized && why.code !== 0x80 && why.code !== 0x83)
    ctx.counters.protocolErrors += 1;
  ctx.hooks.error?.(conn, new Error(why.reason));
  const disconnect: Packet | undefined =
    conn.protocolVersion === 5 && conn.phase === 'connected'
      ? {
          cmd: 'disconnect',
          reasonCode: why.code,
          ...(conn.problemInformation ? { properties: { reasonString: why.reason } } : {}),
        }
      : undefined;
  conn.end(disconnect, { reason: why.reason, reasonCode: why.code });
}

/** The first packet: a CONNECT [MQTT-3.1.0-1], parsed whatever its version. */
function firstPacket<S>(
  ctx: CoreContext<S>,
  conn: CoreConnection<S>,
  frame: Frame & { kind: 'packet' },
): void {
  if (frame.type !== PACKET_TYPE_CONNECT) {
    ctx.counters.protocolErrors += 1;
    conn.end(undefined, { reason: 'first packet is not CONNECT', reasonCode: RC.protocolError });
    return;
  }
  const parsed = parsePacket(frame.bytes, 4);
  if (!parsed.ok) {
    ctx.counters.malformed += 1;
    const reason = `malformed CONNECT: ${parsed.reason}`;
    ctx.hooks.error?.(conn, new Error(reason));
    conn.end(undefined, { reason, reasonCode: RC.malformed });
    return;
  }
  handleConnect(ctx, conn, parsed.packet as IConnectPacket);
}

function onFrame<S>(ctx: CoreContext<S>, conn: CoreConnection<S>, frame: Frame & { kind: 'packet' }): void {
  // [MQTT-3.1.2-22]: any control packet counts for the keep alive (one assignment; see TimerWheel).
  if (conn.keepAliveMs > 0) conn.timer.deadline = ctx.now() + conn.keepAliveMs;
  if (conn.phase === 'new') return firstPacket(ctx, conn, frame);
  const parsed = parsePacket(frame.bytes, conn.version);
  // §4.13: a malformed packet ends the connection (0x81 on MQTT 5).
  if (!parsed.ok) return conn.violate(RC.malformed, `malformed packet: ${parsed.reason}`);
  const packet = parsed.packet;
  if (conn.phase === 'authenticating' && packet.cmd !== 'auth' && packet.cmd !== 'disconnect')
    return conn.violate(RC.protocolError, `${packet.cmd} during authentication`);
  dispatch(ctx, conn, packet);
}

function dispatch<S>(ctx: CoreContext<S>, conn: CoreConnection<S>, packet: Packet): void {
  switch (packet.cmd) {
    case 'connect':
      return conn.violate(RC.protocolError, 'second CONNECT'); // [MQTT-3.1.0-2]
    case 'publish':
      return handlePublish(ctx, conn, packet);
    case 'puback':
    case 'pubrec':
    case 'pubrel':
    case 'pubcomp':
      return handleAck(ctx, conn, packet);
    case 'subscribe':
      return handleSubscribe(ctx, conn, packet);
    case 'unsubscribe':
      return handleUnsubscribe(ctx, conn, packet);
    case 'pingreq':
      return conn.send({ cmd: 'pingresp' }); // [MQTT-3.12.4-1]
    case 'disconnect':
      if (conn.phase !== 'authenticating') return handleDisconnect(ctx, conn, packet);
      conn.will = undefined;
      return conn.end(undefined, { reason: 'client disconnected', reasonCode: RC.success });
    case 'auth':
      return handleAuth(ctx, conn, packet);
    default:
      return conn.violate(RC.protocolError, `a client does not send ${packet.cmd}`);
  }
}

function onBadFrame<S>(
  ctx: CoreContext<S>,
  conn: CoreConnection<S>,
  frame: Exclude<Frame, { kind: 'packet' }>,
): void {
  if (frame.kind === 'malformed') return conn.violate(RC.malformed, `malformed packet: ${frame.reason}`);
  ctx.counters.packetsTooLarge += 1;
  const reason = `${PACKET_NAMES[frame.type] ?? 'packet'} announces ${frame.length} bytes, limit ${frame.limit}`;
  ctx.hooks.error?.(conn, new Error(reason));
  // §3.1.2.11.4, §4.13: DISCONNECT 0x95 on MQTT 5, before any of the body is read; a close on 3.1.1.
  const connected = conn.protocolVersion === 5 && conn.phase === 'connected';
  conn.end(connected ? { cmd: 'disconnect', reasonCode: RC.packetTooLarge } : undefined, {
    reason,
    reasonCode: RC.packetTooLarge,
  });
}

/** Packet type names by the fixed header's type (§2.1.2), for the reasons of refusals. */
const PACKET_NAMES = [
  'RESERVED',
  'CONNECT',
  'CONNACK',
  'PUBLISH',
  'PUBACK',
  'PUBREC',
  'PUBREL',
  'PUBCOMP',
  'SUBSCRIBE',
  'SUBACK',
  'UNSUBSCRIBE',
  'UNSUBACK',
  'PINGREQ',
  'PINGRESP',
  'DISCONNECT',
  'AUTH',
] as const;

/** Writes of one event-loop turn leave in one go per socket (corked until then). */
function createFlusher() {
  const dirty: CoreConnection<unknown>[] = [];
  let scheduled = false;
  const flushAll = () => {
    scheduled = false;
    for (const conn of dirty.splice(0)) conn.flush();
  };
  return (conn: CoreConnection<unknown>) => {
    dirty.push(conn);
    if (scheduled) return;
    scheduled = true;
    setImmediate(flushAll);
  };
}

/** What every connection of the core calls back into. */
export function createConnectionOwner<S>(ctx: CoreContext<S>): ConnectionOwner {
  const own = (conn: CoreConnection) => conn as CoreConnection<S>;
  return {
    frameLimits: ctx.limits,
    onFrame: (conn, frame) => onFrame(ctx, own(conn), frame),
    onBadFrame: (conn, frame) => onBadFrame(ctx, own(conn), frame),
    onViolation: (conn, why) => violation(ctx, own(conn), why),
    onTimer: (conn) => deadlinePassed(conn),
    onClosed: (conn) => connectionClosed(ctx, own(conn)),
    onDrain: (conn) => {
      if (conn.phase === 'connected' && conn.state) drain(ctx, conn.state);
    },
    onError: (conn, err) => ctx.hooks.error?.(own(conn), err),
    scheduleFlush: createFlusher(),
    linger: (conn) => {
      conn.timer.deadline = ctx.now() + LINGER_MS;
      ctx.wheel.schedule(conn.timer);
    },
  };
}
