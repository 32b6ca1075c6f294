import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { ENCRYPTED_VALUE_PREFIX, PSEUDONYM_PREFIX } from '@bulwark/protocol';
import type { SecretBox } from '../secrets/index.ts';
import type { Db, DbOrTx } from '../store/index.ts';

/**
 * Privacy keys: per key owner (`person:<id>`, `device:<id>`) an AES-256 data key for the `encrypt` transform,
 * destroyed on erasure (crypto-shredding: what was encrypted under it, wherever it was copied, is unreadable);
 * per period a pseudonymisation key (HMAC-SHA256), deleted after the kept periods so that older pseudonyms can
 * no longer be linked to new ones. Keys are stored wrapped by the installation's secret box, the owner or
 * period bound as associated data. Key ids are random, so a token does not name whose key it is.
 */

export interface DataKey {
  readonly id: string;
  readonly key: Buffer;
}
export interface PseudonymKey {
  readonly period: number;
  readonly key: Buffer;
}
export interface PrivacyKeysDeps {
  db: Db;
  box: Pick<SecretBox, 'seal' | 'open'>;
  now: () => number;
  /** Length of a pseudonymisation period (ms). */
  periodMs: number;
  /** Periods whose keys are kept (≥ 1: the current one). */
  keptPeriods: number;
}
export interface PrivacyKeys {
  /** The owner's data key from the cache (sync), undefined when not loaded. */
  subjectKey(owner: string): DataKey | undefined;
  /** Loads or creates the owner's data key (insert-if-absent and read back: nodes may race). */
  loadSubjectKey(owner: string): Promise<DataKey>;
  /** A data key by id (for decryption); undefined when erased. */
  keyById(id: string): Promise<DataKey | undefined>;
  /** Crypto-shredding: deletes the owners' keys (in `tx`) and drops them from the cache. */
  destroy(tx: DbOrTx, owners: readonly string[]): Promise<number>;
  /** Drops every cached key (another node erased some). */
  forgetAll(): void;
  /** The current period's pseudonymisation key from the cache (sync). */
  pseudonymKey(now: number): PseudonymKey | undefined;
  ensurePseudonymKey(now: number): Promise<PseudonymKey>;
  /** Ensures this and the next period's keys exist; deletes keys older than keptPeriods. */
  rotate(now: number): Promise<{ period: number; deletedPeriods: number }>;
}

const subjectLabel = (owner: string) => `privacy-key:${owner}`;
const periodLabel = (period: number) => `privacy-pseudonym:${period}`;

interface Caches {
  byOwner: Map<string, DataKey>;
  byId: Map<string, DataKey>;
  periods: Map<number, PseudonymKey>;
  /** Bumped by destroy/forgetAll: a load that started before does not put a stale key back. */
  generation: number;
}

function subjectKeyStore(deps: PrivacyKeysDeps, c: Caches) {
  const remember = (owner: string, key: DataKey, generation: number) => {
    if (generation !== c.generation) return;
    c.byOwner.set(owner, key);
    c.byId.set(key.id, key);
  };
  const read = async (owner: string): Promise<DataKey | undefined> => {
    const row = await deps.db
      .selectFrom('privacy_subject_keys')
      .select(['key_id', 'wrapped_key'])
      .where('subject', '=', owner)
      .executeTakeFirst();
    return row && { id: row.key_id, key: deps.box.open(row.wrapped_key, subjectLabel(owner)) };
  };
  const pending = new Map<string, Promise<DataKey>>();
  const load = async (owner: string): Promise<DataKey> => {
    const generation = c.generation;
    let key = await read(owner);
    if (!key) {
      await deps.db
        .insertInto('privacy_subject_keys')
        .values({
          subject: owner,
          key_id: randomBytes(12).toString('base64url'),
          wrapped_key: deps.box.seal(randomBytes(32), subjectLabel(owner)),
          created_at: deps.now(),
        })
        .onConflict((oc) => oc.column('subject').doNothing())
        .execute();
      key = await read(owner);
      if (!key) throw new Error(`privacy key of ${owner} vanished while it was created`);
    }
    remember(owner, key, generation);
    return key;
  };
  return {
    subjectKey: (owner: string) => c.byOwner.get(owner),
    loadSubjectKey(owner: string): Promise<DataKey> {
      const cached = c.byOwner.get(owner);
      if (cached) return Promise.resolve(cached);
      let p = pending.get(owner);
      if (!p) {
        p = load(owner).finally(() => pending.delete(owner));
        pending.set(owner, p);
      }
      return p;
    },
    async keyById(id: string): Promise<DataKey | undefined> {
      const cached = c.byId.get(id);
      if (cached) return cached;
      const generation = c.generation;
      const row = await deps.db
        .selectFrom('privacy_subject_keys')
        .select(['subject', 'wrapped_key'])
        .where('key_id', '=', id)
        .executeTakeFirst();
      if (!row) return undefined;
      const key = { id, key: deps.box.open(row.wrapped_key, subjectLabel(row.subject)) };
      remember(row.subject, key, generation);
      return key;
    },
    async destroy(tx: DbOrTx, owners: readonly string[]): Promise<number> {
      c.generation++;
      for (const owner of owners) {
        const key = c.byOwner.get(owner);
        c.byOwner.delete(owner);
        if (key) c.byId.delete(key.id);
      }
      if (owners.length === 0) return 0;
      const result = await tx
        .deleteFrom('privacy_subject_keys')
        .where('subject', 'in', [...owners])
        .executeTakeFirst();
      return Number(result.numDeletedRows);
    },
  };
}

