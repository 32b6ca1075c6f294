import { writeFileSync } from 'node:fs';
import { Command } from 'commander';
import { attestationStandings, BulwarkError, type AttestationStanding } from '@bulwark/protocol';
import { covers, formatTargets, intersects, matches } from '../policy/index.ts';
import { common, printJson, printTable, readDocument, withPlatform, type CommonOptions } from './context.ts';

const ACTOR = 'cli';

interface Simulated {
  allow: boolean;
  reason: string;
  statement?: string | undefined;
  policy?: string | undefined;
  action: string;
  topic: string | null;
  zone: string | null;
  /** Set when an app's decision was simulated (`policy test --app`). */
  app?: string | undefined;
  explain: {
    statements: {
      policy: string;
      sid: string;
      effect: 'allow' | 'deny';
      actions: string[];
      resources: string[];
      targets?: { groups?: string[]; zones?: string[]; devices?: string[] } | undefined;
    }[];
    dropped: { policy: string; statement: string; reason: string }[];
  };
}

/** Why a decision came out as it did, in lines an operator can act on (the policy module's explain, formatted). */
export function explainDecision(d: Simulated): string[] {
  if (d.statement) return [`decided by statement ${d.statement} of policy ${d.policy ?? ''}`];
  if (d.allow) return [];
  const action = `mqtt:${d.action}`;
  const lines: string[] = [];
  if (d.reason === 'no_matching_statement' || d.reason === 'subscription_broader_than_rights')
    lines.push(
      d.reason === 'no_matching_statement'
        ? `no statement allows ${d.action}${d.topic ? ` on ${d.topic}` : ''} (no match is a deny)`
        : `allowing statements overlap ${d.topic ?? ''} but none covers it all`,
    );
  else if (d.reason === 'cross_zone_no_conduit')
    lines.push(`the topic belongs to another zone than ${d.zone ?? 'the device'} and no conduit carries it`);
  // A statement for this action whose resource fits the topic, that did not decide: its targets leave out the
  // topic's device, or its time window is closed.
  const fits = (r: string) =>
    d.topic === null ||
    (d.action === 'subscribe' ? covers(r, d.topic) || intersects(r, d.topic) : matches(r, d.topic));
  for (const s of d.explain.statements)
    if (s.actions.includes(action) && s.resources.some(fits))
      lines.push(
        s.targets
          ? `statement ${s.sid} of policy ${s.policy} fits but is limited to devices of ${formatTargets(s.targets)}`
          : `statement ${s.sid} of policy ${s.policy} fits but did not apply now (outside its time window)`,
      );
  const who = d.app === undefined ? 'device' : 'app';
  for (const x of d.explain.dropped)
    lines.push(`statement ${x.statement} of policy ${x.policy} does not apply to this ${who}: ${x.reason}`);
  return lines;
}

interface PolicyTestOptions extends CommonOptions {
  device?: string;
  app?: string;
  instance?: string;
  action: string;
  topic?: string;
  from?: string;
  cert?: Record<string, string>;
  attestation?: string;
}

const simulatedActions = ['connect', 'publish', 'subscribe', 'receive'] as const;
const isSimulatedAction = (a: string): a is (typeof simulatedActions)[number] =>
  (simulatedActions as readonly string[]).includes(a);

const isStanding = (s: string): s is AttestationStanding =>
  (attestationStandings as readonly string[]).includes(s);

/** `--attestation STANDING`: a standing to try for a device (default: its current one). */
function attestationOption(value: string | undefined): AttestationStanding | undefined {
  if (value === undefined || isStanding(value)) return value;
  throw new BulwarkError(
    'validation_failed',
    `--attestation must be one of ${attestationStandings.join(', ')}`,
  );
}

