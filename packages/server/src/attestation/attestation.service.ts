import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { BulwarkError, type AttestationStanding, type PcrValues, type TrustTier } from '@bulwark/protocol';
import type { z } from 'zod';
import type { api } from '@bulwark/protocol';
import {
  actorOf,
  createEventRateLimit,
  deviceIdOf,
  subjectOf,
  type AuditEntry,
  type EventBus,
  type SubjectData,
  type TxEmit,
} from '../events/index.ts';
import type { Logger } from '../logger.ts';
import type { Db, Tx } from '../store/index.ts';
import * as store from './attestation.store.ts';
import type { AttestationResultView } from './attestation.store.ts';
import { dueAt, standingOf, verifyQuote, type StandingState } from './attestation.verify.ts';
import { createSecurityReports, type ReportsDeps, type SecurityReports } from './reports.ts';
import {
  akProblems,
  formatPcrSelection,
  makeCredential,
  parsePcrSelection,
  parseTpm2bPublic,
  tpmName,
  TpmFormatError,
  type TpmPublic,
} from './tpm/index.ts';

export type RegisterAnswer = z.input<(typeof api.attestation.registerKey.response)[201]>;
export type DeviceAttestation = z.input<(typeof api.attestation.showDevice.response)[200]>;
export type QuoteInput = z.input<typeof api.attestation.submitQuote.body>;
export type SecurityReportView = z.input<
  (typeof api.attestation.listReports.response)[200]
>['reports'][number];

export interface AttestationSettings {
  /** tpm2-tools PCR selection every challenge asks for (config attestation.pcrs). */
  pcrs: string;
  maxAgeMs: number;
  nonceTtlMs: number;
  checkIntervalMs: number;
  maxSpeedKmh: number;
}

export interface AttestationDeps {
  db: Db;
  events: Pick<EventBus, 'emit' | 'atomically' | 'on'>;
  now: () => number;
  logger: Pick<Logger, 'warn' | 'error'>;
  settings: AttestationSettings;
  /** firmware door: what the device runs and its release's reference values. */
  referenceValuesFor(deviceId: string): Promise<{ release: string; values: PcrValues | null } | undefined>;
  /** pki door: the device's certificate by serial (a report's `kid`), its public key and standing. */
  certificateForReport: ReportsDeps['certificateForReport'];
  /** devices door: the device's status. */
  deviceStatus(deviceId: string): Promise<string | undefined>;
  /**
   * audit door: signed reports refused since the server's latest start, as the audit log holds them (so the
   * server and the CLI state the same count). Left out: this process's own count.
   */
  refusedReportsSinceStart?(): Promise<number>;
  /** devices door: which device (other than this one) is lost and has this EK hash; by default from the keys. */
  lostDeviceWithEk?(ekHash: string, except: string): Promise<string | undefined>;
}

/** What compliance reads (H7's checks): keys, standings, who is held, and rejected reports since start. */
export interface AttestationComplianceFacts {
  keys: { bound: number; pending: number; oldestPendingAt: number | null };
  /** Devices with a key, by standing (a pending key counts as `none`). */
  standings: Record<AttestationStanding, number>;
  /** Device ids (at most 20 each). */
  contraindicated: string[];
  overdue: string[];
  /** Security reports refused since the server started. */
  reportsRejected: number;
}

export interface AttestationService {
  registerKey(deviceId: string, input: { ekPublic: string; akPublic: string }): Promise<RegisterAnswer>;
  activateKey(
    deviceId: string,
    input: { challengeId: string; secret: string },
  ): Promise<{ status: 'bound'; akName: string }>;
  challenge(deviceId: string): Promise<{ nonce: string; pcrSelection: string; expiresAt: number }>;
  submitQuote(deviceId: string, input: QuoteInput): Promise<AttestationResultView>;
  showDevice(deviceId: string): Promise<DeviceAttestation>;
  listResults(q: {
    device?: string | undefined;
    tier?: TrustTier | undefined;
    limit: number;
  }): Promise<AttestationResultView[]>;
  removeKey(deviceId: string, reason: string, actor: string): Promise<{ removed: boolean }>;
  listReports(q: {
    device?: string | undefined;
    kind?: 'tamper' | 'health' | undefined;
    limit: number;
  }): Promise<SecurityReportView[]>;
  /** Cheap (in memory): the device's standing for access decisions. */
  standingOf(deviceId: string): AttestationStanding;
  reports: SecurityReports['handlers'];
  subjectData: SubjectData;
  complianceFacts(): Promise<AttestationComplianceFacts>;
  /** Loads the standings, then sweeps every checkInterval (resolves once loaded). */
  start(): Promise<void>;
  /**
   * A process that does not start the service (the CLI) reads the standings once from the store, so its
   * simulations and compliance facts see who is held; the server's are kept live by start().
   */
  load(): Promise<void>;
  /** Stops the sweeps and the event follower; resolves once a sweep under way has finished. */
  stop(): Promise<void>;
  /** One sweep now: drops expired nonces, emits `attestation.overdue` for devices that became overdue. */
  sweep(): Promise<void>;
}

