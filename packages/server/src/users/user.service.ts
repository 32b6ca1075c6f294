import { accountUseCases } from './accounts.ts';
import { apiTokenUseCases } from './api-tokens.ts';
import { enrolmentUseCases } from './factor-enrolment.ts';
import { secondFactorUseCases } from './second-factor.ts';
import { sessionUseCases } from './sessions.ts';
import { attemptGuard, signInUseCases } from './sign-in.ts';
import { createUserContext, type UserServiceDeps } from './user.context.ts';
import { userComplianceFacts, userFacts } from './user.facts.ts';
import { userSubjectData } from './user.privacy.ts';

export type { UserServiceDeps } from './user.context.ts';
export type { SessionPrincipal, SessionTicket } from './sessions.ts';
export type { SecondFactorFailure, SecondFactorMethod } from './second-factor.ts';
export type { UserFacts, UserComplianceFacts, AccountComplianceFact } from './user.facts.ts';
export { sha256 } from './user.context.ts';

/** API tokens older than this are counted apart in the facts (rotation). */
const TOKEN_AGE_DAYS = 90;

/**
 * The users door: accounts, sign-in, second factor and enrolment, sessions and API tokens, each a set of use
 * cases over the same deps; also the module's facts (compliance) and its data by subject (privacy).
 */
export function createUserService(deps: UserServiceDeps) {
  const ctx = createUserContext(deps);
  const guard = attemptGuard(ctx);
  const sessions = sessionUseCases(ctx);
  const secondFactor = secondFactorUseCases(ctx, { sessions, guard });
  return {
    requires2fa: ctx.requires2fa,
    hasFactor: (userId: string) => ctx.hasFactor(userId),
    ...accountUseCases(ctx),
    ...signInUseCases(ctx, { sessions, guard }),
    ...secondFactor,
    ...enrolmentUseCases(ctx, { sessions, requireFreshSession: secondFactor.requireFreshSession }),
    resolveSession: sessions.resolveSession,
    /** How long a session lives without a call (auth.sessionIdle): clients warn before it ends. */
    sessionIdleMs: deps.settings.sessionIdleMs,
    signOut: sessions.signOut,
    ...apiTokenUseCases(ctx),
    ...userSubjectData(ctx),
    ...userFacts(ctx, { tokenAgeDays: TOKEN_AGE_DAYS }),
    /** For the compliance checks: every account, the lockout and session settings, active API tokens. */
    complianceFacts: () => userComplianceFacts(ctx),
  };
}

export type UserService = ReturnType<typeof createUserService>;
