import { Command } from 'commander';
import { BulwarkError } from '@bulwark/protocol';
import { localOperator, roles } from '../authz/index.ts';
import { common, printJson, withPlatform, type CommonOptions } from './context.ts';

const explain = (username: string, secret: string, expiresAt: number) =>
  [
    `user ${username}: one-time setup secret (valid until ${new Date(expiresAt).toISOString()}):`,
    '',
    `  ${secret}`,
    '',
    'Exchange it for a password at first sign-in, then enrol a second factor:',
    `  POST /api/v1/auth/setup {"username":"${username}","setupSecret":"<secret>","password":"<12+ characters>"}`,
    '  POST /api/v1/auth/totp, then POST /api/v1/auth/totp/confirm {"code":"123456"}',
    'See docs/users.md.',
    '',
  ].join('\n');

export function adminCommands(): Command {
  const admin = new Command('admin').description('operator accounts: the first administrator, recovery');

  common(
    admin
      .command('create')
      .description('create an account (no password yet) and print its one-time setup secret'),
  )
    .requiredOption('--username <name>', 'user name (a-z 0-9 _ . -)')
    .option('--role <role>', `one of ${roles.join(', ')}`, 'admin')
    .action(async (options: CommonOptions & { username: string; role: string }) => {
      const created = await withPlatform(options, (p) =>
        p.users.create({ username: options.username, role: options.role }, localOperator.actor),
      );
      if (options.json)
        printJson({
          username: created.user.username,
          role: created.user.role,
          setupSecret: created.setupSecret,
          setupExpiresAt: created.setupExpiresAt,
        });
      else process.stdout.write(explain(created.user.username, created.setupSecret, created.setupExpiresAt));
    });

  common(
    admin.command('reset').description("reset an account's password and factors; prints a new setup secret"),
  )
    .requiredOption('--username <name>', 'user name')
    .action(async (options: CommonOptions & { username: string }) => {
      const reset = await withPlatform(options, (p) =>
        p.users.resetSetup(options.username, localOperator.actor),
      );
      if (options.json) printJson({ username: options.username, ...reset });
      else process.stdout.write(explain(options.username, reset.setupSecret, reset.setupExpiresAt));
    });

  common(admin.command('list').description('list accounts and their two-factor coverage')).action(
    async (options: CommonOptions) => {
      const users = await withPlatform(options, (p) => p.users.list());
      if (options.json) return printJson(users);
      if (users.length === 0)
        throw new BulwarkError('not_found', 'no accounts yet: bulwark admin create --username NAME');
      for (const u of users) {
        const factors =
          [u.twoFactor.totp ? 'totp' : '', u.twoFactor.webauthn ? `${u.twoFactor.webauthn} passkey(s)` : '']
            .filter(Boolean)
            .join(', ') || (u.setupPending ? 'setup pending' : 'NONE');
        process.stdout.write(
          `${u.username.padEnd(24)} ${u.role.padEnd(17)} 2FA: ${factors}${u.twoFactorRequired ? ' (required)' : ''}${u.disabled ? ' [disabled]' : ''}\n`,
        );
      }
    },
  );
  return admin;
}
