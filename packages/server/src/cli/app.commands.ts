import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { BulwarkError } from '@bulwark/protocol';
import type { AppDetail, AppView } from '../apps/index.ts';
import { parseDuration } from '../config/index.ts';
import { x509 } from '../pki/index.ts';
import { common, iso, printJson, printTable, withPlatform, type CommonOptions } from './context.ts';

const ACTOR = 'cli';

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** `none` clears a field (`--zone none`). */
const orNone = (value: string | undefined) => (value === 'none' ? null : value);

function durationOf(option: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = parseDuration(value);
  if (ms === undefined || ms <= 0)
    throw new BulwarkError('validation_failed', `${option} "${value}" is not a duration such as 90d or 12h`);
  return ms;
}

function printApp(app: AppView): void {
  process.stdout.write(
    `app ${app.name} (${app.status}): purpose ${app.purpose ?? 'none'}, zone ${app.zone ?? 'none'}\n`,
  );
  if (app.description) process.stdout.write(`  ${app.description}\n`);
  process.stdout.write(app.grants.length ? '' : '  no grants\n');
  app.grants.forEach((g, i) => process.stdout.write(`  grant ${i + 1}: ${g}\n`));
}

const tokenState = (t: AppDetail['tokens'][number], now: number) =>
  t.revokedAt !== null ? 'revoked' : t.expiresAt !== null && t.expiresAt <= now ? 'expired' : 'active';

function printTokens(tokens: AppDetail['tokens']): void {
  const now = Date.now();
  printTable(
    tokens.map((t) => ({
      id: t.id,
      state: tokenState(t, now),
      created: iso(t.createdAt),
      expires: t.expiresAt === null ? 'never' : iso(t.expiresAt),
      'last used': t.lastUsedAt === null ? '-' : `${iso(t.lastUsedAt)} from ${t.lastUsedFrom ?? '?'}`,
    })),
    ['id', 'state', 'created', 'expires', 'last used'],
  );
}

function printDetail(app: AppDetail): void {
  printApp(app);
  process.stdout.write('\ntokens:\n');
  printTokens(app.tokens);
  process.stdout.write('\ncertificates:\n');
  printTable(
    app.certificates.map((c) => ({
      serial: c.serial,
      'not after': iso(c.notAfter),
      state: c.revokedAt === null ? 'valid' : `revoked ${iso(c.revokedAt)}`,
    })),
    ['serial', 'not after', 'state'],
  );
  const d = app.delivery;
  process.stdout.write(
    `\ndelivery: ${d.messages} messages, ${d.bytes} bytes, ${d.dropped} dropped, ${d.queuedBytes} bytes queued, ${d.connections} connections${d.updatedAt === null ? '' : ` (as of ${iso(d.updatedAt)})`}\n`,
  );
}

interface AddOptions extends CommonOptions {
  purpose?: string;
  zone?: string;
  description?: string;
  grant?: string[];
}

function lifecycleCommands(app: Command): void {
  common(app.command('add <name>').description('add an application (a principal of its own)'))
    .option('--purpose <key>', 'its purpose: a fideslang data use, e.g. analytics.reporting')
    .option('--zone <zone>', 'the zone it lives in')
    .option('--description <text>', 'what it is')
    .option(
      '--grant <grant>',
      "a grant, e.g. 'subscribe devices/+/telemetry group:pumps' (repeatable)",
      collect,
    )
    .action(async (name: string, o: AddOptions) => {
      const added = await withPlatform(o, (p) =>
        p.apps.add(
          { name, purpose: o.purpose, zone: o.zone, description: o.description, grants: o.grant },
          ACTOR,
        ),
      );
      if (o.json) return printJson(added);
      printApp(added);
    });

  common(app.command('list').description('applications')).action(async (o: CommonOptions) => {
    const apps = await withPlatform(o, (p) => p.apps.list());
    if (o.json) return printJson(apps);
    printTable(
      apps.map((a) => ({
        name: a.name,
        status: a.status,
        purpose: a.purpose ?? '-',
        zone: a.zone ?? '-',
        grants: String(a.grants.length),
      })),
      ['name', 'status', 'purpose', 'zone', 'grants'],
    );
  });

  common(
    app.command('show <name>').description('an application: grants, tokens, certificates, delivery'),
  ).action(async (name: string, o: CommonOptions) => {
    const detail = await withPlatform(o, (p) => p.apps.describe(name));
    if (o.json) return printJson(detail);
    printDetail(detail);
  });

  common(app.command('update <name>').description("change an application's purpose, zone or description"))
    .option('--purpose <key>', 'a fideslang data use, or none')
    .option('--zone <zone>', 'a zone, or none')
    .option('--description <text>', 'what it is, or none')
    .action(async (name: string, o: AddOptions) => {
      const change = { purpose: orNone(o.purpose), zone: orNone(o.zone), description: orNone(o.description) };
      const updated = await withPlatform(o, (p) => p.apps.update(name, change, ACTOR));
      if (o.json) return printJson(updated);
      printApp(updated);
    });

  common(app.command('revoke <name>').description('revoke an application, its tokens and certificates'))
    .option('--reason <text>', 'why (recorded in the audit log)')
    .action(async (name: string, o: CommonOptions & { reason?: string }) => {
      const revoked = await withPlatform(o, (p) => p.apps.revoke(name, ACTOR, o.reason));
      if (o.json) return printJson(revoked);
      process.stdout.write(`app ${name} revoked; its live sessions end within a second\n`);
    });
}

