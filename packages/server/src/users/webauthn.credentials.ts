import { BulwarkError } from '@bulwark/protocol';
import { principalActor, type Role } from '../authz/index.ts';
import { subjectOf } from '../events/index.ts';
import type { Tx, WebauthnCredentialsTable } from '../store/index.ts';
import type { Principal } from './user.types.ts';
import { toInfo, type WebauthnContext, type WebauthnCredentialInfo } from './webauthn.context.ts';

/** A user's passkeys: listed, removed. */
export function credentialUseCases(ctx: WebauthnContext) {
  const { events, users, now } = ctx;

  /** In the transaction of a removal: the passkey, unless it is the last factor of someone who must have one. */
  async function removable(trx: Tx, userId: string, id: string): Promise<WebauthnCredentialsTable> {
    // Writing the user row first serialises concurrent removals (a row lock on PostgreSQL, the write lock
    // on SQLite), so two of them cannot each leave the other's credential as "the remaining factor".
    await trx.updateTable('users').set({ updated_at: now() }).where('id', '=', userId).execute();
    const user = await trx
      .selectFrom('users')
      .select(['role', 'totp_enabled'])
      .where('id', '=', userId)
      .executeTakeFirstOrThrow();
    const row = await trx
      .selectFrom('webauthn_credentials')
      .selectAll()
      .where('id', '=', id)
      .where('user_id', '=', userId)
      .executeTakeFirst();
    if (!row) throw new BulwarkError('not_found', 'you have no passkey with this id');
    const left = await trx
      .selectFrom('webauthn_credentials')
      .select(trx.fn.countAll<number>().as('n'))
      .where('user_id', '=', userId)
      .executeTakeFirst();
    // The user's own role decides, not a token's narrower one.
    const role = user.role as Role;
    if (Number(left?.n ?? 0) <= 1 && user.totp_enabled !== 1 && users.requires2fa(role))
      throw new BulwarkError(
        'conflict',
        `this passkey is your last second factor and your role (${role}) requires two-factor sign-in: enrol another passkey or TOTP first`,
      );
    return row;
  }

  return {
    async list(principal: Pick<Principal, 'userId'>): Promise<WebauthnCredentialInfo[]> {
      return (await ctx.credentialsOf(principal.userId)).map(toInfo);
    },

    /** Removes one of the user's passkeys (committed with its event), unless it is someone's last required factor. */
    async remove(principal: Principal, id: string): Promise<void> {
      await events.atomically(async (tx, emit) => {
        const row = await removable(tx, principal.userId, id);
        await tx.deleteFrom('webauthn_credentials').where('id', '=', row.id).execute();
        emit({
          type: 'auth.factor_removed',
          actor: principalActor(principal),
          subject: subjectOf.user(principal.username),
          data: { factor: 'webauthn', name: row.name },
        });
      });
    },
  };
}
