import { commandNameProblem, type CommandResult } from '@bulwark/protocol';
import { actorOf, createEventRateLimit, subjectOf, type EventBus } from '../events/index.ts';
import { isJson } from './command.rules.ts';
import { createSentCommands, type SentCommandsSettings } from './command.sent.ts';

export interface CommandResultsDeps {
  events: Pick<EventBus, 'emit' | 'on'>;
  now: () => number;
  /**
   * A device sent a result that is not one (bad JSON, schema, size, command name, or an id not recently sent
   * to it); at most 1 a minute per device.
   */
  onRejected?(deviceId: string, problem: string, suppressed: number): void;
  /** How many sent ids are remembered, how long, and how long an unknown one is waited for (tests). */
  sent?: Partial<SentCommandsSettings>;
}

/**
 * What devices answer on `devices/{id}/commands/{name}/result` (the ingress route `commandResult`): a valid
 * result for a command recently sent to that device (`device.command_sent`, from the platform or an app over
 * MQTT: 10,000 ids, 15 minutes) is recorded once as `device.command_result` (actor and subject the device),
 * whether or not a waiter expects it (late answers after a timeout, answers to an app's commands). Results
 * that fail the schema, or name an id not sent to that device, are counted and dropped: they change nothing.
 */
export function createCommandResults(deps: CommandResultsDeps) {
  const warnings = createEventRateLimit({ max: 1, windowMs: 60_000 });
  const sent = createSentCommands(deps.events, { now: deps.now, settings: deps.sent ?? {} });
  let rejected = 0;

  function reject(deviceId: string, problem: string): void {
    rejected += 1;
    const { record, suppressed } = warnings.admit(deviceId);
    if (record) deps.onRejected?.(deviceId, problem, suppressed);
  }

  async function accept(deviceId: string, result: CommandResult, name: string | undefined): Promise<void> {
    const nameProblem = name === undefined ? 'no command name' : commandNameProblem(name);
    if (name === undefined || nameProblem !== undefined) return reject(deviceId, nameProblem ?? '');
    if (!(await sent.claim(result.id, deviceId)))
      return reject(
        deviceId,
        `no command ${result.id} was sent to it recently, or its result was recorded already`,
      );
    const value: unknown = result.result;
    await deps.events.emit({
      type: 'device.command_result',
      actor: actorOf.device(deviceId),
      subject: subjectOf.device(deviceId),
      data: {
        commandId: result.id,
        name,
        status: result.status,
        ...(result.message === undefined ? {} : { message: result.message }),
        ...(value !== undefined && isJson(value) ? { result: value } : {}),
      },
    });
  }

  return {
    accept,
    reject,
    /** Results refused since start (Prometheus, tests). */
    rejected: () => rejected,
  };
}

export type CommandResults = ReturnType<typeof createCommandResults>;