interface Ctx {
  deps: AttestationDeps;
  standings: Standings;
  lostSeen: ReturnType<typeof createEventRateLimit>;
}

const invalid = (message: string) => new BulwarkError('validation_failed', message);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest();

// --- standings (in memory, kept current on commit and from other processes' events) -------------

interface Standings {
  get(deviceId: string): AttestationStanding;
  state(deviceId: string): StandingState | undefined;
  set(deviceId: string, state: StandingState | undefined): void;
  /** Reads one device's state back from the store (after another process changed it, or a failed commit). */
  reload(deviceId: string): Promise<void>;
  loadAll(): Promise<void>;
  all(): IterableIterator<[string, StandingState]>;
  /** Devices already told overdue (attestation.overdue once per transition). */
  overdueNotified: Set<string>;
  /** Markers of the changes this process applied itself (see followOthers), until their event arrives. */
  local: Set<string>;
}

function createStandings(deps: AttestationDeps): Standings {
  const map = new Map<string, StandingState>();
  const fromRow = (r: Awaited<ReturnType<typeof store.standingRows>>[number]): StandingState => ({
    boundAt: r.boundAt,
    last: r.last,
    lastGoodAt: r.lastGoodAt,
  });
  const s: Standings = {
    get: (id) => standingOf(map.get(id), deps.now(), deps.settings.maxAgeMs),
    state: (id) => map.get(id),
    set(id, state) {
      if (state) map.set(id, state);
      else map.delete(id);
      if (s.get(id) !== 'overdue') s.overdueNotified.delete(id);
    },
    async reload(id) {
      const [row] = await store.standingRows(deps.db, id);
      s.set(id, row ? fromRow(row) : undefined);
    },
    async loadAll() {
      const rows = await store.standingRows(deps.db);
      map.clear();
      for (const r of rows) map.set(r.deviceId, fromRow(r));
    },
    all: () => map.entries(),
    overdueNotified: new Set(),
    local: new Set(),
  };
  return s;
}

/** Commits `work`; the standing is set before the events reach subscribers, and read back if it failed. */
async function committing<R>(
  ctx: Ctx,
  deviceId: string,
  work: (tx: Tx, emit: TxEmit) => Promise<R>,
): Promise<R> {
  try {
    return await ctx.deps.events.atomically(work);
  } catch (err) {
    await ctx.standings.reload(deviceId).catch(() => undefined);
    throw err;
  }
}

// --- registration --------------------------------------------------------------------------------

function parsePublic(field: 'ekPublic' | 'akPublic', base64: string): TpmPublic {
  try {
    return parseTpm2bPublic(Buffer.from(base64, 'base64'));
  } catch (err) {
    if (err instanceof TpmFormatError) throw invalid(`${field}: ${err.message}`);
    throw err;
  }
}

async function lostDeviceWithEk(ctx: Ctx, ekHash: string, deviceId: string): Promise<string | undefined> {
  if (ctx.deps.lostDeviceWithEk) return ctx.deps.lostDeviceWithEk(ekHash, deviceId);
  for (const other of await store.devicesWithEk(ctx.deps.db, ekHash, deviceId))
    if ((await ctx.deps.deviceStatus(other)) === 'lost') return other;
  return undefined;
}