function grantCommands(app: Command): void {
  common(
    app
      .command('grant <name> <grant...>')
      .description("add grants, e.g. 'subscribe devices/+/telemetry group:pumps'"),
  ).action(async (name: string, grants: string[], o: CommonOptions) => {
    const text = grants.join(' ');
    const list = await withPlatform(o, (p) => p.apps.grant(name, text, ACTOR));
    if (o.json) return printJson(list);
    list.forEach((g, i) => process.stdout.write(`grant ${i + 1}: ${g}\n`));
  });

  common(
    app.command('ungrant <name> <grant...>').description('remove a grant, given as text or by its number'),
  ).action(async (name: string, grant: string[], o: CommonOptions) => {
    const list = await withPlatform(o, (p) => p.apps.ungrant(name, grant.join(' '), ACTOR));
    if (o.json) return printJson(list);
    process.stdout.write(list.length ? list.map((g, i) => `grant ${i + 1}: ${g}\n`).join('') : 'no grants\n');
  });
}

function tokenCommands(app: Command): void {
  common(app.command('token <name>').description('create an MQTT token (user name = app name); printed once'))
    .option('--ttl <duration>', 'lifetime, e.g. 90d (default: no expiry)')
    .action(async (name: string, o: CommonOptions & { ttl?: string }) => {
      const ttlMs = durationOf('--ttl', o.ttl);
      const created = await withPlatform(o, (p) => p.apps.createToken(name, { ttlMs }, ACTOR));
      if (o.json) return printJson({ token: created.token, id: created.id, expiresAt: created.expiresAt });
      process.stdout.write(`${created.token}\n`);
      process.stderr.write(
        `token ${created.id} for app ${name}, ${created.expiresAt === null ? 'no expiry' : `valid until ${iso(created.expiresAt)}`}; it is shown only now (MQTT user name ${name}, over TLS only)\n`,
      );
    });

  common(app.command('tokens <name>').description("an application's tokens (never the secrets)")).action(
    async (name: string, o: CommonOptions) => {
      const tokens = await withPlatform(o, (p) => p.apps.listTokens(name));
      if (o.json) return printJson(tokens);
      printTokens(tokens);
    },
  );

  common(
    app.command('token-revoke <name> <id>').description('revoke a token; its sessions end'),
    false,
  ).action(async (name: string, id: string, o: CommonOptions) => {
    await withPlatform(o, (p) => p.apps.revokeToken(name, id, ACTOR));
    process.stdout.write(`token ${id} of app ${name} revoked\n`);
  });
}

/** A new P-256 key and a CSR for it, made here: the key never leaves this machine. */
async function keyAndCsr(name: string): Promise<{ keyPem: string; csrPem: string }> {
  const keys = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ]);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${name}`,
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
  });
  const pkcs8 = Buffer.from(await crypto.subtle.exportKey('pkcs8', keys.privateKey));
  const b64 = pkcs8.toString('base64').replace(/.{1,64}/g, '$&\n');
  return {
    keyPem: `-----BEGIN PRIVATE KEY-----\n${b64}-----END PRIVATE KEY-----\n`,
    csrPem: csr.toString('pem'),
  };
}

function certCommand(app: Command): void {
  common(
    app.command('cert <name>').description('a client certificate for the app: key made here, CSR signed'),
  )
    .requiredOption('--out <dir>', 'where to write NAME.key (0600), NAME.crt and ca.pem')
    .action(async (name: string, o: CommonOptions & { out: string }) => {
      const { keyPem, csrPem } = await keyAndCsr(name);
      const issued = await withPlatform(o, (p) => p.apps.issueCertificate(name, csrPem, ACTOR));
      mkdirSync(o.out, { recursive: true });
      const files = {
        key: path.join(o.out, `${name}.key`),
        cert: path.join(o.out, `${name}.crt`),
        chain: path.join(o.out, 'ca.pem'),
      };
      writeFileSync(files.key, keyPem, { mode: 0o600 });
      chmodSync(files.key, 0o600); // an existing file keeps its mode otherwise
      writeFileSync(files.cert, issued.certificatePem);
      writeFileSync(files.chain, issued.chainPem);
      if (o.json) return printJson({ ...issued, files });
      process.stdout.write(
        `certificate ${issued.serial} for app ${name}, valid until ${iso(issued.notAfter)}\n  key:  ${files.key}\n  cert: ${files.cert}\n  CA:   ${files.chain}\n`,
      );
    });
}

/** `bulwark app …`: applications, their grants and credentials (docs/apps.md). */
export function appCommands(): Command {
  const app = new Command('app').description(
    'applications: principals with a purpose, grants and credentials',
  );
  lifecycleCommands(app);
  grantCommands(app);
  tokenCommands(app);
  certCommand(app);
  return app;
}
