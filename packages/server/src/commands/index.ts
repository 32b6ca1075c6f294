import { createCommandService, type CommandServiceDeps } from './command.service.ts';
import { createCommandResults, type CommandResultsDeps } from './command.results.ts';
import { startCommandPublisher, type CommandPublisherDeps } from './command.publisher.ts';

export type { CommandPublisherDeps } from './command.publisher.ts';
export { commandRoutes, type CommandRoutesDeps } from './command.routes.ts';
export { DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS, MIN_TIMEOUT_MS, formatWait } from './command.rules.ts';
export type { CommandOutcome, SendCommand, DeviceLookup } from './command.service.ts';

/**
 * The commands module's door. It owns no table: a command lives in the audit log (`device.command_sent`,
 * `device.command_result`, `device.command_timed_out`), so any process can send one and any process can see
 * its answer.
 *
 * @example
 * ```ts
 * const outcome = await platform.commands.send({ deviceId: 'pump-1', name: 'ping', timeoutMs: 30_000, actor: 'cli' });
 * if (outcome.status === 'timeout') console.log(outcome.message); // device pump-1 did not answer within 30 s (…)
 * ```
 */
export function createCommands(deps: CommandServiceDeps & Pick<CommandResultsDeps, 'onRejected'>) {
  const service = createCommandService(deps);
  const results = createCommandResults(deps);
  return {
    send: service.send,
    /** The ingress route `commandResult`: a device's answer (the command name from the topic). */
    results,
    /**
     * The server process's part: publishes every command the platform records to its device (see
     * command.publisher.ts). The returned stop also ends this process's waits, so that a shutdown is not
     * held by a request waiting for an answer.
     */
    serve(server: Pick<CommandPublisherDeps, 'publish' | 'onError'>): () => void {
      const stop = startCommandPublisher({ ...server, events: deps.events, now: deps.now });
      return () => {
        stop();
        service.abandonWaits();
      };
    },
  };
}

export type Commands = ReturnType<typeof createCommands>;