/** The TPM of a lost device registering under another identity: seen again, refused. */
async function refuseLostTpm(ctx: Ctx, ekHash: string, deviceId: string): Promise<void> {
  const lost = await lostDeviceWithEk(ctx, ekHash, deviceId);
  if (lost === undefined) return;
  const { record, suppressed } = ctx.lostSeen.admit(lost);
  if (record)
    await ctx.deps.events.emit({
      type: 'device.lost_seen',
      actor: actorOf.device(deviceId),
      subject: subjectOf.device(lost),
      data: { via: 'tpm', remoteAddress: null, ...(suppressed > 0 ? { suppressed } : {}) },
    });
  await refuseKey(ctx, deviceId, { reason: `the TPM belongs to lost device ${lost}`, ekHash });
  throw new BulwarkError('forbidden', `this TPM belongs to device ${lost}, which is reported lost`);
}

async function refuseKey(
  ctx: Ctx,
  deviceId: string,
  refusal: { reason: string; ekHash?: string | undefined },
): Promise<void> {
  const { reason, ekHash } = refusal;
  await ctx.deps.events.emit({
    type: 'attestation.key_refused',
    actor: actorOf.device(deviceId),
    subject: subjectOf.device(deviceId),
    data: { reason, ...(ekHash ? { ekHash } : {}) },
  });
}

const boundConflict = (deviceId: string) =>
  new BulwarkError(
    'conflict',
    `device ${deviceId} already has a bound attestation key: remove the key first (DELETE /api/v1/attestation/devices/${deviceId}/key)`,
  );

function makeChallenge(ek: TpmPublic, akName: Buffer) {
  const credential = randomBytes(32);
  try {
    return { credential, blobs: makeCredential({ ek, akName, credential }) };
  } catch (err) {
    if (err instanceof TpmFormatError) throw invalid(`ekPublic: ${err.message}`);
    throw err;
  }
}

async function registerKey(
  ctx: Ctx,
  deviceId: string,
  input: { ekPublic: string; akPublic: string },
): Promise<RegisterAnswer> {
  const ek = parsePublic('ekPublic', input.ekPublic);
  const ak = parsePublic('akPublic', input.akPublic);
  const ekHash = sha256(ek.publicArea).toString('hex');
  await refuseLostTpm(ctx, ekHash, deviceId);
  const problems = akProblems(ak);
  if (problems.length > 0) {
    await refuseKey(ctx, deviceId, { reason: `unfit attestation key: ${problems.join('; ')}`, ekHash });
    throw invalid(`akPublic: not an attestation key: ${problems.join('; ')}`);
  }
  const existing = await store.getKey(ctx.deps.db, deviceId);
  if (existing?.status === 'bound') throw boundConflict(deviceId);
  const name = tpmName(ak);
  const { credential, blobs } = makeChallenge(ek, name);
  const now = ctx.deps.now();
  const row: store.KeyRow = {
    device_id: deviceId,
    ek_public: input.ekPublic,
    ek_hash: ekHash,
    ak_public: input.akPublic,
    ak_name: name.toString('hex'),
    algorithm: ak.algorithm,
    status: 'pending',
    challenge_id: randomUUID(),
    challenge_hash: sha256(credential).toString('hex'),
    challenge_expires_at: now + ctx.deps.settings.nonceTtlMs,
    registered_at: now,
    bound_at: null,
  };
  await ctx.deps.events.atomically(async (tx, emit) => {
    // A key bound meanwhile (another request of the device) is kept: the insert finds its row.
    if (!(await store.putPendingKey(tx, row))) throw boundConflict(deviceId);
    emit({
      type: 'attestation.key_registered',
      actor: actorOf.device(deviceId),
      subject: subjectOf.device(deviceId),
      data: { akName: row.ak_name, ekHash, algorithm: row.algorithm },
    });
  });
  return {
    challengeId: row.challenge_id ?? '',
    credentialBlob: blobs.idObject.toString('base64'),
    encryptedSecret: blobs.encryptedSecret.toString('base64'),
    akName: row.ak_name,
    expiresAt: row.challenge_expires_at ?? now,
  };
}

/** Why an activation is refused, or undefined when the secret is the credential. */
function activationProblem(
  row: store.KeyRow | undefined,
  input: { challengeId: string; secret: string },
  now: number,
) {
  if (!row || row.status !== 'pending' || !row.challenge_id || !row.challenge_hash)
    return 'no pending attestation key to activate';
  if (row.challenge_id !== input.challengeId) return 'unknown challenge';
  if ((row.challenge_expires_at ?? 0) <= now) return 'the challenge expired: register the key again';
  const expected = Buffer.from(row.challenge_hash, 'hex');
  const got = sha256(Buffer.from(input.secret, 'base64'));
  return expected.length === got.length && timingSafeEqual(expected, got)
    ? undefined
    : 'the activated credential does not match: the key is not in the TPM of that endorsement key';
}