/** The decision `policy test` asks for: a device's, or an app's as the apps module knows the app. */
async function simulateFor(options: PolicyTestOptions): Promise<Simulated & { note?: string }> {
  const { action } = options;
  if (!isSimulatedAction(action))
    throw new BulwarkError('validation_failed', '--action must be connect, publish, subscribe or receive');
  if ((options.device === undefined) === (options.app === undefined))
    throw new BulwarkError('validation_failed', 'name either --device ID or --app NAME');
  const asked = { action, topic: options.topic, sourceAddress: options.from, certSubject: options.cert };
  const { app: name, instance = null } = options;
  const standing = attestationOption(options.attestation);
  if (name === undefined)
    return withPlatform(options, async (p) => {
      // The device's standing as the server holds it (unless --attestation names one to try).
      await p.attestation.load();
      return p.access.simulate({ ...asked, deviceId: options.device ?? '', attestation: standing });
    });
  return withPlatform(options, async (p) => {
    const app = await p.apps.get(name);
    const d = await p.access.simulate({
      ...asked,
      app: { name, instance, zone: app.zone, purpose: app.purpose },
    });
    // A revoked app cannot connect at all: the apps check refuses it before any policy is asked.
    return app.status === 'revoked' ? { ...d, note: `app ${name} is revoked: it cannot connect` } : d;
  });
}

/** `bulwark policy test`: would a device (or an app) be allowed? prints the deciding statement. */
function policyTestCommand(policy: Command): void {
  common(
    policy.command('test').description('would a device or an app be allowed? prints the deciding statement'),
  )
    .option('--device <id>', 'device id')
    .option('--app <name>', 'app name (its zone and purpose are read from the app)')
    .option('--instance <instance>', 'app instance (the client id NAME/INSTANCE), for ${app.instance}')
    .requiredOption('--action <action>', 'connect, publish, subscribe or receive')
    .option('--topic <topic>', 'topic (publish, receive) or filter (subscribe)')
    .option('--from <address>', 'source address, for conditions on it')
    .option(
      '--attestation <standing>',
      `a device's attestation standing to try (${attestationStandings.join(', ')})`,
    )
    .option(
      '--cert <field=value>',
      'a client-certificate subject field, for conditions on it (repeatable), e.g. O=Acme',
      (value: string, previous: Record<string, string> = {}) => {
        const eq = value.indexOf('=');
        if (eq <= 0) throw new BulwarkError('validation_failed', `--cert "${value}" must be FIELD=VALUE`);
        return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
      },
    )
    .action(async (options: PolicyTestOptions) => {
      const d = await simulateFor(options);
      if (options.json) {
        printJson({ ...d, why: explainDecision(d) });
      } else {
        const by = d.statement ? ` by statement ${d.statement} of policy ${d.policy ?? ''}` : '';
        process.stdout.write(
          `${d.allow ? 'ALLOW' : 'DENY'} ${options.action} ${options.topic ?? ''}: ${d.reason}${by} (zone: ${d.zone ?? 'none'})\n`,
        );
        if (!d.allow && !d.statement)
          for (const line of explainDecision(d)) process.stdout.write(`  ${line}\n`);
        if (d.note) process.stdout.write(`  ${d.note}\n`);
      }
      if (!d.allow) process.exitCode = 3;
    });
}

export function policyCommands(): Command {
  const policy = new Command('policy').description(
    'device access policies: topic ACLs with variables, attachments, simulation',
  );

  common(policy.command('list').description('policies and where they are attached')).action(
    async (options: CommonOptions) => {
      const list = await withPlatform(options, (p) => p.access.listPolicies());
      if (options.json) return printJson(list);
      printTable(
        list.map((x) => ({
          name: x.name,
          version: String(x.version),
          statements: String(x.document.statements.length),
          attached: x.attachments.map((a) => `${a.kind}:${a.target}`).join(' '),
        })),
        ['name', 'version', 'statements', 'attached'],
      );
    },
  );

  common(policy.command('show <name>').description('a policy document'), false).action(
    async (name: string, options: CommonOptions) => {
      printJson(await withPlatform(options, (p) => p.access.getPolicy(name)));
    },
  );

  common(
    policy
      .command('put <name>')
      .description('create or replace a policy from a YAML or JSON file (a new version)'),
  )
    .requiredOption('--file <file>', 'the policy document')
    .action(async (name: string, options: CommonOptions & { file: string }) => {
      const saved = await withPlatform(options, (p) =>
        p.access.putPolicy(name, readDocument(options.file), ACTOR),
      );
      if (options.json) return printJson(saved);
      process.stdout.write(`policy ${saved.name} saved as version ${saved.version}\n`);
      for (const w of saved.warnings) process.stderr.write(`warning: ${w.message}\n`);
    });

  common(policy.command('delete <name>').description('delete a policy and its attachments'), false).action(
    async (name: string, options: CommonOptions) => {
      await withPlatform(options, (p) => p.access.deletePolicy(name, ACTOR));
      process.stdout.write(`policy ${name} deleted\n`);
    },
  );

  for (const [verb, attach] of [
    ['attach', true],
    ['detach', false],
  ] as const) {
    common(
      policy
        .command(`${verb} <name>`)
        .description(`${verb} a policy to all devices, a group, a zone, a device or an app`),
      false,
    )
      .requiredOption('--to <kind:target>', 'all, group:NAME, zone:NAME, device:ID or app:NAME')
      .action(async (name: string, options: CommonOptions & { to: string }) => {
        const [kind = '', ...rest] = options.to.split(':');
        await withPlatform(options, (p) =>
          p.access.setAttachment(name, { kind, target: rest.join(':'), attached: attach }, ACTOR),
        );
        process.stdout.write(`policy ${name} ${attach ? 'attached to' : 'detached from'} ${options.to}\n`);
      });
  }

  policyTestCommand(policy);
  return policy;
}

