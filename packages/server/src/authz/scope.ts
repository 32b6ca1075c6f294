import { subjectOf } from '../events/index.ts';
import type { Role } from './roles.ts';

/**
 * What authorization needs to know about whoever asks (a signed-in user, an API token, the local operator):
 * the role that caps what it may do, and the device groups it is limited to (null = the whole fleet).
 */
export interface Scope {
  role: Role;
  groups: readonly string[] | null;
}

/** Who is asking, as the audit log names it. */
export interface ActingPrincipal {
  username: string;
  via: 'session' | 'token';
  tokenId?: string;
}

/** The actor string of a principal's events: `user:<name>`, or `user:<name>/token:<id>` for an API token. */
export function principalActor(p: Pick<ActingPrincipal, 'username' | 'via' | 'tokenId'>): string {
  const user = subjectOf.user(p.username);
  return p.via === 'token' ? `${user}/token:${p.tokenId ?? ''}` : user;
}

/**
 * The local operator: the `bulwark` CLI runs on the server with its data directory, so host access stands for
 * the operator, with the whole fleet in scope. One value, used by every command.
 */
export const localOperator: Readonly<Scope & { actor: 'cli' }> = Object.freeze({
  role: 'admin',
  groups: null,
  actor: 'cli',
});