function pseudonymKeyStore(deps: PrivacyKeysDeps, c: Caches) {
  const periodMs = Math.max(1, deps.periodMs);
  const kept = Math.max(1, Math.floor(deps.keptPeriods));
  const periodOf = (now: number) => Math.floor(now / periodMs);
  const read = async (period: number): Promise<PseudonymKey | undefined> => {
    const row = await deps.db
      .selectFrom('privacy_pseudonym_keys')
      .select('wrapped_key')
      .where('period', '=', period)
      .executeTakeFirst();
    return row && { period, key: deps.box.open(row.wrapped_key, periodLabel(period)) };
  };
  const ensure = async (period: number): Promise<PseudonymKey> => {
    const cached = c.periods.get(period);
    if (cached) return cached;
    let key = await read(period);
    if (!key) {
      await deps.db
        .insertInto('privacy_pseudonym_keys')
        .values({
          period,
          wrapped_key: deps.box.seal(randomBytes(32), periodLabel(period)),
          created_at: deps.now(),
        })
        .onConflict((oc) => oc.column('period').doNothing())
        .execute();
      key = await read(period);
      if (!key) throw new Error(`pseudonymisation key of period ${period} vanished while it was created`);
    }
    c.periods.set(period, key);
    return key;
  };
  /** Drops cached keys of periods no longer kept, so that this node stops linking them too. */
  const prune = (oldest: number) => {
    for (const p of c.periods.keys()) if (p < oldest) c.periods.delete(p);
  };
  return {
    pseudonymKey: (now: number) => c.periods.get(periodOf(now)),
    ensurePseudonymKey: (now: number) => ensure(periodOf(now)),
    async rotate(now: number): Promise<{ period: number; deletedPeriods: number }> {
      const period = periodOf(now);
      await ensure(period);
      await ensure(period + 1);
      const oldest = period - kept + 1;
      const result = await deps.db
        .deleteFrom('privacy_pseudonym_keys')
        .where('period', '<', oldest)
        .executeTakeFirst();
      prune(oldest);
      return { period, deletedPeriods: Number(result.numDeletedRows) };
    },
  };
}

