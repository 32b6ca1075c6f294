import { Command } from 'commander';
import { BulwarkError } from '@bulwark/protocol';
import {
  createPhysicalSites,
  type PhysicalSites,
  type SiteAccessView,
  type SiteView,
} from '../attestation/index.ts';
import type { Platform } from '../platform.ts';
import { common, iso, printJson, printTable, withPlatform, type CommonOptions } from './context.ts';

/** What the commands use of a platform: its sites service, or the store and events to build one. */
interface SitePlatform {
  store: Platform['store'];
  events: Platform['events'];
  now: () => number;
  physical?: PhysicalSites;
}

const sitesOf = (p: SitePlatform): PhysicalSites =>
  p.physical ?? createPhysicalSites({ db: p.store.db, events: p.events, now: p.now });

const openSites = <T>(options: CommonOptions, work: (sites: PhysicalSites) => Promise<T>) =>
  withPlatform(options, (p) => work(sitesOf(p)));

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** `--review-at`/`--expires-at`: digits are epoch ms; anything else goes to the service (90d, 2027-03-31). */
const whenOption = (value: string): number | string => (/^\d+$/.test(value) ? Number(value) : value);

const day = (ms: number | null) => (ms === null ? '' : iso(ms).slice(0, 10));

function printSites(sites: readonly SiteView[], now: number): void {
  printTable(
    sites.map((s) => ({
      name: s.name,
      owner: s.owner,
      groups: s.groups.join(','),
      access: String(s.access.length),
      'review due': String(
        s.access.filter((a) => a.reviewAt <= now && (a.expiresAt ?? now + 1) > now).length,
      ),
    })),
    ['name', 'owner', 'groups', 'access', 'review due'],
  );
}

function printAccess(access: readonly SiteAccessView[]): void {
  printTable(
    access.map((a) => ({
      id: a.id,
      person: a.person,
      role: a.role ?? '',
      review: day(a.reviewAt),
      expires: day(a.expiresAt),
      'granted by': a.grantedBy,
    })),
    ['id', 'person', 'role', 'review', 'expires', 'granted by'],
  );
}

function listCommand(): Command {
  return common(
    new Command('list').description('sites with their owner, device groups and access count'),
  ).action(async (options: CommonOptions) => {
    const { sites, now } = await withPlatform(options, async (p) => ({
      sites: await sitesOf(p).list(),
      now: p.now(),
    }));
    if (options.json) return printJson({ sites });
    printSites(sites, now);
  });
}

function showCommand(): Command {
  return common(
    new Command('show').argument('<name>', 'the site').description('a site and who may access it'),
  ).action(async (name: string, options: CommonOptions) => {
    const site = await openSites(options, (s) => s.get(name));
    if (options.json) return printJson(site);
    process.stdout.write(`site ${site.name}, owner ${site.owner}\n`);
    if (site.description) process.stdout.write(`  ${site.description}\n`);
    process.stdout.write(`  device groups: ${site.groups.length ? site.groups.join(', ') : '(none)'}\n`);
    printAccess(site.access);
  });
}

interface SetOptions extends CommonOptions {
  owner: string;
  description?: string;
  group?: string[];
}

function setCommand(): Command {
  return common(
    new Command('set')
      .argument('<name>', 'the site (1-64 of A-Z a-z 0-9 _ . -)')
      .description('create or change a site: its owner, description and the device groups located there')
      .requiredOption('--owner <owner>', 'who answers for physical access to the site')
      .option('--description <text>', 'what and where the site is')
      .option(
        '--group <group>',
        'a device group located at the site (repeatable; the list replaces the last)',
        collect,
      ),
  ).action(async (name: string, options: SetOptions) => {
    const input = { owner: options.owner, description: options.description, groups: options.group ?? [] };
    const site = await openSites(options, (s) => s.put(name, input, 'cli'));
    if (options.json) return printJson(site);
    const groups = site.groups.length ? site.groups.join(', ') : 'no device groups';
    process.stdout.write(`site ${site.name}: owner ${site.owner}, ${groups}\n`);
  });
}

interface GrantOptions extends CommonOptions {
  reviewAt: number | string;
  expiresAt?: number | string;
  role?: string;
  subject?: string;
}

function grantCommand(): Command {
  return common(
    new Command('grant')
      .argument('<site>', 'the site')
      .argument('<person>', 'who may access it (a name or badge holder, as the owner records it)')
      .description('record that a person may access a site, with the date the owner reviews it again')
      .requiredOption(
        '--review-at <when>',
        'review by: a duration from now (90d), a date (YYYY-MM-DD, end of day UTC) or epoch ms',
        whenOption,
      )
      .option('--role <role>', 'what for: maintenance, cleaning, …')
      .option(
        '--subject <id>',
        "the person's privacy data-subject id (their GDPR requests reach this record)",
      )
      .option('--expires-at <when>', 'the access ends then (same forms as --review-at)', whenOption),
  ).action(async (site: string, person: string, options: GrantOptions) => {
    const { role, subject, reviewAt, expiresAt } = options;
    const input = { person, subject, role, reviewAt, expiresAt };
    const access = await openSites(options, (s) => s.grant(site, input, 'cli'));
    if (options.json) return printJson(access);
    const expires = access.expiresAt === null ? '' : `, expires ${day(access.expiresAt)}`;
    process.stdout.write(
      `access ${access.id}: ${access.person} may access ${access.site} (review by ${day(access.reviewAt)}${expires})\n`,
    );
  });
}

interface RevokeOptions extends CommonOptions {
  reason: string;
}

function revokeCommand(): Command {
  return common(
    new Command('revoke')
      .argument('<site>', 'the site')
      .argument('<access-id>', 'the access record (bulwark site show SITE)')
      .description("remove a person's access to a site")
      .requiredOption('--reason <reason>', 'why (recorded in the audit log)'),
  ).action(async (site: string, id: string, options: RevokeOptions) => {
    const result = await openSites(options, (s) => s.revoke(site, { id, reason: options.reason }, 'cli'));
    if (!result.removed) throw new BulwarkError('not_found', `site ${site} has no access record ${id}`);
    if (options.json) return printJson(result);
    process.stdout.write(`access ${id} to ${site} revoked\n`);
  });
}

/** `bulwark site list|show|set|grant|revoke`: physical sites and who may access them (issue 17). */
export function siteCommands(): Command {
  return new Command('site')
    .description('physical sites: owner, device groups located there, who may access them and review dates')
    .addCommand(listCommand())
    .addCommand(showCommand())
    .addCommand(setCommand())
    .addCommand(grantCommand())
    .addCommand(revokeCommand());
}