export function segmentationCommands(): Command[] {
  const zone = new Command('zone').description(
    'zones (IEC 62443-3-2): device groups with a target security level and a topic namespace',
  );
  common(zone.command('list').description('zones')).action(async (options: CommonOptions) => {
    const zones = await withPlatform(options, (p) => p.access.listZones());
    if (options.json) return printJson(zones);
    printTable(
      zones.map((z) => ({
        name: z.name,
        sl: `SL${z.securityLevel}`,
        groups: (z.members.groups ?? []).join(','),
        addresses: z.addresses.join(','),
      })),
      ['name', 'sl', 'groups', 'addresses'],
    );
  });
  common(zone.command('put').description('create or replace a zone from a YAML/JSON file'), false)
    .requiredOption('--file <file>', 'the zone definition')
    .action(async (options: CommonOptions & { file: string }) => {
      const z = await withPlatform(options, (p) => p.access.putZone(readDocument(options.file), ACTOR));
      process.stdout.write(`zone ${z.name} saved\n`);
    });
  common(zone.command('delete <name>').description('delete a zone'), false).action(
    async (name: string, options: CommonOptions) => {
      await withPlatform(options, (p) => p.access.deleteSegment('zone', name, ACTOR));
      process.stdout.write(`zone ${name} deleted\n`);
    },
  );

  const conduit = new Command('conduit').description('conduits: the only flows allowed between zones');
  common(conduit.command('list').description('conduits')).action(async (options: CommonOptions) => {
    const list = await withPlatform(options, (p) => p.access.listConduits());
    if (options.json) return printJson(list);
    printTable(
      list.map((c) => ({
        name: c.name,
        from: c.from,
        to: c.to,
        direction: c.direction,
        topics: c.topics.join(' '),
      })),
      ['name', 'from', 'to', 'direction', 'topics'],
    );
  });
  common(conduit.command('put').description('create or replace a conduit from a YAML/JSON file'), false)
    .requiredOption('--file <file>', 'the conduit definition')
    .action(async (options: CommonOptions & { file: string }) => {
      const c = await withPlatform(options, (p) => p.access.putConduit(readDocument(options.file), ACTOR));
      process.stdout.write(`conduit ${c.name} saved (${c.from} → ${c.to})\n`);
    });
  common(conduit.command('delete <name>').description('delete a conduit'), false).action(
    async (name: string, options: CommonOptions) => {
      await withPlatform(options, (p) => p.access.deleteSegment('conduit', name, ACTOR));
      process.stdout.write(`conduit ${name} deleted\n`);
    },
  );

  const segmentation = new Command('segmentation').description('network segmentation exports');
  common(segmentation.command('export').description('write the zones and conduits as firewall rules'), false)
    .option('--format <format>', 'nftables', 'nftables')
    .option('--broker <addresses>', 'comma-separated addresses of the Bulwark hosts every zone may reach')
    .option('--out <file>', 'write to a file instead of standard output')
    .action(async (options: CommonOptions & { format: string; broker?: string; out?: string }) => {
      if (options.format !== 'nftables')
        throw new BulwarkError('validation_failed', '--format must be nftables');
      const brokerAddresses = options.broker
        ?.split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      const text = await withPlatform(options, (p) => p.access.exportNftables({ brokerAddresses }));
      if (options.out) writeFileSync(options.out, text);
      else process.stdout.write(text);
    });
  return [zone, conduit, segmentation];
}
