import type { Logger } from 'pino';
import { CONTINUE, type BrokerSession, type PublishStage, type PublishVerdict } from '../broker/index.ts';
import { isConnectionLoss } from '../store/index.ts';
import type { PatternMatcher } from './telemetry.patterns.ts';
import type { TelemetryWriter } from './telemetry.writer.ts';

export interface TelemetryStageDeps {
  /** The compiled patterns, null when none is stored (the common case: the store is off). */
  patterns: { current(): PatternMatcher | null };
  writer: Pick<TelemetryWriter, 'add'>;
  now: () => number;
  logger: Pick<Logger, 'error' | 'warn'>;
}

/** Messages not stored because the store was unreachable or the queue full (the message itself went on). */
export interface TelemetryStageCounters {
  unstored: number;
}

/** The device a message is stored for: the publishing device. Apps' messages are not stored. */
const publisherOf = (session: BrokerSession): string | undefined =>
  session.principal.kind === 'device' ? session.principal.id : undefined;

/** Logs at most one failure a minute (the store down fails every message the same way). */
function failureLog(deps: TelemetryStageDeps, counters: TelemetryStageCounters) {
  let lastLogged = 0;
  return (err: unknown, what: string) => {
    counters.unstored++;
    const t = Date.now();
    if (t - lastLogged < 60_000) return;
    lastLogged = t;
    deps.logger.error({ err, unstored: counters.unstored }, what);
  };
}

/**
 * The broker's telemetry stage (`BrokerDeps.persist`: after meter, before retain, authorized messages only):
 * a device message whose topic matches a stored pattern is written in a batch, in the form its data schema
 * keeps (privacy's `packet.kept`, with its subject and schema; nothing when the schema keeps nothing). QoS 1 and 2 wait for the
 * batch's commit, so the PUBACK means stored; QoS 0 does not wait. As for retained messages (retainStage), a
 * store that cannot be reached never ends the session: the message is delivered, not stored, and counted;
 * any other write failure refuses the PUBLISH. With no pattern stored the stage returns at once.
 */
export function createTelemetryStage(
  deps: TelemetryStageDeps,
): PublishStage & { counters: TelemetryStageCounters } {
  const counters: TelemetryStageCounters = { unstored: 0 };
  const failed = failureLog(deps, counters);
  const settle = {
    ok: (): PublishVerdict => CONTINUE,
    failed: (err: unknown): PublishVerdict => {
      failed(err, 'cannot store telemetry');
      return isConnectionLoss(err) ? CONTINUE : { kind: 'deny', reason: 'telemetry could not be stored' };
    },
  };
  return {
    name: 'telemetry',
    counters,
    run(session, packet) {
      const matcher = deps.patterns.current();
      if (matcher === null) return CONTINUE;
      const pattern = matcher.match(packet.topic);
      const deviceId = pattern === undefined ? undefined : publisherOf(session);
      // Privacy's kept form when its data schema transforms what is kept; null: the schema keeps nothing.
      if (pattern === undefined || deviceId === undefined || packet.kept === null) return CONTINUE;
      const kept = packet.kept ?? packet.payload;
      const payload = Buffer.isBuffer(kept) ? kept : Buffer.from(kept);
      const stored = deps.writer.add({
        device_id: deviceId,
        topic: packet.topic,
        pattern,
        subject_id: packet.classified?.subject ?? null,
        data_schema: packet.classified?.schema ?? null,
        received_at: deps.now(),
        payload: payload.toString('base64'),
        bytes: payload.length,
      });
      if (stored === undefined) {
        failed(new Error('telemetry queue full'), 'telemetry queue full: message not stored');
        return CONTINUE;
      }
      if (packet.qos === 0) {
        stored.catch((err: unknown) => failed(err, 'cannot store telemetry'));
        return CONTINUE;
      }
      return { kind: 'pending', verdict: stored.then(settle.ok, settle.failed) };
    },
  };
}