export function createPrivacyKeys(deps: PrivacyKeysDeps): PrivacyKeys {
  const caches: Caches = { byOwner: new Map(), byId: new Map(), periods: new Map(), generation: 0 };
  return {
    ...subjectKeyStore(deps, caches),
    ...pseudonymKeyStore(deps, caches),
    forgetAll() {
      caches.generation++;
      caches.byOwner.clear();
      caches.byId.clear();
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Values

/** JSON with object members sorted by key (recursively), as the input of encryption and pseudonyms. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value))
    return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const members = Object.keys(obj)
    .sort()
    .filter((k) => obj[k] !== undefined)
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`);
  return `{${members.join(',')}}`;
}

const IV = 12;
const TAG = 16;

/**
 * Where an encrypted value belongs: its data schema and field path. Bound into the token (the associated
 * data), so a token decrypts only as the field it was made for: naming another field (one whose uses or
 * lawful basis let the caller's purpose read it) fails authentication.
 */
export interface EncryptionContext {
  readonly schema: string;
  readonly path: string;
}

/** The associated data of a token: `<keyId>|<schema>|<path>` (a schema name or path has no `|`). */
const associatedData = (keyId: string, context: EncryptionContext): Buffer =>
  Buffer.from(`${keyId}|${context.schema}|${context.path}`, 'utf8');

/**
 * `bwenc1.<keyId>.<base64url(iv | tag | ciphertext)>`: AES-256-GCM over the value's canonical JSON, the
 * associated data the key id, schema and field path (see EncryptionContext).
 */
export function encryptValue(key: DataKey, value: unknown, context: EncryptionContext): string {
  const iv = randomBytes(IV);
  const cipher = createCipheriv('aes-256-gcm', key.key, iv);
  cipher.setAAD(associatedData(key.id, context));
  const ct = Buffer.concat([cipher.update(canonicalJson(value), 'utf8'), cipher.final()]);
  return `${ENCRYPTED_VALUE_PREFIX}${key.id}.${Buffer.concat([iv, cipher.getAuthTag(), ct]).toString('base64url')}`;
}

/** The key id of an encrypted value, undefined when the string is not one. */
export function keyIdOf(token: string): string | undefined {
  if (!token.startsWith(ENCRYPTED_VALUE_PREFIX)) return undefined;
  const rest = token.slice(ENCRYPTED_VALUE_PREFIX.length);
  const dot = rest.indexOf('.');
  if (dot <= 0 || dot === rest.length - 1) return undefined;
  return rest.slice(0, dot);
}

/**
 * The clear value, or why not (not a token, the key is gone, the token was altered or made for another
 * schema or field than `context`).
 */
export function decryptValue(
  token: string,
  keyOf: (id: string) => DataKey | undefined,
  context: EncryptionContext,
): { ok: true; value: unknown } | { ok: false; reason: string } {
  const id = keyIdOf(token);
  if (id === undefined) return { ok: false, reason: 'not an encrypted value' };
  const key = keyOf(id);
  if (!key) return { ok: false, reason: 'the key is gone (erased) or unknown' };
  const body = Buffer.from(token.slice(ENCRYPTED_VALUE_PREFIX.length + id.length + 1), 'base64url');
  if (body.length < IV + TAG) return { ok: false, reason: 'not an encrypted value' };
  try {
    const decipher = createDecipheriv('aes-256-gcm', key.key, body.subarray(0, IV));
    decipher.setAAD(associatedData(id, context));
    decipher.setAuthTag(body.subarray(IV, IV + TAG));
    const clear = Buffer.concat([decipher.update(body.subarray(IV + TAG)), decipher.final()]);
    return { ok: true, value: JSON.parse(clear.toString('utf8')) as unknown };
  } catch {
    return {
      ok: false,
      reason: 'the value does not decrypt (altered, another key, or another schema or field)',
    };
  }
}

/**
 * Recent pseudonyms per key: the same ids come again and again (a device reports for one person), and an HMAC
 * costs more than the rest of a message's transforms. Bounded; weak per key, so a deleted period's go with it.
 */
const recentPseudonyms = new WeakMap<PseudonymKey, Map<string, string>>();
const MAX_RECENT_PSEUDONYMS = 10_000;

/** `ps1.<period>.<22 chars of base64url(HMAC-SHA256(period key, canonical JSON of the value))>`. */
export function pseudonymise(key: PseudonymKey, value: unknown): string {
  const input = canonicalJson(value);
  let recent = recentPseudonyms.get(key);
  if (!recent) {
    recent = new Map();
    recentPseudonyms.set(key, recent);
  }
  const known = recent.get(input);
  if (known !== undefined) return known;
  const mac = createHmac('sha256', key.key).update(input, 'utf8').digest('base64url');
  const token = `${PSEUDONYM_PREFIX}${key.period}.${mac.slice(0, 22)}`;
  if (recent.size >= MAX_RECENT_PSEUDONYMS) recent.clear();
  recent.set(input, token);
  return token;
}
