import semver from 'semver';
import { BulwarkError, type PcrValues } from '@bulwark/protocol';

export const releaseStatuses = ['draft', 'ready', 'retired'] as const;
/** `draft`: metadata only, artifact not uploaded yet. `ready`: artifact stored and verified. `retired`: withdrawn. */
export type ReleaseStatus = (typeof releaseStatuses)[number];

export interface Release {
  id: string;
  name: string;
  version: string;
  filename: string;
  /** The TUF target path: `{name}/{version}/{filename}`. */
  targetPath: string;
  hardwareIds: string[];
  /** Anti-rollback counter: devices refuse an image whose security version is lower than the installed one. */
  securityVersion: number;
  releaseNotes: string | null;
  /** End of the security-update support period, epoch ms (ETSI EN 303 645 provision 5.3-13). */
  endOfSupport: number;
  size: number;
  sha256: string;
  status: ReleaseStatus;
  hasSbom: boolean;
  sbomComponents: number;
  createdBy: string;
  createdAt: number;
  updatedAt: number;
  uploadedAt: number | null;
  retiredAt: number | null;
  /** Reference (golden) PCR values measured boot of this image yields (attestation compares quotes with them). */
  referenceValues: PcrValues | null;
}

export interface NewRelease {
  name: string;
  version: string;
  filename?: string | undefined;
  hardwareIds: string[];
  securityVersion: number;
  releaseNotes?: string | undefined;
  /** Epoch ms or an ISO 8601 date. */
  endOfSupport: number | string;
  size: number;
  sha256: string;
  /** A CycloneDX JSON document (object or text). */
  sbom?: unknown;
  /** `{ bank: { index: hex } }`, each value its bank's digest size (checked by `checkReferenceValues`). */
  referenceValues?: unknown;
}

// Names and file names become path segments on disk and in URLs: one segment each, no dots-only parts.
const segment = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$/;
const filePattern = /^[A-Za-z0-9](?:[A-Za-z0-9._+-]{0,126}[A-Za-z0-9])?$/;
const hardwarePattern = /^[A-Za-z0-9](?:[A-Za-z0-9._:-]{0,126}[A-Za-z0-9])?$/;

const invalid = (message: string) => new BulwarkError('validation_failed', message);

export function checkName(name: string): string {
  if (typeof name !== 'string' || !segment.test(name) || name.includes('..'))
    throw invalid(
      'name must be 1-64 characters of A-Z a-z 0-9 . _ -, starting and ending with a letter or digit (no "/" or "..")',
    );
  return name;
}

/** Semantic Versioning 2.0.0, exactly as given (no leading `v`, no spaces). */
export function checkVersion(version: string): string {
  if (typeof version !== 'string' || version.length > 64 || semver.valid(version) !== version)
    throw invalid(`version must be a semantic version such as 1.4.0 or 2.0.0-rc.1, not "${String(version)}"`);
  if (version.includes('..') || version.includes('/')) throw invalid('version must not contain "/" or ".."');
  return version;
}

export function checkFilename(filename: string): string {
  if (typeof filename !== 'string' || !filePattern.test(filename) || filename.includes('..'))
    throw invalid(
      'filename must be 1-128 characters of A-Z a-z 0-9 . _ + -, starting and ending with a letter or digit (no "/" or "..")',
    );
  return filename;
}

export function checkHardwareIds(ids: unknown): string[] {
  if (!Array.isArray(ids) || ids.length === 0 || ids.length > 64)
    throw invalid('hardwareIds must list 1-64 hardware/model ids the image fits');
  for (const id of ids)
    if (typeof id !== 'string' || !hardwarePattern.test(id))
      throw invalid(`hardware id "${String(id)}" must be 1-128 characters of A-Z a-z 0-9 . _ : -`);
  return [...new Set(ids as string[])].sort();
}

export function checkSecurityVersion(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 2 ** 31 - 1)
    throw invalid('securityVersion must be a whole number from 0 to 2147483647');
  return value;
}

export function checkSha256(value: unknown): string {
  if (typeof value !== 'string' || !/^[0-9a-fA-F]{64}$/.test(value))
    throw invalid('sha256 must be 64 hexadecimal characters');
  return value.toLowerCase();
}

export function checkEndOfSupport(value: number | string, now: number): number {
  const ms = typeof value === 'number' ? value : Date.parse(value);
  if (!Number.isFinite(ms))
    throw invalid('endOfSupport must be an ISO 8601 date (2030-12-31) or epoch milliseconds');
  if (ms <= now)
    throw invalid('endOfSupport must be in the future: it is the published end of security updates');
  return ms;
}

export function checkReleaseNotes(value: unknown): string | null {
  if (value === undefined || value === null || value === '') return null;
  if (typeof value !== 'string' || value.length > 64 * 1024)
    throw invalid('releaseNotes must be text of at most 64 KiB');
  return value;
}

export const targetPathOf = (name: string, version: string, filename: string) =>
  `${name}/${version}/${filename}`;
