import { randomUUID } from 'node:crypto';
import { BulwarkError } from '@bulwark/protocol';
import type { api } from '@bulwark/protocol';
import type { z } from 'zod';
import { subjectOf, type AuditEntry, type EventBus } from '../events/index.ts';
import {
  checkData,
  checkName,
  checkTimeout,
  encodeRequest,
  requestOf,
  timeoutMessage,
} from './command.rules.ts';

/** What `send` answers (the API's 200 body and the CLI's `--json`). */
export type CommandOutcome = z.input<typeof api.devices.commandOutcome>;

export interface SendCommand {
  deviceId: string;
  name: string;
  /** JSON the device receives as the request's `data`. */
  data?: unknown;
  /** How long to wait for the answer, 1 s to 10 min; the command expires then. */
  timeoutMs: number;
  /** Who issues it (`user:<name>`, `cli`): the request's `issuedBy` and the events' actor. */
  actor: string;
}

/** What commands need of a device: the devices door's `find`. */
export interface DeviceLookup {
  find(id: string): Promise<
    | {
        id: string;
        status: string;
        online: boolean;
        lastSeenAt: number | null;
      }
    | undefined
  >;
}

export interface CommandServiceDeps {
  events: Pick<EventBus, 'emit' | 'on' | 'startTail'>;
  devices: DeviceLookup;
  now: () => number;
  /** How often a waiting process reads what other processes appended (the audit-log tail). */
  tailIntervalMs: number;
  /** Sends waiting for their answer in this process at most (default 1,000); beyond, `send` is refused. */
  maxWaiting?: number;
}

export const DEFAULT_MAX_WAITING = 1_000;

type ResultEntry = AuditEntry<'device.command_result'>;

/**
 * Waiters by command id, resolved by the `device.command_result` of their device: from this process, or
 * from another one (the process holding the device's session) through the audit-log tail.
 */
function createWaiters(events: Pick<EventBus, 'on'>) {
  const waiting = new Map<
    string,
    { deviceId: string; resolve: (entry: ResultEntry) => void; abandon: (err: Error) => void }
  >();
  events.on('device.command_result', (entry) => {
    const waiter = waiting.get(entry.data.commandId);
    if (!waiter || entry.subject !== subjectOf.device(waiter.deviceId)) return;
    waiting.delete(entry.data.commandId);
    waiter.resolve(entry);
  });
  return {
    /** Sends waiting now. */
    size: () => waiting.size,
    /** Resolves with the result, or undefined once `timeoutMs` passed without one. */
    expect(commandId: string, deviceId: string, timeoutMs: number) {
      let cancel = () => {};
      const answer = new Promise<ResultEntry | undefined>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(commandId);
          resolve(undefined);
        }, timeoutMs);
        waiting.set(commandId, {
          deviceId,
          resolve: (entry) => {
            clearTimeout(timer);
            resolve(entry);
          },
          abandon: (err) => {
            clearTimeout(timer);
            reject(err);
          },
        });
        cancel = () => {
          clearTimeout(timer);
          waiting.delete(commandId);
        };
      });
      return { answer, cancel };
    },
    /** Ends every wait with `err` (the process is shutting down: its HTTP requests must not hold it). */
    abandonAll(err: (commandId: string) => Error) {
      for (const [commandId, waiter] of waiting) {
        waiting.delete(commandId);
        waiter.abandon(err(commandId));
      }
    },
  };
}

/** The device exists and may still be commanded (a revoked or decommissioned device never answers). */
async function commandable(devices: DeviceLookup, deviceId: string) {
  const device = await devices.find(deviceId);
  if (!device) throw new BulwarkError('not_found', `device ${deviceId} does not exist`);
  if (device.status === 'revoked') throw new BulwarkError('device_revoked', `device ${deviceId} is revoked`);
  if (device.status === 'decommissioned')
    throw new BulwarkError('conflict', `device ${deviceId} is decommissioned: it takes no commands`);
  return device;
}

function outcomeOf(commandId: string, entry: ResultEntry): CommandOutcome {
  const { status, message, result } = entry.data;
  return {
    commandId,
    status,
    ...(message === undefined ? {} : { message }),
    ...(result === undefined ? {} : { result }),
    online: true,
  };
}

/**
 * Sends commands and waits for their answers. A command travels through the audit log: `device.command_sent`
 * is committed first, every server process publishes it to the device (only the one holding its session
 * delivers), and the device's answer comes back as `device.command_result` from whichever process received
 * it. So the CLI (no broker) and any server node send alike.
 */
export function createCommandService(deps: CommandServiceDeps) {
  const { events, devices, now } = deps;
  const waiters = createWaiters(events);
  const maxWaiting = deps.maxWaiting ?? DEFAULT_MAX_WAITING;

  /** Bounded before allocated: a process holds at most `maxWaiting` sends; nothing is sent beyond. */
  const requireRoom = () => {
    if (waiters.size() >= maxWaiting)
      throw new BulwarkError(
        'unavailable',
        `too many commands are waiting for their answer in this process (${maxWaiting}): nothing was sent; try again when some have answered or timed out`,
      );
  };

  async function timedOut(input: SendCommand, commandId: string): Promise<CommandOutcome> {
    const device = await devices.find(input.deviceId);
    const online = device?.online ?? false;
    await events.emit({
      type: 'device.command_timed_out',
      actor: 'system',
      subject: subjectOf.device(input.deviceId),
      data: { commandId, name: input.name, timeoutMs: input.timeoutMs, online },
    });
    const message = timeoutMessage({ ...input, online, lastSeenAt: device?.lastSeenAt ?? null });
    return { commandId, status: 'timeout', message, online };
  }

  return {
    /** Sends the command and resolves with the device's answer, or `timeout` after `timeoutMs`. */
    send: async (input: SendCommand): Promise<CommandOutcome> => {
      checkName(input.name);
      checkTimeout(input.timeoutMs);
      const data = checkData(input.data);
      requireRoom();
      await commandable(devices, input.deviceId);
      const commandId = randomUUID();
      const issuedAt = now();
      const expiresAt = issuedAt + input.timeoutMs;
      // The size check, before anything is recorded.
      encodeRequest(requestOf({ commandId, actor: input.actor, issuedAt, expiresAt, data }));
      // The answer may come from another process (the server holding the session): follow the log.
      events.startTail(deps.tailIntervalMs);
      requireRoom();
      const wait = waiters.expect(commandId, input.deviceId, input.timeoutMs);
      try {
        await events.emit({
          type: 'device.command_sent',
          actor: input.actor,
          subject: subjectOf.device(input.deviceId),
          data: {
            commandId,
            name: input.name,
            issuedAt,
            expiresAt,
            via: 'platform',
            ...(data === undefined ? {} : { data }),
          },
        });
      } catch (err) {
        wait.cancel();
        throw err;
      }
      const entry = await wait.answer;
      return entry ? outcomeOf(commandId, entry) : timedOut(input, commandId);
    },
    /** Ends the waits of this process (shutdown): they fail with `unavailable`, naming the command. */
    abandonWaits: () =>
      waiters.abandonAll(
        (commandId) =>
          new BulwarkError(
            'unavailable',
            `the server is shutting down: command ${commandId} was sent; its answer, if any, will be in the audit log`,
          ),
      ),
  };
}

export type CommandService = ReturnType<typeof createCommandService>;
