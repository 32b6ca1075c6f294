import { BulwarkError } from '@bulwark/protocol';
import {
  actorOf,
  createEventRateLimit,
  subjectOf,
  type SecurityEvent,
  type TxEmit,
} from '../events/index.ts';
import type { Tx, UsersTable } from '../store/index.ts';
import { checkNewPassword, dummyHash, hashPassword, verifyPassword } from './password.ts';
import type { SessionTicket, SessionUseCases } from './sessions.ts';
import { roleOf, sameHash, sha256, usernamePattern, type UserContext } from './user.context.ts';
import type { SessionState } from './user.types.ts';

/** A failed attempt to record: the throttle keys it counts against, who and where, and why. */
export interface Failure {
  keys: string[];
  username: string;
  address: string;
  reason: string;
  /** The event that records the failure, when not sign-in's `auth.sign_in_failed` (a second-factor failure). */
  event?: SecurityEvent;
}

/** Back-off and lockout (per account name and per source address) in front of every guessable secret. */
export function attemptGuard(ctx: Pick<UserContext, 'events' | 'throttle' | 'now'>) {
  const { events, throttle, now } = ctx;

  async function refuseIfBlocked(keys: string[]): Promise<void> {
    const until = await throttle.blockedUntil(keys);
    if (until !== undefined) {
      const retryAfterS = Math.max(1, Math.ceil((until - now()) / 1000));
      throw new BulwarkError('rate_limited', `too many failed attempts: try again in ${retryAfterS} s`, {
        details: { retryAfterS },
      });
    }
  }

  /** Counts a failure in the throttle, committed with its event and the lockouts it caused. */
  async function recordFailure(failure: Failure): Promise<void> {
    const { keys, address, reason } = failure;
    const subject = subjectOf.user(String(failure.username).toLowerCase());
    await events.atomically(async (tx, emit) => {
      emit(
        failure.event ?? {
          type: 'auth.sign_in_failed',
          actor: actorOf.anonymous(address),
          subject,
          data: { address, reason },
        },
      );
      const { lockedNow } = await throttle.fail(keys, tx);
      for (const { key, until } of lockedNow) {
        const scope = key.startsWith('account:') ? 'account' : 'address';
        emit({
          type: 'auth.locked_out',
          actor: 'system',
          subject: scope === 'account' ? subject : subjectOf.address(address),
          data: { address, scope, until },
        });
      }
    });
  }

  return { refuseIfBlocked, recordFailure };
}

export type AttemptGuard = ReturnType<typeof attemptGuard>;

const throttleKeys = (name: string, address: string) => [`account:${name}`, `address:${address}`];

