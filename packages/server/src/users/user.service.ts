import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import QRCode from 'qrcode';
import { BulwarkError } from '@bulwark/protocol';
import { createEventRateLimit, type EventBus } from '../events/index.ts';
import type { SecretBox } from '../secrets/index.ts';
import type { Db, SessionsTable, UsersTable } from '../store/index.ts';
import { checkNewPassword, dummyHash, hashPassword, verifyPassword } from './password.ts';
import { isRole, roleWithin, twoFactorRoles, type Role } from './roles.ts';
import type { Throttle } from './throttle.ts';
import { matchTotp, newTotpSecret, totpUri } from './totp.ts';
import { actorOf, type Principal, type SessionState, type User } from './user.types.ts';

export interface UserServiceDeps {
  db: Db;
  box: Pick<SecretBox, 'seal' | 'open'>;
  events: Pick<EventBus, 'emit'>;
  throttle: Throttle;
  now: () => number;
  settings: {
    require2faForAll: boolean;
    sessionIdleMs: number;
    sessionAbsoluteMs: number;
    setupSecretTtlMs: number;
    /** Factor and credential management needs an authentication (second factor) at most this old. */
    stepUpWindowMs: number;
  };
}

const usernamePattern = /^[a-z0-9][a-z0-9_.-]{1,63}$/;
const groupPattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const RECOVERY_CODES = 10;
const MAX_TOKEN_LIFETIME = 365 * 86_400_000;

export const sha256 = (value: string) => createHash('sha256').update(value, 'utf8').digest('hex');
const random = (prefix: string, bytes = 32) => prefix + randomBytes(bytes).toString('base64url');

function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && timingSafeEqual(x, y);
}

function recoveryCode(): string {
  const alphabet = 'abcdefghjkmnpqrstuvwxyz23456789';
  const bytes = randomBytes(12);
  const chars = [...bytes].map((b) => alphabet[b % alphabet.length]).join('');
  return `${chars.slice(0, 4)}-${chars.slice(4, 8)}-${chars.slice(8, 12)}`;
}

const normalizeRecovery = (code: string) => code.toLowerCase().replace(/[^a-z0-9]/g, '');

/** A principal that came with a session cookie (the steps of sign-in and enrolment act on that session). */
export type SessionPrincipal = Principal & { sessionIdHash: string };
type SecondFactorMethod = 'totp' | 'recovery_code' | 'webauthn';

export interface SessionTicket {
  /** The cookie value: shown to the client once, stored only as a hash. */
  id: string;
  state: SessionState;
  csrfToken: string;
  expiresAt: number;
}

function checkUsername(username: string): string {
  const name = typeof username === 'string' ? username.trim().toLowerCase() : '';
  if (!usernamePattern.test(name)) {
    throw new BulwarkError(
      'validation_failed',
      'username must be 2-64 characters of a-z 0-9 _ . -, starting with a letter or digit',
    );
  }
  return name;
}

function checkGroups(groups: unknown): string[] | null {
  if (groups === null || groups === undefined) return null;
  if (!Array.isArray(groups) || groups.some((g) => typeof g !== 'string' || !groupPattern.test(g))) {
    throw new BulwarkError(
      'validation_failed',
      'groups must be a list of device group names (or null for all groups)',
    );
  }
  return [...new Set(groups as string[])].sort();
}

