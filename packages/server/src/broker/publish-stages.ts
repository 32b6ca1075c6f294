import {
  COMMAND_RESULT_LEVEL,
  commandRequestSchema,
  DEVICE_TOPIC_ROOT,
  type CommandRequest,
} from '@bulwark/protocol';
import type { Logger } from 'pino';
import { actorOf, createEventRateLimit, subjectOf } from '../events/index.ts';
import type { Firewall } from '../firewall/index.ts';
import { isConnectionLoss } from '../store/index.ts';
import type { BrokerCounters, Emit } from './emit.ts';
import type { RetainedStore } from './retained.ts';
import {
  CONTINUE,
  type BrokerSession,
  type BrokerTransforms,
  type DeliverStage,
  type PublishStage,
  type PublishVerdict,
  type SubscribeStage,
} from './stages.ts';

export interface PublishStageDeps {
  firewall: Pick<Firewall, 'checkPublish' | 'checkSubscriptionCount'>;
  retained: Pick<RetainedStore, 'retain'>;
  emit: Emit;
  counters: BrokerCounters;
  logger: Pick<Logger, 'error'>;
}

/** Publish quotas and shapes (firewall): disconnect, or throttle by not reading from the device for a while. */
export function quotaStage(deps: Pick<PublishStageDeps, 'firewall' | 'emit'>): PublishStage {
  const throttleEvents = createEventRateLimit({ max: 5, windowMs: 60_000 });
  return {
    name: 'quota',
    run(session, packet) {
      const verdict = deps.firewall.checkPublish(session.key, packet.topic, packet.payload.length);
      if (verdict.ok) return CONTINUE;
      const { subject } = session;
      if (verdict.action === 'disconnect') {
        deps.emit({
          type: 'firewall.disconnected',
          actor: 'system',
          subject,
          data: { reason: verdict.reason, remoteAddress: session.remoteAddress },
        });
        return { kind: 'deny', reason: verdict.reason };
      }
      const { record, suppressed } = throttleEvents.admit(session.key);
      if (record)
        deps.emit({
          type: 'firewall.throttled',
          actor: 'system',
          subject,
          data: { reason: verdict.reason, waitMs: verdict.waitMs, ...(suppressed ? { suppressed } : {}) },
        });
      return { kind: 'wait', ms: verdict.waitMs };
    },
  };
}

/** The device's compiled access; a denial is counted by reason and recorded (off the hot path). */
export function authorizeStage(deps: Pick<PublishStageDeps, 'emit' | 'counters'>): PublishStage {
  const denied = deps.counters.publishDenied;
  return {
    name: 'authorize',
    run(session, packet) {
      const decision = session.access.publish(packet.topic);
      if (decision.allow) return CONTINUE;
      const { reason } = decision;
      // Policy reasons are a handful of constants; the cap keeps the Prometheus label set bounded regardless.
      const label = denied.has(reason) || denied.size < 32 ? reason : 'other';
      denied.set(label, (denied.get(label) ?? 0) + 1);
      deps.emit({
        type: 'mqtt.publish_denied',
        actor: session.actor,
        subject: session.subject,
        data: { topic: packet.topic, reason },
      });
      // [MQTT-3.3.5-2]: an unauthorized PUBLISH is either acknowledged and dropped or the connection is
      // closed; we close. MQTT 3.1.1 has no negative PUBACK, so the client learns only that it ended.
      return { kind: 'deny', reason: `publish to ${packet.topic} denied: ${reason}` };
    },
  };
}

/** Counts what the device published, for the detectors. */
export const publishMeterStage: PublishStage = {
  name: 'meter',
  run(session, packet) {
    session.meter?.published(packet.topic, packet.payload.length);
    return CONTINUE;
  },
};

const EMPTY = Buffer.alloc(0);

/**
 * An allowed retained PUBLISH (or Will): kept within the device's and the broker's retained quotas, in the
 * store before the PUBACK. Over a quota it is still delivered to current subscribers but not retained, with
 * an event: MQTT 3.1.1 has no way to tell the client ([MQTT-3.3.5-2] allows acknowledging what is not
 * carried out), and closing the connection would only make it resend the same message.
 */
