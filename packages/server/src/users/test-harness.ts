import type { ThrottleOptions } from './throttle.ts';
import { createThrottle } from './throttle.ts';
import type { SessionPrincipal } from './sessions.ts';
import type { UserServiceDeps } from './user.context.ts';
import { createUserService, type UserService } from './user.service.ts';

/** The password the users module's tests set for every account they make. */
export const TEST_PASSWORD = 'a sufficiently long passphrase';

/**
 * The users service as the module's tests build it: a real throttle over the same store, and the settings of a
 * default installation unless a test says otherwise.
 */
export function createTestUserService(
  deps: Omit<UserServiceDeps, 'throttle' | 'settings'> & {
    throttle?: Partial<Omit<ThrottleOptions, 'db' | 'now'>>;
    settings?: Partial<UserServiceDeps['settings']>;
  },
): UserService {
  const { throttle, settings, ...rest } = deps;
  return createUserService({
    ...rest,
    throttle: createThrottle({
      db: deps.db,
      now: deps.now,
      threshold: 5,
      lockoutMs: 600_000,
      backoffAfter: 3,
      backoffBaseMs: 1000,
      ...throttle,
    }),
    settings: {
      require2faForAll: false,
      sessionIdleMs: 1_800_000,
      sessionAbsoluteMs: 43_200_000,
      setupSecretTtlMs: 86_400_000,
      stepUpWindowMs: 300_000,
      ...settings,
    },
  });
}

/** The live session a sign-in step's ticket names. */
export async function sessionOf(
  users: Pick<UserService, 'resolveSession'>,
  id: string,
): Promise<SessionPrincipal> {
  const principal = await users.resolveSession(id);
  if (!principal) throw new Error('no session');
  return principal;
}

/** Makes an account and completes its setup with TEST_PASSWORD: the session that setup opens. */
export async function activeUser(
  users: Pick<UserService, 'create' | 'completeSetup' | 'resolveSession'>,
  who: { username: string; role: string; groups?: string[] | null },
  address = '10.0.0.1',
): Promise<SessionPrincipal> {
  const { username } = who;
  const { setupSecret } = await users.create(who, 'test');
  const ticket = await users.completeSetup({ username, setupSecret, password: TEST_PASSWORD, address });
  return sessionOf(users, ticket.id);
}
