import { createHash } from 'node:crypto';
import { createReadStream, readFileSync, writeFileSync } from 'node:fs';
import { BulwarkError, durationMs, parseDurationMs, parseSeverity, type Severity } from '@bulwark/protocol';
import {
  privateKeyFromPem,
  publicKeyFrom,
  signDocument,
  type Release,
  type Rollout,
  type TufRole,
} from '../firmware/index.ts';
import type { Platform } from '../platform.ts';
import { parseAdvisorySeverity, type AdvisorySeverity } from '../risk/index.ts';
import { iso, printTable } from './context.ts';

/** What `bulwark firmware …` records as the actor of its changes. */
export const ACTOR = 'cli';

/** A repeatable option's values. */
export const collect = (value: string, previous: string[] = []) => [...previous, value];

export function readText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new BulwarkError('validation_failed', `cannot read ${what} ${file}: ${(err as Error).message}`);
  }
}

/**
 * A duration option in the one grammar (`30s`, `15m`, `24h`, `7d`), checked when the command line is parsed;
 * `0` is accepted where nothing is a valid wait (soak, retry delay).
 */
export function durationOption(name: string, { zero = false }: { zero?: boolean } = {}) {
  return (value: string): number => {
    if (zero && (value.trim() === '0' || durationMs(value) === 0)) return 0;
    return parseDurationMs(value, name);
  };
}

/** A severity option on the one scale (any case): a bad value fails naming the choices, never matches nothing. */
export function severityOption(name: string) {
  return (value: string): Severity => parseSeverity(value, name);
}

/** An advisory severity: the one scale, plus `none` and `unknown` (any case). */
export function advisorySeverityOption(name: string) {
  return (value: string): AdvisorySeverity => parseAdvisorySeverity(value, name);
}

/** Size and SHA-256 of a file, streamed. */
export async function digest(file: string): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { size, sha256: hash.digest('hex') };
}

export function releaseRow(r: Release & { signed?: boolean }): Record<string, string> {
  return {
    release: `${r.name}@${r.version}`,
    id: r.id,
    status: r.status,
    security: String(r.securityVersion),
    hardware: r.hardwareIds.join(','),
    size: String(r.size),
    signed: r.signed === undefined ? '' : r.signed ? 'yes' : 'no',
    'end of support': iso(r.endOfSupport).slice(0, 10),
  };
}

function rolloutRows(r: Rollout): Record<string, string>[] {
  return r.phases.map((p) => ({
    phase: `${p.phase + 1}${p.phase === r.currentPhase ? '*' : ''}`,
    percent: `${p.percent}%`,
    devices: String(p.devices),
    succeeded: String(p.succeeded),
    failed: String(p.failed),
    'in progress': String(p.inProgress),
    pending: String(p.pending),
    skipped: String(p.skipped),
  }));
}

export function printRollout(r: Rollout): void {
  process.stdout.write(
    `rollout ${r.id}: ${r.release.name}@${r.release.version} ${r.status}${r.pauseReason ? ` (${r.pauseReason})` : ''}\n`,
  );
  printTable(rolloutRows(r), [
    'phase',
    'percent',
    'devices',
    'succeeded',
    'failed',
    'in progress',
    'pending',
    'skipped',
  ]);
}

export function output(text: string, out: string | undefined, what: string): void {
  if (out) {
    writeFileSync(out, text + '\n', { mode: 0o644 });
    process.stderr.write(`${what} written to ${out}\n`);
  } else process.stdout.write(text + '\n');
}

/** Keys from files: private keys sign, public keys are only named. */
export function keysFrom(files: string[] | undefined) {
  return (files ?? []).map((file) => {
    const text = readText(file, 'key');
    if (/PRIVATE KEY/.test(text)) {
      const key = privateKeyFromPem(text, file);
      return { public: key.public, private: key };
    }
    return { public: publicKeyFrom(text, file), private: undefined };
  });
}

export type KeyFiles = ReturnType<typeof keysFrom>;

/** Signs metadata with the private keys among `signers` and publishes it. */
export async function signAndPublish(
  p: Platform,
  document: { body: string; role: TufRole },
  signers: KeyFiles,
) {
  const keys = signers.flatMap((k) => (k.private ? [k.private] : []));
  const signed = signDocument(document.body, keys);
  return { signed, result: await p.firmware.tuf.publish(signed, ACTOR), role: document.role };
}