export function retainStage(deps: Pick<PublishStageDeps, 'retained' | 'emit' | 'logger'>): PublishStage {
  const retainedEvents = createEventRateLimit({ max: 5, windowMs: 60_000 });
  const stored = (topic: string) => ({
    ok: (): PublishVerdict => CONTINUE,
    failed: (err: unknown): PublishVerdict => {
      deps.logger.error({ err, topic }, 'cannot store a retained message');
      // The store is down: the message is delivered and kept in memory on this node, not stored. Refusing
      // it would end a live session that cannot reconnect (CONNACK 3) until the store is back.
      return isConnectionLoss(err)
        ? CONTINUE
        : { kind: 'deny', reason: 'retained message could not be stored' };
    },
  });
  return {
    name: 'retain',
    run(session, packet) {
      if (!packet.retain) return CONTINUE;
      const { topic, qos, classified } = packet;
      // Privacy's kept form when its data schema transforms what is kept. A schema that keeps nothing
      // (kept null) clears the topic: this message is not retained, nor is the one it replaces.
      const payload = packet.kept === null ? EMPTY : (packet.kept ?? packet.payload);
      // Charged to the session's key: the device, or the app instance.
      const verdict = deps.retained.retain(session.key, {
        topic,
        payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload),
        qos,
        classified,
      });
      if (verdict.ok) {
        const settle = stored(topic);
        return { kind: 'pending', verdict: verdict.stored.then(settle.ok, settle.failed) };
      }
      packet.retain = false;
      const { record, suppressed } = retainedEvents.admit(session.key);
      if (record)
        deps.emit({
          type: 'mqtt.retained_refused',
          actor: session.actor,
          subject: session.subject,
          data: {
            topic,
            bytes: payload.length,
            reason: verdict.reason,
            ...(suppressed ? { suppressed } : {}),
          },
        });
      return CONTINUE;
    },
  };
}

const COMMANDS_LEVEL = 'commands';

/** The device and command name of `devices/{id}/commands/{name}` (not its result), or undefined. */
export function commandTopicOf(topic: string): { deviceId: string; name: string } | undefined {
  const levels = topic.split('/');
  if (levels.length !== 4 || levels[0] !== DEVICE_TOPIC_ROOT || levels[2] !== COMMANDS_LEVEL)
    return undefined;
  const [, deviceId, , name] = levels;
  return deviceId && name ? { deviceId, name } : undefined;
}

/** Whether the topic is a command result, `devices/{id}/commands/{name}/result`. */
export function isCommandResultTopic(topic: string): boolean {
  const levels = topic.split('/');
  return (
    levels.length === 5 &&
    levels[0] === DEVICE_TOPIC_ROOT &&
    levels[2] === COMMANDS_LEVEL &&
    levels[4] === COMMAND_RESULT_LEVEL
  );
}

/** How far ahead an app's command may expire: a device must never hold one that runs for ever. */
export const APP_COMMAND_MAX_TTL_MS = 10 * 60_000;

/** The command request of an app's PUBLISH, or why it is refused. */
function appCommandOf(
  app: string,
  packet: { payload: Buffer | string; retain: boolean },
  now: number,
): { ok: true; request: CommandRequest } | { ok: false; reason: string } {
  // A retained command would run again on every device (re)subscription.
  if (packet.retain) return { ok: false, reason: 'app command must not be retained' };
  let json: unknown;
  try {
    json = JSON.parse(packet.payload.toString());
  } catch {
    return { ok: false, reason: 'app command is not a command request (not JSON)' };
  }
  const parsed = commandRequestSchema.safeParse(json);
  if (!parsed.success) return { ok: false, reason: 'app command is not a valid command request' };
  const request = parsed.data;
  if (request.issuedBy !== actorOf.app(app))
    return { ok: false, reason: `app command must be issued by ${actorOf.app(app)}` };
  if (request.expiresAt === null || request.expiresAt > now + APP_COMMAND_MAX_TTL_MS)
    return { ok: false, reason: 'app command must expire within 10 minutes' };
  if (request.expiresAt <= now) return { ok: false, reason: 'app command has already expired' };
  return { ok: true, request };
}