/** Sign-in: the first exchange of the setup secret for a password, and the password step. */
export function signInUseCases(
  ctx: UserContext,
  parts: { sessions: Pick<SessionUseCases, 'newSession'>; guard: AttemptGuard },
) {
  const { events, throttle, now, requires2fa } = ctx;
  const { sessions, guard } = parts;
  /** Sign-ins the back-off refused, recorded at a bounded rate per address. */
  const throttledSignIns = createEventRateLimit({ max: 30, windowMs: 60_000 });

  /** The state a freshly authenticated (password) session starts in. */
  async function stateAfterPassword(row: UsersTable): Promise<SessionState> {
    if (await ctx.hasFactor(row.id, row)) return 'second_factor';
    return requires2fa(roleOf(row)) ? 'enrolment' : 'active';
  }

  /**
   * A successful sign-in step, in the transaction of the change it makes: the throttle's counts cleared, its
   * event, and a session in the state that comes next.
   */
  async function signedIn(
    tx: Tx,
    emit: TxEmit,
    step: {
      row: UsersTable;
      keys: string[];
      address: string;
      method: 'password' | 'setup';
      next: SessionState;
    },
  ) {
    const { row, keys, ...data } = step;
    await throttle.succeed(keys, tx);
    const user = subjectOf.user(row.username);
    emit({ type: 'auth.sign_in_succeeded', actor: user, subject: user, data });
    return sessions.newSession(tx, { userId: row.id, state: step.next, address: step.address });
  }

  async function setupAccount(input: { username: string; setupSecret: string; address: string }) {
    const name = String(input.username).toLowerCase();
    const row = usernamePattern.test(name) ? await ctx.byName(name) : undefined;
    const valid =
      row !== undefined &&
      row.disabled_at === null &&
      row.setup_secret_hash !== null &&
      (row.setup_expires_at ?? 0) > now() &&
      sameHash(row.setup_secret_hash, sha256(String(input.setupSecret)));
    return valid ? row : undefined;
  }

  /** First sign-in: exchange the setup secret for a password; the session then must enrol a factor if required. */
  async function completeSetup(input: {
    username: string;
    setupSecret: string;
    password: string;
    address: string;
  }): Promise<SessionTicket> {
    const keys = throttleKeys(String(input.username).toLowerCase(), input.address);
    await guard.refuseIfBlocked(keys);
    const row = await setupAccount(input);
    if (!row?.setup_secret_hash) {
      await guard.recordFailure({
        keys,
        username: input.username,
        address: input.address,
        reason: 'bad setup secret',
      });
      throw new BulwarkError(
        'invalid_credentials',
        'user name or setup secret is wrong, or the secret has expired',
      );
    }
    await checkNewPassword(input.password, row.username, [row.previous_password_hash]);
    const passwordHash = await hashPassword(input.password);
    const setupSecretHash = row.setup_secret_hash;
    return events.atomically(async (tx, emit) => {
      const updated = await tx
        .updateTable('users')
        .set({
          password_hash: passwordHash,
          setup_secret_hash: null,
          setup_expires_at: null,
          updated_at: now(),
        })
        .where('id', '=', row.id)
        .where('setup_secret_hash', '=', setupSecretHash)
        .executeTakeFirst();
      if (Number(updated.numUpdatedRows) !== 1)
        throw new BulwarkError('invalid_credentials', 'the setup secret has already been used');
      const user = subjectOf.user(row.username);
      emit({ type: 'user.setup_completed', actor: user, subject: user, data: { address: input.address } });
      return signedIn(tx, emit, {
        row,
        keys,
        address: input.address,
        method: 'setup',
        next: requires2fa(roleOf(row)) ? 'enrolment' : 'active',
      });
    });
  }

  /** Attempts the back-off refuses are still attempts (a guessing run goes on): recorded, at a bounded rate. */
  async function refuseThrottled(name: string, address: string): Promise<void> {
    await guard.refuseIfBlocked(throttleKeys(name, address)).catch(async (err: unknown) => {
      const { record, suppressed } = throttledSignIns.admit(address);
      if (record)
        await events.emit({
          type: 'auth.sign_in_failed',
          actor: actorOf.anonymous(address),
          subject: subjectOf.user(name),
          data: { address, reason: `throttled${suppressed ? ` (+${suppressed} more)` : ''}` },
        });
      throw err;
    });
  }

  /**
   * Password step. Unknown, disabled and set-up-pending accounts get exactly the answer (and the argon2
   * work) a wrong password gets; back-off and lockout count per account name and per source address.
   */
  async function signIn(input: {
    username: string;
    password: string;
    address: string;
  }): Promise<SessionTicket> {
    const name = String(input.username ?? '')
      .trim()
      .toLowerCase();
    const keys = throttleKeys(name, input.address);
    await refuseThrottled(name, input.address);
    const row = usernamePattern.test(name) ? await ctx.byName(name) : undefined;
    const stored = row?.password_hash ?? (await dummyHash);
    const passwordOk = await verifyPassword(stored, String(input.password ?? ''));
    if (!row || !passwordOk || row.password_hash === null || row.disabled_at !== null) {
      const reason = !row ? 'unknown user' : row.disabled_at !== null ? 'account disabled' : 'wrong password';
      await guard.recordFailure({ keys, username: name, address: input.address, reason });
      throw new BulwarkError('invalid_credentials', 'user name or password is wrong');
    }
    const next = await stateAfterPassword(row);
    return events.atomically((tx, emit) =>
      signedIn(tx, emit, { row, keys, address: input.address, method: 'password', next }),
    );
  }

  return { completeSetup, signIn };
}
