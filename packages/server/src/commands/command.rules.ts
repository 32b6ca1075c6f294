import { BulwarkError, COMMAND_MAX_BYTES, commandNameProblem, type CommandRequest } from '@bulwark/protocol';

/** Pure rules of commands: what may be sent, and how an outcome reads. No store, no events. */

export const MIN_TIMEOUT_MS = 1_000;
export const MAX_TIMEOUT_MS = 10 * 60_000;
export const DEFAULT_TIMEOUT_MS = 30_000;

/** A JSON value, as the audit log stores a command's data and a device's result. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** Whether `value` is plain JSON (what JSON.parse gives, or what survives JSON.stringify unchanged). */
export function isJson(value: unknown, depth = 0): value is JsonValue {
  if (depth > 64) return false;
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return true;
  if (typeof value === 'number') return Number.isFinite(value);
  if (Array.isArray(value)) return value.every((v) => isJson(v, depth + 1));
  if (typeof value !== 'object' || Object.getPrototypeOf(value) !== Object.prototype) return false;
  return Object.values(value).every((v) => isJson(v, depth + 1));
}

export function checkName(name: string): void {
  const problem = commandNameProblem(name);
  if (problem !== undefined) throw new BulwarkError('validation_failed', problem);
}

export function checkTimeout(timeoutMs: number): void {
  if (!Number.isInteger(timeoutMs) || timeoutMs < MIN_TIMEOUT_MS || timeoutMs > MAX_TIMEOUT_MS)
    throw new BulwarkError('validation_failed', 'command timeout must be from 1s to 10m');
}

/** The command's data as JSON, or a validation error. */
export function checkData(data: unknown): JsonValue | undefined {
  if (data === undefined) return undefined;
  if (!isJson(data)) throw new BulwarkError('validation_failed', 'command data must be JSON');
  return data;
}

/** What the device receives on `devices/{id}/commands/{name}` (`issuedBy` bounded as the schema says). */
export function requestOf(command: {
  commandId: string;
  actor: string;
  issuedAt: number;
  expiresAt: number | null;
  data: unknown;
}): CommandRequest {
  const { commandId, actor, issuedAt, expiresAt, data } = command;
  const request: CommandRequest = { id: commandId, issuedBy: actor.slice(0, 128), issuedAt, expiresAt };
  if (data !== undefined) request.data = data;
  return request;
}

/** The request a device receives, encoded; refused when larger than the devices accept. */
export function encodeRequest(request: CommandRequest): string {
  const text = JSON.stringify(request);
  const bytes = Buffer.byteLength(text);
  if (bytes > COMMAND_MAX_BYTES)
    throw new BulwarkError(
      'payload_too_large',
      `command request would be ${bytes} bytes, more than ${COMMAND_MAX_BYTES}: send less data`,
    );
  return text;
}

/** `30 s`, `2 min`, `90 s`: a wait as an operator reads it. */
export function formatWait(ms: number): string {
  if (ms < 120_000 || ms % 60_000 !== 0) return `${Math.round(ms / 100) / 10} s`;
  return `${ms / 60_000} min`;
}

/** Why a timed-out command got no answer, as the API and the CLI say it. */
export function timeoutMessage(input: {
  deviceId: string;
  timeoutMs: number;
  online: boolean;
  lastSeenAt: number | null;
}): string {
  const state = input.online
    ? 'online, no answer'
    : input.lastSeenAt === null
      ? 'offline, never connected'
      : `offline since ${new Date(input.lastSeenAt).toISOString()}`;
  return `device ${input.deviceId} did not answer within ${formatWait(input.timeoutMs)} (${state})`;
}
