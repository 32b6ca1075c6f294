import { Command } from 'commander';
import { BulwarkError } from '@bulwark/protocol';
import { parseDuration } from '../config/index.ts';
import type { Platform } from '../platform.ts';
import type { Principal } from '../users/index.ts';
import { common, iso, printJson, printTable, withPlatform, type CommonOptions } from './context.ts';

/**
 * The account a token belongs to, as a principal. The CLI acts as the local operator (authz's `localOperator`:
 * host access with the data directory stands for the operator, as for `admin create`), so it manages any
 * account's tokens; the HTTP API instead asks for the owner's signed-in session that passed step-up. A disabled
 * account or one that never finished its setup gets no token.
 */
async function principalOf(p: Platform, username: string): Promise<Principal> {
  const user = await p.users.get(username);
  if (user.disabled) throw new BulwarkError('forbidden', `user ${username} is disabled`);
  if (user.setupPending)
    throw new BulwarkError('forbidden', `user ${username} has not finished setup (no password yet)`);
  return { userId: user.id, username: user.username, role: user.role, groups: user.groups, via: 'session' };
}

/** `bulwark token …`: API tokens (`Authorization: Bearer bwt_…`) for scripts and integrations. */
export function tokenCommands(): Command {
  const token = new Command('token').description('API tokens: create (shown once), list, revoke');

  common(token.command('create').description('create an API token for a user; the token is printed once'))
    .requiredOption('--user <name>', 'the account the token acts for')
    .requiredOption('--name <name>', 'what the token is for (1-64 characters)')
    .option('--role <role>', "the token's role, at most the user's (default: the user's role)")
    .option('--expires <duration>', 'lifetime, e.g. 30d (at most 365d)', '90d')
    .action(
      async (options: CommonOptions & { user: string; name: string; role?: string; expires: string }) => {
        const expiresInMs = parseDuration(options.expires);
        if (expiresInMs === undefined)
          throw new BulwarkError(
            'validation_failed',
            `--expires "${options.expires}" is not a duration such as 30d or 12h`,
          );
        const created = await withPlatform(options, async (p) =>
          p.users.createToken(await principalOf(p, options.user), {
            name: options.name,
            role: options.role,
            expiresInMs,
          }),
        );
        if (options.json)
          return printJson({ ...created, user: options.user, expiresAt: iso(created.expiresAt) });
        process.stdout.write(`${created.token}\n`);
        process.stderr.write(
          `token ${created.id} (${created.name}, role ${created.role}) for ${options.user}, valid until ${iso(created.expiresAt)}; it is shown only now\n`,
        );
      },
    );

  common(token.command('list').description("a user's API tokens (never the secrets)"))
    .requiredOption('--user <name>', 'the account')
    .action(async (options: CommonOptions & { user: string }) => {
      const list = await withPlatform(options, async (p) =>
        p.users.listTokens(await principalOf(p, options.user)),
      );
      if (options.json) return printJson(list);
      const now = Date.now();
      printTable(
        list.map((t) => ({
          id: t.id,
          name: t.name,
          role: t.role,
          state: t.revoked ? 'revoked' : t.expiresAt <= now ? 'expired' : 'active',
          expires: iso(t.expiresAt),
          'last used': t.lastUsedAt === null ? '-' : `${iso(t.lastUsedAt)} from ${t.lastUsedAddress ?? '?'}`,
        })),
        ['id', 'name', 'role', 'state', 'expires', 'last used'],
      );
    });

  common(token.command('revoke <id>').description('revoke a token at once'), false)
    .requiredOption('--user <name>', 'the account the token belongs to')
    .action(async (id: string, options: CommonOptions & { user: string }) => {
      await withPlatform(options, async (p) => p.users.revokeToken(await principalOf(p, options.user), id));
      process.stdout.write(`token ${id} revoked\n`);
    });
  return token;
}
