import type { Logger } from 'pino';
import { actorOf, createEventRateLimit, subjectOf, type EventBus } from '../events/index.ts';
import type { Firewall } from '../firewall/index.ts';
import { connackError, connackOf, type ConnackError } from './refusal.ts';
import { appKey, type SessionRegistry } from './sessions.ts';
import {
  runConnectStages,
  type AppDeliveryCounters,
  type BrokerSession,
  type ConnectContext,
  type ConnectRefusal,
  type ConnectStage,
  type PeerIdentity,
} from './stages.ts';

/** Our CA writes this OU into app certificates (pki): their CN names an app, not a device. */
const APP_OU = 'bulwark-apps';
const isAppCertificate = (peer: PeerIdentity) => peer.subject.OU === APP_OU;
const actorOfPeer = (peer: PeerIdentity) => {
  if (!peer.cn) return actorOf.anonymous(peer.remoteAddress);
  return isAppCertificate(peer) ? actorOf.app(peer.cn) : actorOf.device(peer.cn);
};
const subjectOfPeer = (peer: PeerIdentity) => {
  if (!peer.cn) return undefined;
  return isAppCertificate(peer) ? subjectOf.app(peer.cn) : subjectOf.device(peer.cn);
};

/** Who the connect stages identified, as the session names it (key, subject and actor precomputed). */
function principalOf(
  context: ConnectContext,
): Pick<BrokerSession, 'principal' | 'key' | 'subject' | 'actor' | 'serial'> | undefined {
  const { device, app } = context;
  if (device) {
    const id = device.deviceId;
    return {
      principal: { kind: 'device', id },
      key: id,
      subject: subjectOf.device(id),
      actor: actorOf.device(id),
      serial: device.serial,
    };
  }
  if (!app) return undefined;
  return {
    principal: {
      kind: 'app',
      id: app.app,
      instance: app.instance,
      clientId: app.clientId,
      tokenId: app.tokenId,
    },
    key: appKey(app.clientId),
    subject: subjectOf.app(app.app),
    actor: actorOf.app(app.app),
    serial: app.serial,
  };
}

export interface ConnectHandlerDeps<C extends object> {
  stages: readonly ConnectStage[];
  sessions: Pick<SessionRegistry<C>, 'takenOver' | 'register' | 'has'>;
  events: Pick<EventBus, 'emit'>;
  firewall: Pick<Firewall, 'recordRefusal'>;
  /** The delivery counters of an app, shared by its sessions (app-delivery.ts). */
  appCounters?: ((app: string) => AppDeliveryCounters) | undefined;
}

/**
 * Runs the connect stages for one CONNECT and registers the session they admit. Resolves with null (CONNACK
 * 0) or the error whose `reasonCode` the core sends (a 3.1.1 client gets its return code); a throw is the
 * caller's CONNACK 3 (0x88).
 */
export function createConnectHandler<C extends object>(deps: ConnectHandlerDeps<C>) {
  const { events, sessions } = deps;

  /** Every refusal is durable before the CONNACK that reports it. */
  async function refuse(peer: PeerIdentity, refusal: ConnectRefusal): Promise<ConnackError> {
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
    return connackError(refusal.reason, refusal.code, { banned: refusal.banned === true });
  }

  return async function handleConnect(
    client: C,
    context: ConnectContext,
    transport: BrokerSession['transport'],
  ): Promise<ConnackError | null> {
    const outcome = await runConnectStages(deps.stages, context);
    if (!outcome.ok) return refuse(context.peer, outcome.refusal);
    const { access, meter } = outcome.context;
    const who = principalOf(outcome.context);
    if (!who || !access)
      return refuse(context.peer, { code: 'internal', reason: 'access could not be compiled' });
    const { peer } = context;
    if (sessions.takenOver(client, who, peer.remoteAddress))
      return connackError(`${who.principal.kind} banned: cloned identity`, 'forbidden', { banned: true });
    const delivery = who.principal.kind === 'app' ? deps.appCounters?.(who.principal.id) : undefined;
    sessions.register(client, {
      ...who,
      remoteAddress: peer.remoteAddress,
      certSubject: peer.subject,
      anonymous: peer.anonymous,
      access,
      meter,
      active: true,
      transport,
      delivery,
      appFacts: outcome.context.app && {
        zone: outcome.context.app.zone,
        purpose: outcome.context.app.purpose,
      },
      expiresAt: outcome.context.app?.expiresAt ?? null,
    });
    await events.emit({
      type: 'mqtt.connected',
      // A device's actor is as the transport saw it (anonymous on the development listener).
      actor: who.principal.kind === 'device' ? actorOfPeer(peer) : who.actor,
      subject: who.subject,
      data: { remoteAddress: peer.remoteAddress, certSerial: who.serial },
    });
    if (sessions.has(client)) return null;
    if (who.principal.kind === 'app') return connackError('app revoked while connecting', 'forbidden');
    return connackError('device revoked or disabled while connecting', 'device_revoked');
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
