/**
 * The broker's seam: what happens to a connection, a PUBLISH, a SUBSCRIBE and a delivery is a list of small
 * stages over these interfaces, compiled into arrays once when the broker is created. None of them knows
 * the MQTT engine: core-adapter.ts wires them to Bulwark's own core (core/).
 */
import type { ErrorCode } from '@bulwark/protocol';
import type { IdentifiedApp } from '../apps/index.ts';
import type { DeviceMeter } from '../monitor/index.ts';
import type { DeviceAccess } from '../policy/index.ts';

/** Who is connecting, as the transport (mutual TLS, or the development listener) saw it. */
export interface PeerIdentity {
  remoteAddress: string;
  /** The certificate's CN (our CA writes the device id there); undefined without one or with several. */
  cn: string | undefined;
  serial: string | undefined;
  subject: Record<string, string>;
  /** A client of the development listener (no certificate). */
  anonymous: boolean;
  /**
   * A TLS client that sent no certificate (admission `password`): it must authenticate at CONNECT with app
   * credentials (MQTT user name and password). `cn` and `serial` are then undefined.
   */
  password?: boolean | undefined;
  /** The client certificate's notAfter (epoch ms), when the transport verified one. */
  notAfter?: number | undefined;
}

/** The device a connection was identified as (by the identify stage). */
export interface IdentifiedDevice {
  deviceId: string;
  group: string | null;
  serial: string;
}

/** The app a connection was identified as (by the identify stage, through the apps door's check). */
export type { IdentifiedApp };

/** Who holds a session: a device (by its certificate) or an app instance (by its client id). */
export type Principal =
  | { readonly kind: 'device'; readonly id: string }
  | {
      readonly kind: 'app';
      /** The app's name. */
      readonly id: string;
      readonly instance: string | null;
      readonly clientId: string;
      readonly tokenId: string | null;
    };

/** What the connect stages know about one CONNECT; each stage may add to it. */
export interface ConnectContext {
  readonly peer: PeerIdentity;
  /** The client id the CONNECT carried, as sent (empty when the client left it to the server). */
  readonly clientId: string;
  /** When handling began: a revocation at or after this refuses the connection. */
  readonly startedAt: number;
  /** The CONNECT's user name and password, when it carried them (app credentials). */
  readonly credentials?: { username: string; password: Buffer } | undefined;
  /** The CONNECT's clean session flag (false: the client asks for a persistent session). */
  readonly cleanSession?: boolean | undefined;
  readonly device?: IdentifiedDevice | undefined;
  readonly app?: IdentifiedApp | undefined;
  readonly access?: DeviceAccess | undefined;
  readonly meter?: DeviceMeter | undefined;
}

/** Why a CONNECT is refused: `code` becomes the CONNACK return code through protocol's `mqttConnackOf`. */
export interface ConnectRefusal {
  code: ErrorCode;
  reason: string;
  /** A ban refused it: not counted again against the certificate (firewall.recordRefusal). */
  banned?: boolean;
}

export type ConnectOutcome = { ok: true; context: ConnectContext } | { ok: false; refusal: ConnectRefusal };

/**
 * One step of connection handling (firewall, identify, compile access, revocation guard, meter): it
 * continues with the context, enriched, or refuses with a protocol error code. The broker records every
 * refusal (`mqtt.connect_refused`, durable before the CONNACK) and answers with the code's CONNACK.
 *
 * @example
 * ```ts
 * const allowListed: ConnectStage = {
 *   name: 'allow-list',
 *   run: (context) =>
 *     allowed.has(context.peer.remoteAddress)
 *       ? { ok: true, context }
 *       : { ok: false, refusal: { code: 'forbidden', reason: 'address not on the allow-list' } },
 * };
 * ```
 */
export interface ConnectStage {
  readonly name: string;
  run(context: ConnectContext): ConnectOutcome | Promise<ConnectOutcome>;
}

/** Runs the stages in order; the first refusal ends the run. */
export async function runConnectStages(
  stages: readonly ConnectStage[],
  context: ConnectContext,
): Promise<ConnectOutcome> {
  let current = context;
  for (const stage of stages) {
    const outcome = await stage.run(current);
    if (!outcome.ok) return outcome;
    current = outcome.context;
  }
  return { ok: true, context: current };
}

/** What the broker counts for an app's deliveries (see app-delivery.ts); shared by the app's sessions. */
export interface AppDeliveryCounters {
  messages: number;
  bytes: number;
  dropped: number;
}

