import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createAuditLog,
  createEventBus,
  latestPerSubject,
  type AuditLog,
  type EventBus,
} from '../events/index.ts';
import { createSecretBox } from '../secrets/index.ts';
import { isBusy, isUniqueViolation } from '../store/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { createThrottle } from './throttle.ts';
import { totpCode } from './totp.ts';
import { createUserService, type UserService } from './user.service.ts';

const DAY = 86_400_000;
const password = 'a sufficiently long passphrase';

describe.each(testDialects)('users: compliance facts per account (%s)', (dialect) => {
  let t: TestStore;
  let audit: AuditLog;
  let bus: EventBus;
  let users: UserService;
  let now = 1_800_000_000_000;

  beforeEach(async () => {
    t = await createTestStore(dialect);
    now = 1_800_000_000_000;
    const db = t.store.db;
    const box = createSecretBox(randomBytes(32));
    audit = createAuditLog({
      db,
      mac: box,
      now: () => now,
      isRetryable: (e) => isUniqueViolation(e) || isBusy(e),
    });
    await audit.ensureAnchor();
    bus = createEventBus({ log: audit, db });
    users = createUserService({
      db,
      box,
      events: bus,
      now: () => now,
      throttle: createThrottle({
        db,
        now: () => now,
        threshold: 7,
        lockoutMs: 600_000,
        backoffAfter: 3,
        backoffBaseMs: 1000,
      }),
      settings: {
        require2faForAll: true,
        sessionIdleMs: 1_800_000,
        sessionAbsoluteMs: 43_200_000,
        setupSecretTtlMs: DAY,
        stepUpWindowMs: 300_000,
      },
      lastSignIns: () => latestPerSubject(audit, 'auth.sign_in_succeeded'),
    });
  });
  afterEach(async () => {
    await bus.close();
    await t.cleanup();
  });

  async function activeUser(username: string, role: 'viewer' | 'admin' | 'security-officer') {
    const { setupSecret } = await users.create({ username, role }, 'test');
    const ticket = await users.completeSetup({ username, setupSecret, password, address: '10.0.0.1' });
    const principal = await users.resolveSession(ticket.id);
    if (!principal) throw new Error('no session');
    return principal;
  }

  it('states each account, its second factor and last sign-in, the settings and the active API tokens', async () => {
    const created = now;
    const vera = await activeUser('vera', 'viewer');
    const adam = await activeUser('adam', 'admin');
    const { secret } = await users.beginTotp(adam);
    await users.confirmTotp(adam, totpCode(secret, now), '10.0.0.1');
    await users.create({ username: 'pending', role: 'security-officer' }, 'test');
    await activeUser('olga', 'security-officer');
    await users.update('olga', { disabled: true }, 'test');
    const token = await users.createToken(vera, { name: 'ci', expiresInMs: 30 * DAY });
    const revoked = await users.createToken(vera, { name: 'old', expiresInMs: 30 * DAY });
    await users.revokeToken(vera, revoked.id);
    await users.createToken(vera, { name: 'short', expiresInMs: DAY });
    now += 2 * DAY; // the one-day token has expired
    await users.signIn({ username: 'vera', password, address: '10.0.0.2' });
    await bus.flush();

    const facts = await users.complianceFacts();
    expect(facts.accounts).toEqual([
      {
        username: 'adam',
        role: 'admin',
        disabled: false,
        setupComplete: true,
        secondFactor: true,
        lastSignInAt: created,
        createdAt: created,
      },
      {
        username: 'olga',
        role: 'security-officer',
        disabled: true,
        setupComplete: true,
        secondFactor: false,
        lastSignInAt: created,
        createdAt: created,
      },
      {
        username: 'pending',
        role: 'security-officer',
        disabled: false,
        setupComplete: false,
        secondFactor: false,
        lastSignInAt: null,
        createdAt: created,
      },
      {
        username: 'vera',
        role: 'viewer',
        disabled: false,
        setupComplete: true,
        secondFactor: false,
        lastSignInAt: now,
        createdAt: created,
      },
    ]);
    expect(facts.require2faForAll).toBe(true);
    expect(facts.lockout).toEqual({ threshold: 7, lockoutMs: 600_000 });
    expect(facts.sessions).toEqual({ idleMs: 1_800_000, absoluteMs: 43_200_000 });
    expect(facts.apiTokens).toEqual([
      { id: token.id, username: 'vera', createdAt: created, expiresAt: created + 30 * DAY, lastUsedAt: null },
    ]);
  });
});
