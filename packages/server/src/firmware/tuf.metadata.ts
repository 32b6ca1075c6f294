import { createHash } from 'node:crypto';
import { canonicalize } from '@tufjs/canonical-json';
import {
  Metadata,
  MetadataKind,
  type Root,
  type Snapshot,
  type Targets,
  type Timestamp,
} from '@tufjs/models';
import { BulwarkError } from '@bulwark/protocol';
import type { EventBus } from '../events/index.ts';
import type { SecretBox } from '../secrets/index.ts';
import type { Db } from '../store/index.ts';
import { keyIdOf, signerOf, type TufPrivateKey, type TufPublicKey } from './tuf-keys.ts';
import { tufRoles, type TufRole } from './tuf.store.ts';

/** TUF specification version our metadata follows. */
export const SPEC_VERSION = '1.0.31';

export interface TufExpiry {
  root: number;
  targets: number;
  snapshot: number;
  timestamp: number;
}

/** One image as targets metadata lists it. */
export interface TargetEntry {
  path: string;
  length: number;
  sha256: string;
  custom: Record<string, string | number | string[]>;
}

export interface TufRepositoryDeps {
  db: Db;
  box: Pick<SecretBox, 'seal' | 'open'>;
  events: Pick<EventBus, 'emit'>;
  now: () => number;
  expiry: TufExpiry;
  /** The images that may be listed in targets metadata now (uploaded, verified, not retired). */
  signableTargets(): Promise<TargetEntry[]>;
}

export interface RoleStatus {
  version: number;
  expires: number;
  keyids: string[];
  threshold: number;
}

export interface TufStatus {
  initialized: boolean;
  roles: Partial<Record<TufRole, RoleStatus>>;
  /** Roles with unsigned metadata waiting for offline signatures. */
  pending: TufRole[];
  /** False when the targets metadata no longer verifies under the current root (targets keys rotated). */
  targetsValid: boolean;
}

export interface RootKeysInput {
  rootKeys: TufPublicKey[];
  rootThreshold: number;
  targetsKeys: TufPublicKey[];
  targetsThreshold: number;
}

export interface RootChange {
  /** The role whose keys change; omitted: the same keys, a new version with a fresh expiry. */
  role?: TufRole | undefined;
  /** New keys for root or targets (snapshot and timestamp keys are generated here). */
  keys?: TufPublicKey[] | undefined;
  threshold?: number | undefined;
}

export type Json = Record<string, unknown>;

/** TUF wants `YYYY-MM-DDTHH:MM:SSZ`. */
export const tufTime = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

const kindOf: Record<TufRole, MetadataKind> = {
  root: MetadataKind.Root,
  targets: MetadataKind.Targets,
  snapshot: MetadataKind.Snapshot,
  timestamp: MetadataKind.Timestamp,
};

interface RoleTypes {
  root: Root;
  targets: Targets;
  snapshot: Snapshot;
  timestamp: Timestamp;
}

/** Parses metadata JSON of the given role with @tufjs/models; anything malformed is a validation error. */
export function parseMetadata<R extends TufRole>(role: R, input: unknown): Metadata<RoleTypes[R]> {
  let json = input;
  if (typeof input === 'string' || Buffer.isBuffer(input)) {
    try {
      json = JSON.parse(input.toString()) as unknown;
    } catch {
      throw new BulwarkError('validation_failed', `${role} metadata is not JSON`);
    }
  }
  try {
    // fromJSON has one overload per kind; `role` picks the kind at run time.
    return Metadata.fromJSON(kindOf[role] as MetadataKind.Root, json as never) as unknown as Metadata<
      RoleTypes[R]
    >;
  } catch (err) {
    throw new BulwarkError('validation_failed', `not valid ${role} metadata: ${(err as Error).message}`);
  }
}

/** The role named by a metadata document's `signed._type`. */
export function roleOfDocument(input: unknown): TufRole {
  const type = (input as { signed?: { _type?: unknown } } | null)?.signed?._type;
  if (typeof type !== 'string' || !(tufRoles as readonly string[]).includes(type))
    throw new BulwarkError('validation_failed', 'not TUF metadata: signed._type must name a top-level role');
  return type as TufRole;
}

/** Canonical JSON bytes of a whole metadata document, as served and hashed. */
export const serialize = (md: { toJSON(): unknown }) => canonicalize(md.toJSON());

export const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** Adds signatures made with `keys` to a metadata document (the `bulwark firmware sign` command). */
export function signDocument(input: unknown, keys: TufPrivateKey[]): string {
  const role = roleOfDocument(typeof input === 'string' ? (JSON.parse(input) as unknown) : input);
  const md = parseMetadata(role, input);
  for (const key of keys) md.sign(signerOf(key), true);
  return serialize(md);
}

export function checkThreshold(what: string, keys: TufPublicKey[], threshold: number): string[] {
  const ids = [...new Set(keys.map(keyIdOf))];
  if (ids.length !== keys.length)
    throw new BulwarkError('validation_failed', `${what}: a key is listed twice`);
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > ids.length)
    throw new BulwarkError(
      'validation_failed',
      `${what}: the threshold must be from 1 to the number of keys (${ids.length})`,
    );
  return ids;
}
