import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AtomicStep, AuditLog, EventBus, EventType } from '../events/index.ts';
import { createAuditedEvents } from '../test-support/audited-events.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import type { DialectName } from '../store/index.ts';
import type { SessionPrincipal } from './sessions.ts';
import {
  activeUser as setUpUser,
  createTestUserService,
  sessionOf,
  TEST_PASSWORD as password,
} from './test-harness.ts';
import { totpCode, TOTP_PERIOD } from './totp.ts';
import type { UserService } from './user.service.ts';

const DAY = 86_400_000;
const STEP = TOTP_PERIOD * 1000;
const address = '10.0.0.1';
const T0 = 1_800_000_000_000;

/** A users service over a fresh store, audit log and event bus on `dialect`, with the test's clock. */
async function openUsers(
  dialect: DialectName,
  now: () => number,
  options: Pick<Parameters<typeof createTestUserService>[0], 'throttle' | 'settings'> = {},
) {
  const t = await createTestStore(dialect);
  const events = await createAuditedEvents(t.store.db, { now });
  const users = createTestUserService({
    db: t.store.db,
    box: events.box,
    events: events.bus,
    now,
    ...options,
  });
  return { t, events, audit: events.audit, bus: events.bus, users };
}

/**
 * Every change of the users module commits with its audit event (DESIGN.md rule 1): a crash after the change
 * is written but before it commits leaves neither; one after the commit leaves both (the event in the outbox,
 * relayed at the next start). The crash is the event bus's test seam (`onAtomicStep`) throwing at that step.
 */