/**
 * An app commanding a device over MQTT (a PUBLISH on `devices/{id}/commands/{name}` its grants allow) must
 * send a valid command request, issued by itself, not retained, expiring within 10 minutes; it is recorded
 * like a command from the platform: `device.command_sent`, via `mqtt`, actor the app, subject the device.
 * An app never publishes a command result (those come from the device), whatever its grants say. Anything
 * else is denied (`mqtt.publish_denied`, the connection closed). Devices pass straight through.
 */
export function commandStage(deps: Pick<PublishStageDeps, 'emit' | 'counters'>): PublishStage {
  const denied = deps.counters.publishDenied;
  const deny = (session: BrokerSession, topic: string, reason: string): PublishVerdict => {
    // One Prometheus label for all of them (a reason may name the app).
    denied.set('app_command_refused', (denied.get('app_command_refused') ?? 0) + 1);
    deps.emit({
      type: 'mqtt.publish_denied',
      actor: session.actor,
      subject: session.subject,
      data: { topic, reason },
    });
    return { kind: 'deny', reason: `publish to ${topic} denied: ${reason}` };
  };
  return {
    name: 'command',
    run(session, packet) {
      if (session.principal.kind !== 'app') return CONTINUE;
      const { topic } = packet;
      if (isCommandResultTopic(topic))
        return deny(session, topic, 'command results come from the device only');
      const command = commandTopicOf(topic);
      if (!command) return CONTINUE;
      const now = Date.now();
      const checked = appCommandOf(session.principal.id, packet, now);
      if (!checked.ok) return deny(session, topic, checked.reason);
      deps.emit({
        type: 'device.command_sent',
        actor: session.actor,
        subject: subjectOf.device(command.deviceId),
        data: {
          commandId: checked.request.id,
          name: command.name,
          issuedAt: now,
          expiresAt: checked.request.expiresAt,
          via: 'mqtt',
        },
      });
      return CONTINUE;
    },
  };
}

/**
 * quota, authorize, transform (the platform's, empty by default), command (apps), meter, persist (the
 * telemetry store's, empty by default), retain.
 */
export function publishStages(
  deps: PublishStageDeps,
  transforms?: BrokerTransforms,
  persist?: readonly PublishStage[],
): readonly PublishStage[] {
  return [
    quotaStage(deps),
    authorizeStage(deps),
    ...(transforms?.publish ?? []),
    commandStage(deps),
    publishMeterStage,
    ...(persist ?? []),
    retainStage(deps),
  ];
}

/** Subscriptions per client (firewall), the device's access, then the meter's subscription count. */
export function subscribeStages(deps: Pick<PublishStageDeps, 'firewall'>): readonly SubscribeStage[] {
  return [
    {
      name: 'quota',
      run: (_session, { held }) =>
        deps.firewall.checkSubscriptionCount(held + 1) ? 'too_many_subscriptions' : undefined,
    },
    {
      name: 'authorize',
      run(session, { filter }) {
        const decision = session.access.subscribe(filter);
        return decision.allow ? undefined : decision.reason;
      },
    },
    {
      name: 'meter',
      run(session, { held }) {
        if (session.meter) session.meter.subscriptions = held + 1;
        return undefined;
      },
    },
  ];
}

/** Delivery to one subscriber: its access, the platform's transforms (empty by default), then the meter. */
export function deliverStages(transforms?: BrokerTransforms): readonly DeliverStage[] {
  const authorize: DeliverStage = {
    name: 'authorize',
    run: (session, packet) => (session.access.receive(packet.topic) ? packet : null),
  };
  const meter: DeliverStage = {
    name: 'meter',
    run(session, packet) {
      session.meter?.received(packet.payload.length);
      return packet;
    },
  };
  return [authorize, ...(transforms?.deliver ?? []), meter];
}
