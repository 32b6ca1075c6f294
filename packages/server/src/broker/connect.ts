import type { Logger } from 'pino';
import { actorOf, createEventRateLimit, subjectOf, type EventBus } from '../events/index.ts';
import type { Firewall } from '../firewall/index.ts';
import { connackError, connackOf } from './refusal.ts';
import type { SessionRegistry } from './sessions.ts';
import {
  runConnectStages,
  type BrokerSession,
  type ConnectContext,
  type ConnectRefusal,
  type ConnectStage,
  type PeerIdentity,
} from './stages.ts';

const actorOfPeer = (peer: PeerIdentity) =>
  peer.cn ? actorOf.device(peer.cn) : actorOf.anonymous(peer.remoteAddress);
const subjectOfPeer = (peer: PeerIdentity) => (peer.cn ? subjectOf.device(peer.cn) : undefined);

export interface ConnectHandlerDeps<C extends object> {
  stages: readonly ConnectStage[];
  sessions: Pick<SessionRegistry<C>, 'takenOver' | 'register' | 'has'>;
  events: Pick<EventBus, 'emit'>;
  firewall: Pick<Firewall, 'recordRefusal'>;
}

/**
 * Runs the connect stages for one CONNECT and registers the session they admit. Resolves with null (CONNACK
 * 0) or the error whose `returnCode` aedes sends; a throw is the caller's CONNACK 3.
 */
export function createConnectHandler<C extends object>(deps: ConnectHandlerDeps<C>) {
  const { events, sessions } = deps;

  /** Every refusal is durable before the CONNACK that reports it. */
  async function refuse(peer: PeerIdentity, refusal: ConnectRefusal): Promise<Error> {
    // Charged to the certificate that was presented, never to the address (Principle 9).
    if (!refusal.banned && peer.serial) deps.firewall.recordRefusal(peer.serial);
    await events.emit({
      type: 'mqtt.connect_refused',
      actor: actorOfPeer(peer),
      subject: subjectOfPeer(peer),
      data: {
        remoteAddress: peer.remoteAddress,
        reason: refusal.reason,
        returnCode: connackOf(refusal.code),
        ...(peer.serial ? { certSerial: peer.serial } : {}),
      },
    });
    // [MQTT-3.2.2-5]: a non-zero CONNACK, then the connection is closed.
    return connackError(refusal.reason, refusal.code);
  }

  return async function handleConnect(
    client: C,
    context: ConnectContext,
    transport: BrokerSession['transport'],
  ): Promise<Error | null> {
    const outcome = await runConnectStages(deps.stages, context);
    if (!outcome.ok) return refuse(context.peer, outcome.refusal);
    const { device, access, meter } = outcome.context;
    if (!device || !access)
      return refuse(context.peer, { code: 'internal', reason: 'access could not be compiled' });
    const { peer } = context;
    if (sessions.takenOver(client, device, peer.remoteAddress))
      return connackError('device banned: cloned identity', 'forbidden');
    sessions.register(client, {
      deviceId: device.deviceId,
      serial: device.serial,
      remoteAddress: peer.remoteAddress,
      certSubject: peer.subject,
      anonymous: peer.anonymous,
      access,
      meter,
      active: true,
      transport,
    });
    await events.emit({
      type: 'mqtt.connected',
      actor: actorOfPeer(peer),
      subject: subjectOf.device(device.deviceId),
      data: { remoteAddress: peer.remoteAddress, certSerial: device.serial },
    });
    if (!sessions.has(client))
      return connackError('device revoked or disabled while connecting', 'device_revoked');
    return null;
  };
}

/**
 * Refusals before authentication (malformed, too large, timed out, wrong protocol version) come from anyone
 * who passed TLS (or from the development listener): recorded at most 20 a minute per address, with the
 * count of those left out.
 */
export function createEarlyRefusals(deps: { events: Pick<EventBus, 'emit'>; logger: Pick<Logger, 'error'> }) {
  const limit = createEventRateLimit({ max: 20, windowMs: 60_000 });
  return function refuseEarly(peer: PeerIdentity, reason: string, returnCode?: number): Promise<void> {
    const { record, suppressed } = limit.admit(peer.remoteAddress);
    if (!record) return Promise.resolve();
    return deps.events
      .emit({
        type: 'mqtt.connect_refused',
        actor: actorOfPeer(peer),
        subject: subjectOfPeer(peer),
        data: {
          remoteAddress: peer.remoteAddress,
          reason,
          ...(returnCode !== undefined ? { returnCode } : {}),
          ...(peer.serial ? { certSerial: peer.serial } : {}),
          ...(suppressed ? { suppressed } : {}),
        },
      })
      .then(
        () => undefined,
        (err: unknown) => deps.logger.error({ err }, 'cannot record broker event'),
      );
  };
}