describe.each(testDialects)('users: every change commits with its event (%s)', (dialect) => {
  let t: TestStore;
  let audit: AuditLog;
  let bus: EventBus;
  let users: UserService;
  let now = T0;
  let events: Awaited<ReturnType<typeof createAuditedEvents>>;

  beforeEach(async () => {
    now = T0;
    ({ t, events, audit, bus, users } = await openUsers(dialect, () => now));
  });
  afterEach(async () => {
    await bus.close();
    await t.cleanup();
  });

  const session = (id: string): Promise<SessionPrincipal> => sessionOf(users, id);
  const activeUser = (username: string) => setUpUser(users, { username, role: 'viewer' }, address);

  /** The audit log's entries of these types, oldest first. */
  async function logged(...types: EventType[]) {
    await bus.flush();
    return (await audit.readAfter(0, 1000)).filter((e) => types.includes(e.type));
  }

  /** Runs `change` with a crash at `step` of its transaction; it must fail with the crash. */
  async function crashing<R>(step: AtomicStep, change: () => Promise<R>) {
    events.failOnceAt(step);
    await expect(change()).rejects.toThrow(`failed at ${step}`);
    expect(events.failurePending()).toBe(false); // the change did reach the seam
  }

  it('leaves neither an API token nor its event when the creation crashes before its commit, and both after it', async () => {
    const vera = await activeUser('vera');
    await crashing('written', () => users.createToken(vera, { name: 'ci', expiresInMs: DAY }));
    expect(await users.listTokens(vera)).toEqual([]);
    expect(await logged('api_token.created')).toEqual([]);

    await crashing('committed', () => users.createToken(vera, { name: 'ci', expiresInMs: DAY }));
    const [token] = await users.listTokens(vera);
    expect(token).toMatchObject({ name: 'ci', revoked: false });
    // Committed with the change, the event waits in the outbox; the relay (at start, or the next change) moves it.
    await bus.drainOutbox();
    expect((await logged('api_token.created')).map((e) => e.data)).toEqual([
      { tokenId: token?.id, name: 'ci', role: 'viewer', expiresAt: now + DAY },
    ]);
  });

  it('keeps a token usable, and unlogged, when its revocation crashes before its commit', async () => {
    const vera = await activeUser('vera');
    const { id, token } = await users.createToken(vera, { name: 'ci', expiresInMs: DAY });
    await crashing('written', () => users.revokeToken(vera, id));
    expect(await users.resolveToken(token, address)).toMatchObject({ username: 'vera', via: 'token' });
    expect(await logged('api_token.revoked')).toEqual([]);
    await users.revokeToken(vera, id);
    expect(await users.resolveToken(token, address)).toBeUndefined();
    expect((await logged('api_token.revoked')).map((e) => e.data)).toEqual([{ tokenId: id }]);
  });

  it('keeps a token’s known address when the use from a new one crashes before its commit', async () => {
    const vera = await activeUser('vera');
    const { token } = await users.createToken(vera, { name: 'ci', expiresInMs: DAY });
    await users.resolveToken(token, address);
    await crashing('written', () => users.resolveToken(token, '10.9.9.9'));
    expect((await users.listTokens(vera))[0]?.lastUsedAddress).toBe(address);
    expect(await logged('api_token.used_from_new_address')).toEqual([]);
    await users.resolveToken(token, '10.9.9.9');
    expect((await users.listTokens(vera))[0]?.lastUsedAddress).toBe('10.9.9.9');
    expect((await logged('api_token.used_from_new_address')).map((e) => e.data)).toEqual([
      { tokenId: expect.any(String) as unknown, address: '10.9.9.9', previous: address },
    ]);
  });

  it('ends no session when signing out everywhere crashes before its commit', async () => {
    const vera = await activeUser('vera');
    const other = await users.signIn({ username: 'vera', password, address: '10.0.0.2' });
    await crashing('written', () => users.signOut(vera, true));
    expect(await users.resolveSession(other.id)).toBeDefined();
    expect(await logged('auth.signed_out')).toEqual([]);
    expect(await users.signOut(vera, true)).toBe(2);
    expect(await users.resolveSession(other.id)).toBeUndefined();
    expect((await logged('auth.signed_out')).map((e) => e.data)).toEqual([{ everywhere: true, sessions: 2 }]);
  });

  it('opens no session and logs no sign-in when the password step crashes before its commit', async () => {
    await activeUser('vera');
    const before = (await logged('auth.sign_in_succeeded')).length;
    await crashing('written', () => users.signIn({ username: 'vera', password, address }));
    expect(await logged('auth.sign_in_succeeded')).toHaveLength(before);
    expect(
      (await users.exportSubject({ kind: 'user', id: 'vera' })).filter((r) => r.record === 'session'),
    ).toHaveLength(1);
  });

  it('counts no failed sign-in, and locks nothing, when recording the failure crashes before its commit', async () => {
    await activeUser('vera');
    const wrong = () => users.signIn({ username: 'vera', password: 'not the password at all', address });
    for (let i = 0; i < 5; i++) {
      now += 60_000; // past any back-off
      await crashing('written', wrong);
    }
    expect(await logged('auth.sign_in_failed', 'auth.locked_out')).toEqual([]);
    // Uncounted: the right password still signs in.
    now += 60_000;
    await expect(users.signIn({ username: 'vera', password, address })).resolves.toMatchObject({
      state: 'active',
    });
    for (let i = 0; i < 5; i++) {
      now += 60_000;
      await expect(wrong()).rejects.toMatchObject({ code: 'invalid_credentials' });
    }
    // The fifth failure locks account and address, each lockout committed with the failures' counts.
    expect((await logged('auth.locked_out')).map((e) => e.data)).toEqual([
      { address, scope: 'account', until: now + 600_000 },
      { address, scope: 'address', until: now + 600_000 },
    ]);
    await expect(users.signIn({ username: 'vera', password, address })).rejects.toMatchObject({
      code: 'rate_limited',
    });
  });

  it('keeps a recovery code unused and the session waiting when the second step crashes before its commit', async () => {
    const vera = await activeUser('vera');
    const { secret } = await users.beginTotp(vera);
    const { recoveryCodes } = await users.confirmTotp(vera, totpCode(secret, now), address);
    const code = recoveryCodes[0] ?? '';
    const ticket = await users.signIn({ username: 'vera', password, address });
    const waiting = await session(ticket.id);
    expect(waiting.sessionState).toBe('second_factor');

    await crashing('written', () => users.secondFactor(waiting, { recoveryCode: code }, address));
    expect((await users.get('vera')).twoFactor.recoveryCodesLeft).toBe(10);
    expect((await session(ticket.id)).sessionState).toBe('second_factor'); // not rotated
    expect(await logged('auth.recovery_code_used', 'auth.second_factor_succeeded')).toEqual([]);

    const active = await users.secondFactor(waiting, { recoveryCode: code }, address);
    expect(active.state).toBe('active');
    expect((await users.get('vera')).twoFactor.recoveryCodesLeft).toBe(9);
    expect(
      (await logged('auth.recovery_code_used', 'auth.second_factor_succeeded')).map((e) => e.type),
    ).toEqual(['auth.recovery_code_used', 'auth.second_factor_succeeded']);
  });

  it('keeps the old recovery codes when their regeneration crashes before its commit', async () => {
    const vera = await activeUser('vera');
    const { secret } = await users.beginTotp(vera);
    const { recoveryCodes } = await users.confirmTotp(vera, totpCode(secret, now), address);
    await crashing('written', () => users.regenerateRecoveryCodes(vera));
    expect(await logged('auth.recovery_codes_generated')).toHaveLength(1); // the enrolment's
    const waiting = await session((await users.signIn({ username: 'vera', password, address })).id);
    await expect(
      users.secondFactor(waiting, { recoveryCode: recoveryCodes[0] ?? '' }, address),
    ).resolves.toMatchObject({ state: 'active' });
  });
});

