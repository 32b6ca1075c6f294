import { api, BulwarkError, type PcrValues } from '@bulwark/protocol';
import type { Db } from '../store/index.ts';

/**
 * Reference values (RFC 9334 §3.3: the endorsed "golden" measurements a verifier compares evidence with): the
 * PCR values measured boot of a release's image yields, recorded with the release and read by attestation for
 * the release a device reports running.
 */

/**
 * Checked reference values, or null when none are given. The contract's rule (`releaseReferenceValues`: banks
 * sha1/sha256/sha384/sha512, indexes 0-23, lower-case hex of the bank's digest size, at least one PCR) holds
 * for the CLI as for the API; refusals name the offending bank and index.
 */
export function checkReferenceValues(value: unknown): PcrValues | null {
  if (value === undefined || value === null) return null;
  const parsed = api.firmware.releaseReferenceValues.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const where = issue?.path.length
    ? `referenceValues.${issue.path.map(String).join('.')}`
    : 'referenceValues';
  // A bad PCR index is an issue about a record key: its own message says what the key must be.
  const message = (issue?.code === 'invalid_key' ? issue.issues[0]?.message : undefined) ?? issue?.message;
  throw new BulwarkError('validation_failed', `${where}: ${message ?? 'invalid reference values'}`);
}

/** The stored column (JSON text) as values; a row written by this module always parses. */
export function parseStoredReferenceValues(text: string | null): PcrValues | null {
  if (text === null) return null;
  const parsed = api.firmware.releaseReferenceValues.safeParse(JSON.parse(text));
  return parsed.success ? parsed.data : null;
}

/** What attestation learns about a device: the release it reports running (`name@version`) and its values. */
export interface DeviceReferenceValues {
  release: string;
  values: PcrValues | null;
}

/**
 * The reference values of the release a device reports running (its last `firmware/state`), or undefined when
 * the device reports no release this platform knows (attestation then answers `no_reference_values`).
 */
export async function referenceValuesFor(
  db: Db,
  deviceId: string,
): Promise<DeviceReferenceValues | undefined> {
  const row = await db
    .selectFrom('firmware_device_state as s')
    .innerJoin('firmware_releases as r', 'r.id', 's.release_id')
    .select(['r.name', 'r.version', 'r.reference_values'])
    .where('s.device_id', '=', deviceId)
    .executeTakeFirst();
  if (!row) return undefined;
  return { release: `${row.name}@${row.version}`, values: parseStoredReferenceValues(row.reference_values) };
}
