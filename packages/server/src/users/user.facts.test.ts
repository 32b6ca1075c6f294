import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { latestPerSubject, type EventBus } from '../events/index.ts';
import { createAuditedEvents } from '../test-support/audited-events.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { activeUser as setUpUser, createTestUserService, TEST_PASSWORD as password } from './test-harness.ts';
import { totpCode } from './totp.ts';
import type { UserService } from './user.service.ts';

const DAY = 86_400_000;

describe.each(testDialects)('users: compliance facts per account (%s)', (dialect) => {
  let t: TestStore;
  let bus: EventBus;
  let users: UserService;
  let now = 1_800_000_000_000;

  beforeEach(async () => {
    t = await createTestStore(dialect);
    now = 1_800_000_000_000;
    const events = await createAuditedEvents(t.store.db, { now: () => now });
    bus = events.bus;
    users = createTestUserService({
      db: t.store.db,
      box: events.box,
      events: bus,
      now: () => now,
      throttle: { threshold: 7 },
      settings: { require2faForAll: true },
      lastSignIns: () => latestPerSubject(events.audit, 'auth.sign_in_succeeded'),
    });
  });
  afterEach(async () => {
    await bus.close();
    await t.cleanup();
  });

  const activeUser = (username: string, role: 'viewer' | 'admin' | 'security-officer') =>
    setUpUser(users, { username, role });

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