async function activateKey(ctx: Ctx, deviceId: string, input: { challengeId: string; secret: string }) {
  const row = await store.getKey(ctx.deps.db, deviceId);
  const now = ctx.deps.now();
  const problem = activationProblem(row, input, now);
  if (problem !== undefined || !row) {
    const reason = problem ?? 'no pending attestation key to activate';
    await refuseKey(ctx, deviceId, { reason, ekHash: row?.ek_hash });
    throw new BulwarkError('forbidden', reason);
  }
  await committing(ctx, deviceId, async (tx, emit) => {
    await store.bindKey(tx, deviceId, now);
    emit({
      type: 'attestation.key_bound',
      actor: actorOf.device(deviceId),
      subject: subjectOf.device(deviceId),
      data: { akName: row.ak_name, ekHash: row.ek_hash },
    });
    ctx.standings.local.add(`attestation.key_bound:${deviceId}:${row.ak_name}`);
    ctx.standings.set(deviceId, { boundAt: now, last: undefined, lastGoodAt: undefined });
  });
  return { status: 'bound' as const, akName: row.ak_name };
}

// --- challenges and quotes -----------------------------------------------------------------------

async function challenge(ctx: Ctx, deviceId: string) {
  const key = await store.getKey(ctx.deps.db, deviceId);
  if (key?.status !== 'bound')
    throw new BulwarkError('conflict', 'register the TPM first: the device has no bound attestation key');
  const now = ctx.deps.now();
  const nonce = randomBytes(32).toString('hex');
  const pcrSelection = formatPcrSelection(parsePcrSelection(ctx.deps.settings.pcrs));
  const expiresAt = now + ctx.deps.settings.nonceTtlMs;
  await ctx.deps.db.transaction().execute((tx) =>
    store.insertNonce(tx, {
      nonce,
      device_id: deviceId,
      pcr_selection: pcrSelection,
      created_at: now,
      expires_at: expiresAt,
      used_at: null,
    }),
  );
  return { nonce, pcrSelection, expiresAt };
}

/** Reasons decided before the nonce is looked at (a later concurrent use of it cannot change them). */
const beforeNonce: ReadonlySet<string> = new Set([
  'key_not_registered',
  'key_not_bound',
  'malformed_quote',
  'signature_invalid',
]);

function keyOf(row: store.KeyRow | undefined) {
  if (!row) return undefined;
  return { status: row.status, ak: parseTpm2bPublic(Buffer.from(row.ak_public, 'base64')) };
}

function nextStanding(
  prev: StandingState | undefined,
  result: { tier: TrustTier; at: number },
): StandingState | undefined {
  if (!prev || prev.boundAt === undefined) return prev;
  return {
    boundAt: prev.boundAt,
    last: { tier: result.tier, at: result.at },
    lastGoodAt: result.tier === 'contraindicated' ? prev.lastGoodAt : result.at,
  };
}

async function submitQuote(ctx: Ctx, deviceId: string, input: QuoteInput): Promise<AttestationResultView> {
  const { deps } = ctx;
  const reference = await deps.referenceValuesFor(deviceId);
  return committing(ctx, deviceId, async (tx, emit) => {
    const now = deps.now();
    const keyRow = await store.getKey(tx, deviceId);
    const nonceRow = await store.getNonce(tx, deviceId, input.nonce);
    let verdict = verifyQuote({
      key: keyOf(keyRow),
      attest: Buffer.from(input.quote, 'base64'),
      signature: Buffer.from(input.signature, 'base64'),
      nonce: input.nonce,
      nonceRow: nonceRow && {
        pcrSelection: nonceRow.pcr_selection,
        expiresAt: nonceRow.expires_at,
        usedAt: nonceRow.used_at,
      },
      pcrs: input.pcrs,
      reference,
      now,
    });
    // Single use in every case; a quote racing another for the same nonce loses.
    const first = nonceRow ? await store.useNonce(tx, input.nonce, now) : false;
    if (!first && !beforeNonce.has(verdict.reason) && verdict.reason !== 'nonce_mismatch')
      verdict = {
        ...verdict,
        tier: 'contraindicated',
        reason: 'nonce_mismatch',
        detail: 'the nonce was already used: a replayed quote',
        mismatchedPcrs: [],
      };
    const result: AttestationResultView = {
      id: store.sortableId('ar', now),
      deviceId,
      at: now,
      ...verdict,
    };
    await store.insertResult(tx, result);
    const common = {
      resultId: result.id,
      reason: result.reason,
      detail: result.detail,
      release: result.release,
    };
    const who = { actor: actorOf.device(deviceId), subject: subjectOf.device(deviceId) };
    if (result.tier === 'contraindicated')
      emit({
        type: 'attestation.failed',
        ...who,
        data: { ...common, tier: 'contraindicated', mismatchedPcrs: result.mismatchedPcrs },
      });
    else emit({ type: 'attestation.verified', ...who, data: { ...common, tier: result.tier } });
    if (keyRow?.status === 'bound')
      ctx.standings.set(deviceId, nextStanding(ctx.standings.state(deviceId), result));
    ctx.standings.local.add(`r:${result.id}`);
    return result;
  });
}