/** A connected device's or app's state, read by the publish, subscribe and delivery stages. */
export interface BrokerSession {
  readonly principal: Principal;
  /**
   * The registry and firewall key: the device id for a device; `app:<clientId>` for an app instance (a
   * device id has no `:`, so the two never meet). Quotas and retained messages are charged to it.
   */
  readonly key: string;
  /** Precomputed for events: `device:<id>` or `app:<name>`. */
  readonly subject: string;
  readonly actor: string;
  /** The certificate's serial, or `token:<tokenId>` for an app authenticated with a token. */
  readonly serial: string;
  readonly remoteAddress: string;
  readonly certSubject: Record<string, string>;
  readonly anonymous: boolean;
  /** Replaced when policies, zones or quarantine change (recompiled in place). */
  access: DeviceAccess;
  readonly meter: DeviceMeter | undefined;
  /** False once the session was dropped (revoked, banned, too large a packet): nothing more goes through. */
  active: boolean;
  /** Stops and resumes reading from the connection (throttling). */
  readonly transport: { pause(): void; resume(): void };
  /** An app session's delivery counters (its app's, shared by its instances); undefined for a device. */
  readonly delivery?: AppDeliveryCounters | undefined;
  /** An app session's facts its access is compiled from (replaced on `app.updated`); undefined for a device. */
  appFacts?: { zone: string | null; purpose: string | null } | undefined;
  /** When an app session's credential ends (token expiry, certificate notAfter): the session is dropped then. */
  readonly expiresAt?: number | null | undefined;
}

/** A PUBLISH as the stages see it; `payload` and `retain` may be changed by a stage (transform, retain). */
export interface PublishPacket {
  readonly topic: string;
  payload: Buffer | string;
  readonly qos: 0 | 1 | 2;
  retain: boolean;
  /**
   * Set by a transform stage (privacy): what the stores (telemetry store, retained messages) keep instead
   * of `payload`; null keeps nothing. Unset: they keep `payload`.
   */
  kept?: Buffer | null | undefined;
  /** Set by a transform stage (privacy): the data schema the payload matched and the subject it is about. */
  classified?: { readonly schema: string; readonly subject: string | null } | undefined;
}

/** Go on with the next stage: one shared constant, so the common case allocates nothing. */
export const CONTINUE = Object.freeze({ kind: 'continue' as const });

export type PublishVerdict =
  | typeof CONTINUE
  /** Refused: the connection is closed [MQTT-3.3.5-2]; the stage has recorded its event. */
  | { kind: 'deny'; reason: string }
  /** Stop reading from the device for `ms`, then go on with the next stage (nothing accepted is dropped). */
  | { kind: 'wait'; ms: number }
  /** The verdict arrives later (a store write); then the run goes on from the next stage. */
  | { kind: 'pending'; verdict: Promise<PublishVerdict> };

/**
 * One step of the publish pipeline (quota, authorize, transform, meter, retain). Runs on every PUBLISH: keep
 * it allocation-light (return {@link CONTINUE}; allocate only to refuse, wait or defer).
 *
 * @example
 * ```ts
 * // A transform stage (where privacy plugs in): drop a field before anyone receives it.
 * const dropLocation: PublishStage = {
 *   name: 'drop-location',
 *   run(session, packet) {
 *     if (packet.topic.endsWith('/telemetry')) packet.payload = withoutLocation(packet.payload);
 *     return CONTINUE;
 *   },
 * };
 * ```
 */
export interface PublishStage {
  readonly name: string;
  run(session: BrokerSession, packet: PublishPacket): PublishVerdict;
}

/** A message on its way to one subscriber. */
export interface DeliverPacket {
  readonly topic: string;
  readonly payload: Buffer | string;
}

/**
 * One step of delivery to one subscriber (authorize, transform, meter): the packet to deliver (the same one,
 * or a transformed copy), or null to withhold it from this subscriber. Runs once per message and subscriber.
 *
 * @example
 * ```ts
 * const onlyOwnTopics: DeliverStage = {
 *   name: 'own-topics',
 *   run: (session, packet) => (packet.topic.startsWith(topics.devicePrefix(session.key)) ? packet : null),
 * };
 * ```
 */
export interface DeliverStage {
  readonly name: string;
  run<P extends DeliverPacket>(session: BrokerSession, packet: P): P | null;
}

/** A SUBSCRIBE filter and how many the client already holds. */
export interface SubscribeRequest {
  readonly filter: string;
  readonly held: number;
}

/**
 * One step of subscribe authorization (quota, authorize, meter): undefined to go on, or the reason the filter
 * is refused (return code 0x80 in the SUBACK, §3.9.3).
 *
 * @example
 * ```ts
 * const noWildcardRoot: SubscribeStage = {
 *   name: 'no-root-wildcard',
 *   run: (_session, { filter }) => (filter === '#' ? 'root wildcard not allowed' : undefined),
 * };
 * ```
 */
export interface SubscribeStage {
  readonly name: string;
  run(session: BrokerSession, request: SubscribeRequest): string | undefined;
}

/** Stages the platform adds at the transform points (empty by default): privacy's ingress and egress. */
export interface BrokerTransforms {
  /** After authorization, before metering and retaining: changes what every subscriber gets. */
  publish?: readonly PublishStage[] | undefined;
  /** Per subscriber, after its authorization: what this consumer may receive. */
  deliver?: readonly DeliverStage[] | undefined;
}