describe.each(testDialects)('users: TOTP re-enrolment (%s)', (dialect) => {
  let t: TestStore;
  let audit: AuditLog;
  let bus: EventBus;
  let users: UserService;
  let now = T0;
  let events: Awaited<ReturnType<typeof createAuditedEvents>>;

  beforeEach(async () => {
    now = T0;
    ({ t, events, audit, bus, users } = await openUsers(dialect, () => now, {
      throttle: { threshold: 10, backoffAfter: 5 },
      settings: { require2faForAll: true },
    }));
  });
  afterEach(async () => {
    await bus.close();
    await t.cleanup();
  });

  const session = (id: string): Promise<SessionPrincipal> => sessionOf(users, id);

  /** A password sign-in, then the second step with this TOTP code (a new time step each time). */
  async function signInWith(code: (at: number) => string) {
    now += STEP;
    const waiting = await session((await users.signIn({ username: 'tess', password, address })).id);
    return users.secondFactor(waiting, { code: code(now) }, address);
  }

  const enrolled = async () =>
    (await audit.readAfter(0, 1000)).filter((e) => e.type === 'auth.factor_enrolled').map((e) => e.data);

  it('keeps the old TOTP working until a code of the new secret is confirmed, then switches with its event', async () => {
    const setup = await setUpUser(users, { username: 'tess', role: 'admin' }, address);
    const { secret: first } = await users.beginTotp(setup);
    const { session: ticket } = await users.confirmTotp(setup, totpCode(first, now), address);
    const active = await session(ticket?.id ?? '');
    expect(await enrolled()).toEqual([{ factor: 'totp' }]);

    // Re-enrolment starts: TOTP stays on, and the old secret still completes sign-in.
    const { secret: second } = await users.beginTotp(active);
    expect(second).not.toBe(first);
    expect((await users.get('tess')).twoFactor.totp).toBe(true);
    expect(await users.exportSubject({ kind: 'user', id: 'tess' })).toContainEqual({
      record: 'totp',
      enabled: true,
      enrolmentPending: true,
    });
    await expect(signInWith((at) => totpCode(first, at))).resolves.toMatchObject({ state: 'active' });
    // The pending secret is no second factor yet.
    await expect(signInWith((at) => totpCode(second, at))).rejects.toMatchObject({
      code: 'invalid_credentials',
    });

    // A wrong confirmation changes nothing; nor does one whose commit crashes.
    now += STEP;
    await expect(users.confirmTotp(active, '000000', address)).rejects.toMatchObject({
      code: 'validation_failed',
    });
    events.failOnceAt('written');
    await expect(users.confirmTotp(active, totpCode(second, now), address)).rejects.toThrow(
      'failed at written',
    );
    expect(await enrolled()).toHaveLength(1);
    await expect(signInWith((at) => totpCode(first, at))).resolves.toMatchObject({ state: 'active' });

    // Confirmed: the new secret replaces the old one, with its event and new recovery codes.
    now += STEP;
    const confirmed = await users.confirmTotp(active, totpCode(second, now), address);
    expect(confirmed.recoveryCodes).toHaveLength(10);
    expect(confirmed.session).toBeUndefined(); // already active: no rotation
    expect(await enrolled()).toEqual([{ factor: 'totp' }, { factor: 'totp' }]);
    expect(await users.exportSubject({ kind: 'user', id: 'tess' })).toContainEqual({
      record: 'totp',
      enabled: true,
      enrolmentPending: false,
    });
    await expect(signInWith((at) => totpCode(first, at))).rejects.toMatchObject({
      code: 'invalid_credentials',
    });
    await expect(signInWith((at) => totpCode(second, at))).resolves.toMatchObject({ state: 'active' });
    // Nothing pending is left to confirm.
    await expect(users.confirmTotp(active, totpCode(second, now + STEP), address)).rejects.toMatchObject({
      code: 'conflict',
    });
  });

  it('confirms only the latest secret when enrolment is started twice', async () => {
    const setup = await setUpUser(users, { username: 'tess', role: 'admin' }, address);
    const { secret: superseded } = await users.beginTotp(setup);
    const { secret: latest } = await users.beginTotp(setup);
    await expect(users.confirmTotp(setup, totpCode(superseded, now), address)).rejects.toMatchObject({
      code: 'validation_failed',
    });
    expect((await users.get('tess')).twoFactor.totp).toBe(false);
    await expect(users.confirmTotp(setup, totpCode(latest, now), address)).resolves.toMatchObject({
      session: { state: 'active' },
    });
    expect((await users.get('tess')).twoFactor.totp).toBe(true);
  });
});