// --- operators -----------------------------------------------------------------------------------

async function showDevice(ctx: Ctx, deviceId: string): Promise<DeviceAttestation> {
  const [key, last] = await Promise.all([
    store.getKey(ctx.deps.db, deviceId),
    store.listResults(ctx.deps.db, { device: deviceId, limit: 1 }),
  ]);
  const state = ctx.standings.state(deviceId);
  return {
    deviceId,
    standing: ctx.standings.get(deviceId),
    key: key
      ? {
          status: key.status,
          akName: key.ak_name,
          ekHash: key.ek_hash,
          algorithm: key.algorithm,
          registeredAt: key.registered_at,
          boundAt: key.bound_at,
        }
      : null,
    last: last[0] ?? null,
    dueAt: state ? dueAt(state, ctx.deps.settings.maxAgeMs) : null,
  };
}

async function removeKey(ctx: Ctx, input: { deviceId: string; reason: string; actor: string }) {
  const { deviceId, reason, actor } = input;
  const removed = await committing<boolean>(ctx, deviceId, async (tx, emit) => {
    const row = await store.deleteKey(tx, deviceId);
    if (!row) return false;
    emit({
      type: 'attestation.key_removed',
      actor,
      subject: subjectOf.device(deviceId),
      data: { akName: row.ak_name, reason },
    });
    ctx.standings.local.add(`attestation.key_removed:${deviceId}:${row.ak_name}`);
    ctx.standings.set(deviceId, undefined);
    return true;
  });
  return { removed };
}

// --- sweep and facts -----------------------------------------------------------------------------

async function sweep(ctx: Ctx): Promise<void> {
  const { deps, standings } = ctx;
  await store.deleteExpiredNonces(deps.db, deps.now());
  for (const [deviceId, state] of [...standings.all()]) {
    if (standings.get(deviceId) !== 'overdue') {
      standings.overdueNotified.delete(deviceId);
      continue;
    }
    if (standings.overdueNotified.has(deviceId)) continue;
    standings.overdueNotified.add(deviceId);
    await deps.events.emit({
      type: 'attestation.overdue',
      actor: 'system',
      subject: subjectOf.device(deviceId),
      data: { lastAt: state.lastGoodAt ?? null, maxAgeMs: deps.settings.maxAgeMs },
    });
  }
}

async function complianceFacts(ctx: Ctx, reportsRejected: number): Promise<AttestationComplianceFacts> {
  const keys = await store.keyCounts(ctx.deps.db);
  const standings: Record<AttestationStanding, number> = {
    affirming: 0,
    warning: 0,
    contraindicated: 0,
    overdue: 0,
    none: 0,
  };
  const held: Record<'contraindicated' | 'overdue', string[]> = { contraindicated: [], overdue: [] };
  for (const [deviceId] of ctx.standings.all()) {
    const standing = ctx.standings.get(deviceId);
    standings[standing] += 1;
    if ((standing === 'contraindicated' || standing === 'overdue') && held[standing].length < 20)
      held[standing].push(deviceId);
  }
  standings.none += keys.pending;
  return { keys, standings, ...held, reportsRejected };
}

function subjectData(ctx: Ctx): SubjectData {
  return {
    module: 'attestation',
    async exportSubject(subject) {
      if (subject.kind !== 'device') return [];
      const rows = await store.deviceRows(ctx.deps.db, subject.id);
      return rows.map(({ table, row }) => ({ table, ...row }));
    },
    async eraseSubject(subject) {
      if (subject.kind !== 'device') return { erased: 0 };
      const erased = await ctx.deps.db.transaction().execute((tx) => store.deleteDeviceRows(tx, subject.id));
      ctx.standings.set(subject.id, undefined);
      return { erased };
    },
  };
}

