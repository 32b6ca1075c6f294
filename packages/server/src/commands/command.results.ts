import { commandNameProblem, type CommandResult } from '@bulwark/protocol';
import { actorOf, createEventRateLimit, subjectOf, type EventBus } from '../events/index.ts';
import { isJson } from './command.rules.ts';

export interface CommandResultsDeps {
  events: Pick<EventBus, 'emit'>;
  /** A device sent a result that is not one (bad JSON, schema, size, command name); at most 1 a minute per device. */
  onRejected?(deviceId: string, problem: string, suppressed: number): void;
}

/**
 * What devices answer on `devices/{id}/commands/{name}/result` (the ingress route `commandResult`): each valid
 * result is recorded as `device.command_result` (actor and subject the device), whether or not a waiter
 * expects it (late answers after a timeout, answers to commands an app published over MQTT). Results that
 * fail the schema are counted and dropped: they change nothing.
 */
export function createCommandResults(deps: CommandResultsDeps) {
  const warnings = createEventRateLimit({ max: 1, windowMs: 60_000 });
  let rejected = 0;

  function reject(deviceId: string, problem: string): void {
    rejected += 1;
    const { record, suppressed } = warnings.admit(deviceId);
    if (record) deps.onRejected?.(deviceId, problem, suppressed);
  }

  async function accept(deviceId: string, result: CommandResult, name: string | undefined): Promise<void> {
    const nameProblem = name === undefined ? 'no command name' : commandNameProblem(name);
    if (name === undefined || nameProblem !== undefined) return reject(deviceId, nameProblem ?? '');
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
