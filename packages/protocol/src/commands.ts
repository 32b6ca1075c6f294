import { z } from 'zod';
import { DEVICE_TOPIC_ROOT } from './topics.ts';

/**
 * Commands to a device: the platform (or an app with a publish grant) publishes a {@link CommandRequest} on
 * `devices/{id}/commands/{name}`; the device answers with a {@link CommandResult} on
 * `devices/{id}/commands/{name}/result`.
 *
 * @example
 * ```ts
 * import { commandTopics, commandRequestSchema } from '@bulwark/protocol';
 * client.subscribe(commandTopics.all('pump-1'));
 * client.on('message', (topic, payload) => {
 *   const name = commandTopics.nameOf('pump-1', topic); // 'ping'
 *   const request = commandRequestSchema.parse(JSON.parse(payload.toString()));
 *   client.publish(commandTopics.result('pump-1', name), JSON.stringify({ id: request.id, status: 'ok' }));
 * });
 * ```
 */

/** A command name is one plain topic level: letters, digits, `_ . -`, up to 64 characters. */
export const commandNamePattern = /^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9])?$/;

export function commandNameProblem(name: string): string | undefined {
  if (!commandNamePattern.test(name) || name.includes('..'))
    return 'command name must be 1-64 characters of A-Z a-z 0-9 _ . -, starting and ending with a letter or digit';
  if (name === 'result') return 'command name "result" is reserved';
  return undefined;
}

export const COMMAND_RESULT_LEVEL = 'result';

export const commandTopics = {
  /** What a device subscribes to for its commands: `devices/{id}/commands/+`. */
  all: (deviceId: string) => `${DEVICE_TOPIC_ROOT}/${deviceId}/commands/+`,
  /** `devices/{id}/commands/{name}` */
  request: (deviceId: string, name: string) => `${DEVICE_TOPIC_ROOT}/${deviceId}/commands/${name}`,
  /** `devices/{id}/commands/{name}/result` */
  result: (deviceId: string, name: string) =>
    `${DEVICE_TOPIC_ROOT}/${deviceId}/commands/${name}/${COMMAND_RESULT_LEVEL}`,
  /** Every result of a device: `devices/{id}/commands/+/result`. */
  results: (deviceId: string) => `${DEVICE_TOPIC_ROOT}/${deviceId}/commands/+/${COMMAND_RESULT_LEVEL}`,
  /** The command name of a request topic of this device, or undefined for any other topic. */
  nameOf(deviceId: string, topic: string): string | undefined {
    const prefix = `${DEVICE_TOPIC_ROOT}/${deviceId}/commands/`;
    if (!topic.startsWith(prefix)) return undefined;
    const name = topic.slice(prefix.length);
    return commandNameProblem(name) === undefined ? name : undefined;
  },
  /** The command name of a result topic of this device, or undefined for any other topic. */
  resultNameOf(deviceId: string, topic: string): string | undefined {
    const prefix = `${DEVICE_TOPIC_ROOT}/${deviceId}/commands/`;
    const suffix = `/${COMMAND_RESULT_LEVEL}`;
    if (!topic.startsWith(prefix) || !topic.endsWith(suffix)) return undefined;
    const name = topic.slice(prefix.length, topic.length - suffix.length);
    return commandNameProblem(name) === undefined ? name : undefined;
  },
} as const;

/** Largest command or result payload the platform sends or accepts (bytes of JSON). */
export const COMMAND_MAX_BYTES = 16 * 1024;

/** What the device receives on `devices/{id}/commands/{name}`. */
export const commandRequestSchema = z
  .object({
    /** Unique per command; the result carries it back. */
    id: z.string().min(1).max(64),
    /** Who issued it: `user:<name>`, `cli`, `app:<name>`. */
    issuedBy: z.string().max(128),
    issuedAt: z.number().int().nonnegative(),
    /** Epoch ms after which the device must refuse it (`status: refused`, "expired"); null: never. */
    expiresAt: z.number().int().nonnegative().nullable(),
    data: z.unknown().optional(),
  })
  .strict();
export type CommandRequest = z.infer<typeof commandRequestSchema>;

export const commandStatuses = ['ok', 'failed', 'refused'] as const;
export type CommandStatus = (typeof commandStatuses)[number];

/** What the device answers on `devices/{id}/commands/{name}/result`. */
export const commandResultSchema = z
  .object({
    id: z.string().min(1).max(64),
    /** `ok`: done; `failed`: tried and failed; `refused`: not run (unknown command, expired, malformed). */
    status: z.enum(commandStatuses),
    /** Why, for failed and refused; free text for ok. */
    message: z.string().max(1024).optional(),
    result: z.unknown().optional(),
  })
  .strict();
export type CommandResult = z.infer<typeof commandResultSchema>;

/**
 * Application names are MQTT user names and client ids (`NAME` or `NAME/<instance>`), topic levels and
 * subjects (`app:<name>`): lower-case letters, digits and `-`, starting with a letter, up to 48 characters.
 */
export const appNamePattern = /^[a-z][a-z0-9-]{0,47}$/;

export function appNameProblem(name: string): string | undefined {
  return appNamePattern.test(name)
    ? undefined
    : 'app name must be 1-48 characters of a-z 0-9 -, starting with a letter';
}

/** An app instance suffix (`NAME/<instance>`): letters, digits, `_ . -`, up to 64 characters. */
export const appInstancePattern = /^[A-Za-z0-9_.-]{1,64}$/;

/** The app and instance of an app's MQTT client id, or undefined when it is not one. */
export function parseAppClientId(clientId: string): { app: string; instance: string | null } | undefined {
  const slash = clientId.indexOf('/');
  const app = slash < 0 ? clientId : clientId.slice(0, slash);
  const instance = slash < 0 ? null : clientId.slice(slash + 1);
  if (appNameProblem(app) !== undefined) return undefined;
  if (instance !== null && (!appInstancePattern.test(instance) || instance === '.' || instance === '..'))
    return undefined;
  return { app, instance };
}