type StandingEntry = AuditEntry<
  'attestation.key_bound' | 'attestation.key_removed' | 'attestation.verified' | 'attestation.failed'
>;

/** What identifies a standing change in its event, so this process knows the ones it made itself. */
function markerOf(entry: StandingEntry, deviceId: string): string {
  if (entry.type === 'attestation.verified' || entry.type === 'attestation.failed')
    return `r:${entry.data.resultId}`;
  return `${entry.type}:${deviceId}:${entry.data.akName}`;
}

/**
 * Other processes (the CLI removing a key, another node's verdicts) change standings: applied from their
 * events as they arrive, in log order and synchronously, so a recompile triggered by the same event reads the
 * new standing. The changes this process made were applied in their transaction and are skipped.
 */
function followOthers(ctx: Ctx): () => void {
  const { standings } = ctx;
  const offStanding = ctx.deps.events.on(
    ['attestation.key_bound', 'attestation.key_removed', 'attestation.verified', 'attestation.failed'],
    (entry) => {
      const id = deviceIdOf(entry.subject);
      if (id === undefined || standings.local.delete(markerOf(entry, id))) return;
      if (entry.type === 'attestation.key_bound')
        standings.set(id, { boundAt: entry.ts, last: undefined, lastGoodAt: undefined });
      else if (entry.type === 'attestation.key_removed') standings.set(id, undefined);
      else standings.set(id, nextStanding(standings.state(id), { tier: entry.data.tier, at: entry.ts }));
    },
  );
  // A decommissioned device's rows are erased (subjectData), perhaps by another process.
  const offErased = ctx.deps.events.on('device.decommissioned', (entry) => {
    const id = deviceIdOf(entry.subject);
    if (id !== undefined) standings.set(id, undefined);
  });
  return () => {
    offStanding();
    offErased();
  };
}

/**
 * TPM 2.0 remote attestation (the verifier and relying party of RFC 9334) and the signed tamper and health
 * reports: registration with credential activation (TPM 2.0 Part 1 §24), challenges, quote verification,
 * the standings access decisions read, and the sweep that finds overdue devices.
 */
export function createAttestationService(deps: AttestationDeps): AttestationService {
  const ctx: Ctx = {
    deps,
    standings: createStandings(deps),
    lostSeen: createEventRateLimit({ max: 1, windowMs: 60_000, now: deps.now }),
  };
  const reports = createSecurityReports(deps);
  let timer: NodeJS.Timeout | undefined;
  let unfollow: (() => void) | undefined;
  let loaded: Promise<void> | undefined;
  let sweeping: Promise<void> | undefined;
  const runSweep = () => {
    sweeping ??= sweep(ctx)
      .catch((err: unknown) => deps.logger.error({ err }, 'attestation sweep failed'))
      .finally(() => (sweeping = undefined));
    return sweeping;
  };
  const load = () => (loaded ??= ctx.standings.loadAll());
  return {
    registerKey: (id, input) => registerKey(ctx, id, input),
    activateKey: (id, input) => activateKey(ctx, id, input),
    challenge: (id) => challenge(ctx, id),
    submitQuote: (id, input) => submitQuote(ctx, id, input),
    showDevice: (id) => showDevice(ctx, id),
    listResults: (q) => store.listResults(deps.db, q),
    removeKey: (deviceId, reason, actor) => removeKey(ctx, { deviceId, reason, actor }),
    listReports: (q) => reports.list(q),
    standingOf: (id) => ctx.standings.get(id),
    reports: reports.handlers,
    subjectData: subjectData(ctx),
    complianceFacts: async () => {
      await load();
      return complianceFacts(ctx, (await deps.refusedReportsSinceStart?.()) ?? reports.rejectedCount());
    },
    load,
    async start() {
      unfollow ??= followOthers(ctx);
      loaded = ctx.standings.loadAll();
      await loaded;
      timer ??= setInterval(() => void runSweep(), deps.settings.checkIntervalMs);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      unfollow?.();
      unfollow = undefined;
      await sweeping;
    },
    sweep: () => sweep(ctx),
  };
}