export function createUserService(deps: UserServiceDeps) {
  /** Sign-ins the back-off refused, recorded at a bounded rate per address. */
  const throttledSignIns = createEventRateLimit({ max: 30, windowMs: 60_000 });
  const { db, box, events, throttle, now, settings } = deps;

  const requires2fa = (role: Role) => settings.require2faForAll || twoFactorRoles.includes(role);

  async function factorsOf(userId: string, row?: UsersTable) {
    const u =
      row ?? (await db.selectFrom('users').selectAll().where('id', '=', userId).executeTakeFirstOrThrow());
    const webauthn = await db
      .selectFrom('webauthn_credentials')
      .select(db.fn.countAll<number>().as('n'))
      .where('user_id', '=', userId)
      .executeTakeFirst();
    const codes = await db
      .selectFrom('recovery_codes')
      .select(db.fn.countAll<number>().as('n'))
      .where('user_id', '=', userId)
      .where('used_at', 'is', null)
      .executeTakeFirst();
    return {
      totp: u.totp_enabled === 1,
      webauthn: Number(webauthn?.n ?? 0),
      recoveryCodesLeft: Number(codes?.n ?? 0),
    };
  }

  async function toUser(row: UsersTable): Promise<User> {
    const role = row.role as Role;
    return {
      id: row.id,
      username: row.username,
      role,
      groups: row.groups === null ? null : (JSON.parse(row.groups) as string[]),
      twoFactor: await factorsOf(row.id, row),
      twoFactorRequired: requires2fa(role),
      setupPending: row.password_hash === null,
      disabled: row.disabled_at !== null,
      createdAt: row.created_at,
    };
  }

  const byName = (username: string) =>
    db.selectFrom('users').selectAll().where('username', '=', username).executeTakeFirst();
  const byId = (id: string) => db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();

  async function requireUser(username: string): Promise<UsersTable> {
    const row = await byName(checkUsername(username));
    if (!row) throw new BulwarkError('not_found', `user ${username} does not exist`);
    return row;
  }

  async function newSession(userId: string, state: SessionState, address: string): Promise<SessionTicket> {
    const id = random('', 32);
    const t = now();
    const ticket: SessionTicket = {
      id,
      state,
      csrfToken: random('', 24),
      expiresAt: t + settings.sessionAbsoluteMs,
    };
    await db
      .insertInto('sessions')
      .values({
        id_hash: sha256(id),
        user_id: userId,
        state,
        csrf_token: ticket.csrfToken,
        challenge: null,
        address,
        created_at: t,
        last_seen_at: t,
        expires_at: ticket.expiresAt,
      })
      .execute();
    return ticket;
  }

  /** The state a freshly authenticated (password) session starts in. */
  async function stateAfterPassword(row: UsersTable): Promise<SessionState> {
    const f = await factorsOf(row.id, row);
    if (f.totp || f.webauthn > 0) return 'second_factor';
    return requires2fa(row.role as Role) ? 'enrolment' : 'active';
  }

  async function issueRecoveryCodes(userId: string, actor: string): Promise<string[]> {
    const codes = Array.from({ length: RECOVERY_CODES }, recoveryCode);
    const t = now();
    await db.transaction().execute(async (trx) => {
      await trx.deleteFrom('recovery_codes').where('user_id', '=', userId).execute();
      await trx
        .insertInto('recovery_codes')
        .values(
          codes.map((c) => ({
            id: randomUUID(),
            user_id: userId,
            code_hash: sha256(normalizeRecovery(c)),
            created_at: t,
            used_at: null,
          })),
        )
        .execute();
    });
    await events.emit({
      type: 'auth.recovery_codes_generated',
      actor,
      subject: actor,
      data: { count: codes.length },
    });
    return codes;
  }

  /** Replaces the session with a new id in a new state (rotation at every privilege step). */
  async function rotate(
    current: Principal & { sessionIdHash: string },
    state: SessionState,
    address: string,
  ): Promise<SessionTicket> {
    await db.deleteFrom('sessions').where('id_hash', '=', current.sessionIdHash).execute();
    return newSession(current.userId, state, address);
  }

  /** Second-factor attempts count in the same throttle as password guessing: per account and per address. */
  const factorKeys = (principal: Pick<Principal, 'username'>, address: string) => [
    `account:${principal.username}`,
    `address:${address}`,
  ];

  async function failSecondFactor(
    principal: Pick<Principal, 'username'>,
    address: string,
    method: SecondFactorMethod,
    reason: string,
  ): Promise<void> {
    const actor = `user:${principal.username}`;
    await events.emit({
      type: 'auth.second_factor_failed',
      actor,
      subject: actor,
      data: { address, method, reason },
    });
    await recordFailure(
      factorKeys(principal, address),
      principal.username,
      address,
      `second factor: ${reason}`,
      false,
    );
  }

  async function passSecondFactor(
    principal: SessionPrincipal,
    address: string,
    method: SecondFactorMethod,
  ): Promise<SessionTicket> {
    await throttle.succeed(factorKeys(principal, address));
    const actor = `user:${principal.username}`;
    await events.emit({
      type: 'auth.second_factor_succeeded',
      actor,
      subject: actor,
      data: { address, method },
    });
    return rotate(principal, 'active', address);
  }

  return {
    requires2fa,

    async hasFactor(userId: string): Promise<boolean> {
      const f = await factorsOf(userId);
      return f.totp || f.webauthn > 0;
    },

    /** Creates an account with no password: it gets a one-time setup secret to exchange at first sign-in. */
    async create(
      input: { username: string; role: string; groups?: unknown },
      actor: string,
      creatorRole?: Role,
    ) {
      const username = checkUsername(input.username);
      if (!isRole(input.role))
        throw new BulwarkError(
          'validation_failed',
          'role must be one of admin, security-officer, operator, auditor, viewer',
        );
      if (creatorRole && !roleWithin(input.role, creatorRole))
        throw new BulwarkError('forbidden', 'cannot create a user with more rights than your own');
      const groups = checkGroups(input.groups);
      const secret = random('bws_', 24);
      const t = now();
      const row: UsersTable = {
        id: randomUUID(),
        username,
        role: input.role,
        groups: groups === null ? null : JSON.stringify(groups),
        password_hash: null,
        previous_password_hash: null,
        setup_secret_hash: sha256(secret),
        setup_expires_at: t + settings.setupSecretTtlMs,
        totp_secret: null,
        totp_enabled: 0,
        totp_last_step: null,
        disabled_at: null,
        created_at: t,
        updated_at: t,
      };
      try {
        await db.insertInto('users').values(row).execute();
      } catch (err) {
        if (await byName(username)) throw new BulwarkError('conflict', `user ${username} already exists`);
        throw err;
      }
      await events.emit({
        type: 'user.created',
        actor,
        subject: `user:${username}`,
        data: { role: input.role, groups },
      });
      return { user: await toUser(row), setupSecret: secret, setupExpiresAt: t + settings.setupSecretTtlMs };
    },

    async count(): Promise<number> {
      const r = await db.selectFrom('users').select(db.fn.countAll<number>().as('n')).executeTakeFirst();
      return Number(r?.n ?? 0);
    },

    async list(): Promise<User[]> {
      const rows = await db.selectFrom('users').selectAll().orderBy('username').execute();
      return Promise.all(rows.map(toUser));
    },

    async get(username: string): Promise<User> {
      return toUser(await requireUser(username));
    },

    /** Role, groups or disabled changes; every such privilege change ends the user's sessions. */
    async update(
      username: string,
      changes: { role?: string; groups?: unknown; disabled?: boolean },
      actor: string,
    ): Promise<User> {
      const row = await requireUser(username);
      const set: Partial<UsersTable> = { updated_at: now() };
      const recorded: Record<string, string | boolean | string[] | null> = {};
      if (changes.role !== undefined) {
        if (!isRole(changes.role))
          throw new BulwarkError(
            'validation_failed',
            'role must be one of admin, security-officer, operator, auditor, viewer',
          );
        set.role = changes.role;
        recorded.role = changes.role;
      }
      if (changes.groups !== undefined) {
        const groups = checkGroups(changes.groups);
        set.groups = groups === null ? null : JSON.stringify(groups);
        recorded.groups = groups;
      }
      if (changes.disabled !== undefined) {
        set.disabled_at = changes.disabled ? now() : null;
        recorded.disabled = changes.disabled;
      }
      await db.transaction().execute(async (trx) => {
        await trx.updateTable('users').set(set).where('id', '=', row.id).execute();
        await trx.deleteFrom('sessions').where('user_id', '=', row.id).execute();
        if (changes.disabled)
          await trx
            .updateTable('api_tokens')
            .set({ revoked_at: now() })
            .where('user_id', '=', row.id)
            .where('revoked_at', 'is', null)
            .execute();
      });
      await events.emit({
        type: 'user.updated',
        actor,
        subject: `user:${row.username}`,
        data: { changes: recorded },
      });
      return toUser({ ...row, ...set });
    },

    /** A new setup secret (password and factors are reset): for a user who lost everything. */
    async resetSetup(username: string, actor: string) {
      const row = await requireUser(username);
      const secret = random('bws_', 24);
      const t = now();
      await db.transaction().execute(async (trx) => {
        await trx
          .updateTable('users')
          .set({
            setup_secret_hash: sha256(secret),
            setup_expires_at: t + settings.setupSecretTtlMs,
            password_hash: null,
            totp_enabled: 0,
            totp_secret: null,
            updated_at: t,
          })
          .where('id', '=', row.id)
          .execute();
        await trx.deleteFrom('sessions').where('user_id', '=', row.id).execute();
        await trx.deleteFrom('recovery_codes').where('user_id', '=', row.id).execute();
        await trx.deleteFrom('webauthn_credentials').where('user_id', '=', row.id).execute();
      });
      await events.emit({
        type: 'user.updated',
        actor,
        subject: `user:${row.username}`,
        data: { changes: { setupReset: true } },
      });
      return { setupSecret: secret, setupExpiresAt: t + settings.setupSecretTtlMs };
    },

    /** First sign-in: exchange the setup secret for a password; the session then must enrol a factor if required. */
    async completeSetup(input: {
      username: string;
      setupSecret: string;
      password: string;
      address: string;
    }): Promise<SessionTicket> {
      const keys = [`account:${String(input.username).toLowerCase()}`, `address:${input.address}`];
      await refuseIfBlocked(keys);
      const row = usernamePattern.test(String(input.username).toLowerCase())
        ? await byName(String(input.username).toLowerCase())
        : undefined;
      const valid =
        row !== undefined &&
        row.disabled_at === null &&
        row.setup_secret_hash !== null &&
        (row.setup_expires_at ?? 0) > now() &&
        sameHash(row.setup_secret_hash, sha256(String(input.setupSecret)));
      if (!valid || !row) {
        await recordFailure(keys, input.username, input.address, 'bad setup secret');
        throw new BulwarkError(
          'invalid_credentials',
          'user name or setup secret is wrong, or the secret has expired',
        );
      }
      await checkNewPassword(input.password, row.username, [row.previous_password_hash]);
      const passwordHash = await hashPassword(input.password);
      const updated = await db
        .updateTable('users')
        .set({
          password_hash: passwordHash,
          setup_secret_hash: null,
          setup_expires_at: null,
          updated_at: now(),
        })
        .where('id', '=', row.id)
        .where('setup_secret_hash', '=', row.setup_secret_hash)
        .executeTakeFirst();
      if (Number(updated.numUpdatedRows) !== 1)
        throw new BulwarkError('invalid_credentials', 'the setup secret has already been used');
      await throttle.succeed(keys);
      await events.emit({
        type: 'user.setup_completed',
        actor: `user:${row.username}`,
        subject: `user:${row.username}`,
        data: { address: input.address },
      });
      const state: SessionState = requires2fa(row.role as Role) ? 'enrolment' : 'active';
      await events.emit({
        type: 'auth.sign_in_succeeded',
        actor: `user:${row.username}`,
        subject: `user:${row.username}`,
        data: { address: input.address, method: 'setup', next: state },
      });
      return newSession(row.id, state, input.address);
    },

    /**
     * Password step. Unknown, disabled and set-up-pending accounts get exactly the answer (and the argon2
     * work) a wrong password gets; back-off and lockout count per account name and per source address.
     */
    async signIn(input: { username: string; password: string; address: string }): Promise<SessionTicket> {
      const name = String(input.username ?? '')
        .trim()
        .toLowerCase();
      const keys = [`account:${name}`, `address:${input.address}`];
      await refuseIfBlocked(keys).catch(async (err: unknown) => {
        // Attempts the back-off refuses are still attempts (a guessing run goes on): recorded, at a bounded rate.
        const { record, suppressed } = throttledSignIns.admit(input.address);
        if (record)
          await events.emit({
            type: 'auth.sign_in_failed',
            actor: `anonymous@${input.address}`,
            subject: `user:${name}`,
            data: {
              address: input.address,
              reason: `throttled${suppressed ? ` (+${suppressed} more)` : ''}`,
            },
          });
        throw err;
      });
      const row = usernamePattern.test(name) ? await byName(name) : undefined;
      const stored = row?.password_hash ?? (await dummyHash);
      const passwordOk = await verifyPassword(stored, String(input.password ?? ''));
      if (!row || !passwordOk || row.password_hash === null || row.disabled_at !== null) {
        await recordFailure(
          keys,
          name,
          input.address,
          !row ? 'unknown user' : row.disabled_at !== null ? 'account disabled' : 'wrong password',
        );
        throw new BulwarkError('invalid_credentials', 'user name or password is wrong');
      }
      await throttle.succeed(keys);
      const state = await stateAfterPassword(row);
      await events.emit({
        type: 'auth.sign_in_succeeded',
        actor: `user:${row.username}`,
        subject: `user:${row.username}`,
        data: { address: input.address, method: 'password', next: state },
      });
      return newSession(row.id, state, input.address);
    },

    /** Second step: a TOTP code (each time step accepted once) or a single-use recovery code. */
    async secondFactor(
      principal: Principal & { sessionIdHash: string },
      input: { code?: string; recoveryCode?: string },
      address: string,
    ): Promise<SessionTicket> {
      await refuseIfBlocked(factorKeys(principal, address));
      const actor = `user:${principal.username}`;
      const row = await byId(principal.userId);
      if (!row) throw new BulwarkError('unauthenticated', 'session user no longer exists');
      const method = input.recoveryCode !== undefined ? 'recovery_code' : 'totp';
      let ok = false;
      let reason = 'wrong code';
      if (method === 'totp' && row.totp_enabled === 1 && row.totp_secret && typeof input.code === 'string') {
        const step = matchTotp(
          box.open(row.totp_secret, `totp/${row.id}`).toString(),
          input.code.trim(),
          now(),
        );
        if (step !== undefined) {
          // Refuse a replayed code: the step must be later than the last one accepted.
          const res = await db
            .updateTable('users')
            .set({ totp_last_step: step })
            .where('id', '=', row.id)
            .where((eb) => eb.or([eb('totp_last_step', 'is', null), eb('totp_last_step', '<', step)]))
            .executeTakeFirst();
          ok = Number(res.numUpdatedRows) === 1;
          if (!ok) reason = 'code already used';
        }
      } else if (method === 'recovery_code' && typeof input.recoveryCode === 'string') {
        const res = await db
          .updateTable('recovery_codes')
          .set({ used_at: now() })
          .where('user_id', '=', row.id)
          .where('code_hash', '=', sha256(normalizeRecovery(input.recoveryCode)))
          .where('used_at', 'is', null)
          .executeTakeFirst();
        ok = Number(res.numUpdatedRows) === 1;
      }
      if (!ok) {
        await failSecondFactor(principal, address, method, reason);
        throw new BulwarkError(
          'invalid_credentials',
          method === 'totp'
            ? 'the code is wrong, expired or already used'
            : 'the recovery code is wrong or already used',
        );
      }
      if (method === 'recovery_code') {
        const left = (await factorsOf(row.id, row)).recoveryCodesLeft;
        await events.emit({
          type: 'auth.recovery_code_used',
          actor,
          subject: actor,
          data: { remaining: left },
        });
      }
      return passSecondFactor(principal, address, method);
    },

    /** For other second factors (passkeys, webauthn.ts): refused while the account or address is throttled. */
    refuseIfThrottled: (principal: Pick<Principal, 'username'>, address: string) =>
      refuseIfBlocked(factorKeys(principal, address)),

    /** A failed second-factor attempt: an event, and a failure in the throttle (as a wrong TOTP code). */
    failSecondFactor,

    /** A passed second factor: clears the throttle, records it, and rotates the session to `active`. */
    passSecondFactor,

    /**
     * After another factor (a passkey) was enrolled: the event, 10 recovery codes if the user has none
     * left, and an `active` session (a new id) when this one was still enrolling.
     */
    async completeEnrolment(
      principal: SessionPrincipal,
      factor: { factor: 'webauthn'; name: string },
      address: string,
    ): Promise<{ recoveryCodes?: string[]; session?: SessionTicket }> {
      const actor = `user:${principal.username}`;
      await events.emit({ type: 'auth.factor_enrolled', actor, subject: actor, data: factor });
      const recoveryCodes =
        (await factorsOf(principal.userId)).recoveryCodesLeft === 0
          ? await issueRecoveryCodes(principal.userId, actor)
          : undefined;
      const session =
        principal.sessionState === 'active' ? undefined : await rotate(principal, 'active', address);
      return { recoveryCodes, session };
    },

    /** Starts TOTP enrolment: a fresh secret, its otpauth URI and a QR code (SVG). Not active until confirmed. */
    async beginTotp(principal: Principal) {
      const secret = newTotpSecret();
      await db
        .updateTable('users')
        .set({
          totp_secret: box.seal(Buffer.from(secret), `totp/${principal.userId}`),
          totp_enabled: 0,
          updated_at: now(),
        })
        .where('id', '=', principal.userId)
        .execute();
      const uri = totpUri(secret, principal.username);
      return { secret, otpauthUri: uri, qrSvg: await QRCode.toString(uri, { type: 'svg', margin: 1 }) };
    },

    /** Confirms TOTP with a first code; returns 10 recovery codes (shown once) and an active session. */
    async confirmTotp(principal: Principal & { sessionIdHash: string }, code: string, address: string) {
      const row = await byId(principal.userId);
      if (!row?.totp_secret) throw new BulwarkError('bad_request', 'start TOTP enrolment first');
      if (row.totp_enabled === 1) throw new BulwarkError('conflict', 'TOTP is already enabled');
      const step = matchTotp(
        box.open(row.totp_secret, `totp/${row.id}`).toString(),
        String(code ?? '').trim(),
        now(),
      );
      if (step === undefined)
        throw new BulwarkError(
          'validation_failed',
          'the code does not match: check the authenticator app and the clock',
        );
      await db
        .updateTable('users')
        .set({ totp_enabled: 1, totp_last_step: step, updated_at: now() })
        .where('id', '=', row.id)
        .execute();
      const actor = `user:${principal.username}`;
      await events.emit({ type: 'auth.factor_enrolled', actor, subject: actor, data: { factor: 'totp' } });
      const recoveryCodes = await issueRecoveryCodes(row.id, actor);
      const session =
        principal.sessionState === 'active' ? undefined : await rotate(principal, 'active', address);
      return { recoveryCodes, session };
    },

    requireFreshSession,

    /** New recovery codes replace the old ones: only from a session that just proved its second factor. */
    async regenerateRecoveryCodes(principal: Principal): Promise<string[]> {
      requireFreshSession(principal);
      const factors = await factorsOf(principal.userId);
      if (!factors.totp && factors.webauthn === 0)
        throw new BulwarkError(
          'conflict',
          'recovery codes stand in for a second factor: enrol TOTP or a passkey first',
        );
      return issueRecoveryCodes(principal.userId, actorOf(principal));
    },

    /** Resolves a session cookie; enforces idle and absolute timeouts and slides the idle window. */
    async resolveSession(cookie: string): Promise<(Principal & { sessionIdHash: string }) | undefined> {
      if (!cookie || cookie.length > 100) return undefined;
      const idHash = sha256(cookie);
      const session: SessionsTable | undefined = await db
        .selectFrom('sessions')
        .selectAll()
        .where('id_hash', '=', idHash)
        .executeTakeFirst();
      const t = now();
      if (!session) return undefined;
      if (session.expires_at <= t || t - session.last_seen_at > settings.sessionIdleMs) {
        await db.deleteFrom('sessions').where('id_hash', '=', idHash).execute();
        return undefined;
      }
      const row = await byId(session.user_id);
      if (!row || row.disabled_at !== null) return undefined;
      if (t - session.last_seen_at > 10_000)
        await db.updateTable('sessions').set({ last_seen_at: t }).where('id_hash', '=', idHash).execute();
      return {
        userId: row.id,
        username: row.username,
        role: row.role as Role,
        groups: row.groups === null ? null : (JSON.parse(row.groups) as string[]),
        via: 'session',
        sessionState: session.state as SessionState,
        csrfToken: session.csrf_token,
        sessionIdHash: idHash,
        authenticatedAt: session.created_at,
      };
    },

    async signOut(principal: Principal & { sessionIdHash?: string }, everywhere: boolean): Promise<number> {
      let query = db.deleteFrom('sessions').where('user_id', '=', principal.userId);
      // Without `everywhere`, only the caller's own session ends (an API token has none to end).
      if (!everywhere) query = query.where('id_hash', '=', principal.sessionIdHash ?? '');
      const res = await query.executeTakeFirst();
      const n = Number(res.numDeletedRows);
      await events.emit({
        type: 'auth.signed_out',
        actor: actorOf(principal),
        subject: `user:${principal.username}`,
        data: { everywhere, sessions: n },
      });
      return n;
    },

    /** An API token with a role no larger than its creator's; shown once, stored hashed. */
    async createToken(principal: Principal, input: { name: string; role?: string; expiresInMs: number }) {
      const role = input.role ?? principal.role;
      if (!isRole(role))
        throw new BulwarkError(
          'validation_failed',
          'role must be one of admin, security-officer, operator, auditor, viewer',
        );
      if (!roleWithin(role, principal.role))
        throw new BulwarkError(
          'forbidden',
          `a token cannot have more rights than its creator (${principal.role})`,
        );
      if (!(input.expiresInMs > 0 && input.expiresInMs <= MAX_TOKEN_LIFETIME))
        throw new BulwarkError('validation_failed', 'expiresIn must be more than 0 and at most 365 days');
      const name = String(input.name ?? '').trim();
      if (!/^[\w .:-]{1,64}$/.test(name))
        throw new BulwarkError(
          'validation_failed',
          'name must be 1-64 characters of letters, digits, space, _ . : -',
        );
      const token = random('bwt_', 32);
      const t = now();
      const id = randomUUID();
      await db
        .insertInto('api_tokens')
        .values({
          id,
          user_id: principal.userId,
          name,
          role,
          token_hash: sha256(token),
          created_at: t,
          expires_at: t + input.expiresInMs,
          last_used_at: null,
          last_used_address: null,
          revoked_at: null,
        })
        .execute();
      await events.emit({
        type: 'api_token.created',
        actor: actorOf(principal),
        subject: `user:${principal.username}`,
        data: { tokenId: id, name, role, expiresAt: t + input.expiresInMs },
      });
      return { id, name, role, token, expiresAt: t + input.expiresInMs };
    },

    async listTokens(principal: Principal) {
      const rows = await db
        .selectFrom('api_tokens')
        .selectAll()
        .where('user_id', '=', principal.userId)
        .orderBy('created_at')
        .execute();
      return rows.map((r) => ({
        id: r.id,
        name: r.name,
        role: r.role,
        createdAt: r.created_at,
        expiresAt: r.expires_at,
        lastUsedAt: r.last_used_at,
        lastUsedAddress: r.last_used_address,
        revoked: r.revoked_at !== null,
      }));
    },

    async revokeToken(principal: Principal, id: string): Promise<void> {
      const res = await db
        .updateTable('api_tokens')
        .set({ revoked_at: now() })
        .where('id', '=', id)
        .where('user_id', '=', principal.userId)
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) !== 1) throw new BulwarkError('not_found', `no active token ${id}`);
      await events.emit({
        type: 'api_token.revoked',
        actor: actorOf(principal),
        subject: `user:${principal.username}`,
        data: { tokenId: id },
      });
    },

    /** Resolves `Authorization: Bearer bwt_…`; records last use and flags use from a new address. */
    async resolveToken(token: string, address: string): Promise<Principal | undefined> {
      if (!token.startsWith('bwt_') || token.length > 100) return undefined;
      const row = await db
        .selectFrom('api_tokens')
        .selectAll()
        .where('token_hash', '=', sha256(token))
        .executeTakeFirst();
      const t = now();
      if (!row || row.revoked_at !== null || row.expires_at <= t) return undefined;
      const user = await byId(row.user_id);
      if (!user || user.disabled_at !== null) return undefined;
      // The token's role, but never more than the user holds today.
      const role = roleWithin(row.role as Role, user.role as Role) ? (row.role as Role) : (user.role as Role);
      if (row.last_used_address !== address || t - (row.last_used_at ?? 0) > 60_000) {
        await db
          .updateTable('api_tokens')
          .set({ last_used_at: t, last_used_address: address })
          .where('id', '=', row.id)
          .execute();
      }
      if (row.last_used_address !== null && row.last_used_address !== address) {
        await events.emit({
          type: 'api_token.used_from_new_address',
          actor: `user:${user.username}/token:${row.id}`,
          subject: `user:${user.username}`,
          data: { tokenId: row.id, address, previous: row.last_used_address },
        });
      }
      return {
        userId: user.id,
        username: user.username,
        role,
        groups: user.groups === null ? null : (JSON.parse(user.groups) as string[]),
        via: 'token',
        tokenId: row.id,
      };
    },
  };

  /**
   * Factor and credential management (recovery codes, API tokens, passkeys, sign-out everywhere): a signed-in
   * session, never an API token (a token's role caps what it does, and a token is not a second factor), that
   * authenticated within the step-up window. OWASP ASVS 4.0 V2.2.3/V3.7.1 (re-authentication before sensitive
   * changes), NIST SP 800-63B §4.2.2 / §7.1.
   */
  function requireFreshSession(principal: Principal): void {
    if (principal.via !== 'session')
      throw new BulwarkError(
        'forbidden',
        'factors and credentials are managed from a signed-in session, never with an API token',
      );
    if (principal.sessionState !== undefined && principal.sessionState !== 'active')
      throw new BulwarkError('second_factor_required', 'complete sign-in with your second factor first');
    const age = now() - (principal.authenticatedAt ?? 0);
    if (age > settings.stepUpWindowMs) {
      const windowS = Math.round(settings.stepUpWindowMs / 1000);
      throw new BulwarkError(
        'step_up_required',
        `this needs a second factor verified in the last ${windowS} s: verify it again (POST /api/v1/auth/second-factor with a TOTP or recovery code, or a passkey through /api/v1/auth/webauthn/authenticate/options and /verify), then retry; an account without a second factor signs in again`,
        { details: { stepUpWindowS: windowS } },
      );
    }
  }

  async function refuseIfBlocked(keys: string[]): Promise<void> {
    const until = await throttle.blockedUntil(keys);
    if (until !== undefined) {
      const retryAfterS = Math.max(1, Math.ceil((until - now()) / 1000));
      throw new BulwarkError('rate_limited', `too many failed attempts: try again in ${retryAfterS} s`, {
        details: { retryAfterS },
      });
    }
  }

  async function recordFailure(
    keys: string[],
    username: string,
    address: string,
    reason: string,
    emitFailure = true,
  ): Promise<void> {
    const actor = `user:${String(username).toLowerCase()}`;
    if (emitFailure)
      await events.emit({
        type: 'auth.sign_in_failed',
        actor: `anonymous@${address}`,
        subject: actor,
        data: { address, reason },
      });
    const { lockedNow } = await throttle.fail(keys);
    for (const key of lockedNow) {
      await events.emit({
        type: 'auth.locked_out',
        actor: 'system',
        subject: key.startsWith('account:') ? actor : `address:${address}`,
        data: {
          address,
          scope: key.startsWith('account:') ? 'account' : 'address',
          until: (await throttle.blockedUntil([key])) ?? now(),
        },
      });
    }
  }
}

export type UserService = ReturnType<typeof createUserService>;
