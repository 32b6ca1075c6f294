import { writeFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { BulwarkError, type PrivacyRequestKind } from '@bulwark/protocol';
import type { PrivacyService, SubjectDetail } from '../privacy/index.ts';
import {
  common,
  intOption,
  iso,
  printJson,
  printTable,
  withPlatform,
  type CommonOptions,
} from './context.ts';
import { parseTimeOption } from './telemetry.commands.ts';

const ACTOR = 'cli';

type PrivacyRequestView = Awaited<ReturnType<PrivacyService['getRequest']>>;
type RequestOutcome = Awaited<ReturnType<PrivacyService['runRequest']>>;

const collect = (value: string, previous: string[] = []) => [...previous, value];

function writeOut(file: string, text: string): void {
  try {
    writeFileSync(file, text.endsWith('\n') ? text : `${text}\n`);
  } catch (err) {
    throw new BulwarkError('validation_failed', `cannot write ${file}: ${(err as Error).message}`);
  }
}

// --- subjects ---------------------------------------------------------------------------------------------

function printSubject(s: SubjectDetail): void {
  const restricted = s.restrictedAt === null ? '' : `, restricted since ${iso(s.restrictedAt)}`;
  process.stdout.write(`subject ${s.id} (${s.kind})${restricted}\n`);
  process.stdout.write(`  devices: ${s.devices.join(', ') || 'none'}\n`);
  process.stdout.write(`  users: ${s.users.join(', ') || 'none'}\n`);
  process.stdout.write('\nconsents:\n');
  printTable(
    s.consents.map((c) => ({
      purpose: c.purpose,
      status: c.status,
      notice: c.noticeVersion,
      updated: iso(c.updatedAt),
    })),
    ['purpose', 'status', 'notice', 'updated'],
  );
  process.stdout.write('\nrequests:\n');
  printRequests(s.requests);
}

interface SubjectAddOptions extends CommonOptions {
  kind?: string;
  device?: string[];
  user?: string[];
}

interface LinkOptions extends CommonOptions {
  device?: string[];
  user?: string[];
  unlink?: boolean;
}

function subjectAddCommand(): Command {
  return common(
    new Command('add')
      .argument('<id>', 'the id the fleet data names the person with (e.g. u-17)')
      .description('add a data subject and link their devices and user accounts'),
  )
    .option('--kind <kind>', 'fideslang data subject, e.g. customer, employee (default customer)')
    .option('--device <id>', 'a device of theirs (repeatable)', collect)
    .option('--user <name>', 'a user account of theirs (repeatable)', collect)
    .action(async (id: string, o: SubjectAddOptions) => {
      const added = await withPlatform(o, async (p) => {
        await p.privacy.addSubject({ id, kind: o.kind, devices: o.device, users: o.user }, ACTOR);
        return p.privacy.getSubject(id);
      });
      if (o.json) return printJson(added);
      printSubject(added);
    });
}

function subjectLinkCommand(): Command {
  return common(
    new Command('link')
      .argument('<id>', 'the data subject')
      .description('link devices and user accounts to a subject (--unlink: remove the links)'),
  )
    .option('--device <id>', 'a device (repeatable)', collect)
    .option('--user <name>', 'a user account (repeatable)', collect)
    .option('--unlink', 'remove these links instead')
    .action(async (id: string, o: LinkOptions) => {
      if (!o.device?.length && !o.user?.length)
        throw new BulwarkError('validation_failed', 'name at least one --device or --user');
      const change = o.unlink
        ? { removeDevices: o.device, removeUsers: o.user }
        : { addDevices: o.device, addUsers: o.user };
      const updated = await withPlatform(o, async (p) => {
        await p.privacy.updateSubject(id, change, ACTOR);
        return p.privacy.getSubject(id);
      });
      if (o.json) return printJson(updated);
      printSubject(updated);
    });
}

function subjectCommands(): Command {
  const subject = new Command('subject').description(
    'data subjects: people, their devices and user accounts',
  );
  subject.addCommand(subjectAddCommand());
  common(subject.command('list').description('data subjects'))
    .option('--after <id>', 'the `next` of the previous page')
    .option('--limit <n>', 'subjects per page (1-1000)', intOption('--limit', 1, 1000), 100)
    .action(async (o: CommonOptions & { after?: string; limit: number }) => {
      const subjects = await withPlatform(o, (p) =>
        p.privacy.listSubjects({ after: o.after, limit: o.limit }),
      );
      const page = { subjects, next: subjects.length === o.limit ? (subjects.at(-1)?.id ?? null) : null };
      if (o.json) return printJson(page);
      printTable(
        subjects.map((s) => ({
          id: s.id,
          kind: s.kind,
          devices: s.devices.join(',') || '-',
          users: s.users.join(',') || '-',
          restricted: s.restrictedAt === null ? '' : iso(s.restrictedAt),
        })),
        ['id', 'kind', 'devices', 'users', 'restricted'],
      );
      if (page.next) process.stdout.write(`more: --after ${page.next}\n`);
    });
  common(subject.command('show <id>').description('a data subject: links, consents, requests')).action(
    async (id: string, o: CommonOptions) => {
      const shown = await withPlatform(o, (p) => p.privacy.getSubject(id));
      if (o.json) return printJson(shown);
      printSubject(shown);
    },
  );
  subject.addCommand(subjectLinkCommand());
  common(
    subject
      .command('unrestrict <id>')
      .description("lift a subject's restriction (GDPR Art. 18(3)): their data is delivered again"),
  ).action(async (id: string, o: CommonOptions) => {
    const lifted = await withPlatform(o, (p) => p.privacy.liftRestriction(id, ACTOR));
    if (o.json) return printJson(lifted);
    printSubject(lifted);
  });
  return subject;
}

// --- consent ----------------------------------------------------------------------------------------------

function consentCommand(status: 'given' | 'withdrawn'): Command {
  const verb = status === 'given' ? 'give' : 'withdraw';
  return common(
    new Command(verb)
      .argument('<subject>', 'the data subject')
      .argument('<purpose>', 'a fideslang data use, e.g. analytics.reporting')
      .description(
        status === 'given'
          ? 'record that the subject gave consent for a purpose, after seeing a version of the notice'
          : 'record that the subject withdrew consent: their data is no longer delivered to that purpose',
      ),
  )
    .option(
      '--notice <version>',
      'the version of the privacy notice (give: required; withdraw: the current one)',
    )
    .action(async (subjectId: string, purpose: string, o: CommonOptions & { notice?: string }) => {
      const detail = await withPlatform(o, async (p) => {
        const noticeVersion =
          o.notice ?? (await currentNotice(() => p.privacy.getSubject(subjectId), purpose, status));
        await p.privacy.setConsent(subjectId, { purpose, noticeVersion, status }, ACTOR);
        return p.privacy.getSubject(subjectId);
      });
      if (o.json) return printJson(detail);
      process.stdout.write(`consent of ${subjectId} for ${purpose}: ${status}\n`);
    });
}

/** Consent is demonstrable only with the notice shown (GDPR Art. 7(1)); a withdrawal keeps the given one's. */
async function currentNotice(
  subject: () => Promise<SubjectDetail>,
  purpose: string,
  status: 'given' | 'withdrawn',
): Promise<string> {
  const found =
    status === 'withdrawn' ? (await subject()).consents.find((c) => c.purpose === purpose) : undefined;
  if (!found)
    throw new BulwarkError(
      'validation_failed',
      '--notice VERSION: the version of the privacy notice the subject saw',
    );
  return found.noticeVersion;
}

function consentCommands(): Command {
  return new Command('consent')
    .description("a data subject's consent per purpose (with the notice version)")
    .addCommand(consentCommand('given'))
    .addCommand(consentCommand('withdrawn'));
}

// --- requests ---------------------------------------------------------------------------------------------

function printRequests(requests: readonly PrivacyRequestView[]): void {
  printTable(
    requests.map((r) => ({
      id: r.id,
      kind: r.kind,
      subject: r.subject ?? '(erased)',
      status: r.overdueAt !== null && r.status === 'open' ? 'open, OVERDUE' : r.status,
      received: iso(r.receivedAt),
      due: iso(r.dueAt),
    })),
    ['id', 'kind', 'subject', 'status', 'received', 'due'],
  );
}

const countsText = (counts: Record<string, number> | null): string =>
  counts === null
    ? ''
    : Object.entries(counts)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ');

function printOutcome(outcome: RequestOutcome, out: string | undefined): void {
  const r = outcome.request;
  process.stdout.write(`request ${r.id} (${r.kind}) ${r.status}, due ${iso(r.dueAt)}\n`);
  if (r.result) process.stdout.write(`  ${countsText(r.result)}\n`);
  if (r.note) process.stdout.write(`  note: ${r.note}\n`);
  if (outcome.export && out) process.stdout.write(`  export written to ${out}\n`);
  else if (outcome.export) process.stdout.write('  the export: --out FILE (or --json)\n');
}

function finishOutcome(outcome: RequestOutcome, o: CommonOptions & { out?: string }): void {
  if (outcome.export && o.out) writeOut(o.out, JSON.stringify(outcome.export, null, 2));
  if (o.json) return printJson(outcome);
  printOutcome(outcome, o.out);
}

const requestVerbs: { verb: string; kind: PrivacyRequestKind; description: string }[] = [
  {
    verb: 'export',
    kind: 'access',
    description: 'access (Art. 15, 20): export everything held about the subject',
  },
  {
    verb: 'erase',
    kind: 'erasure',
    description: 'erasure (Art. 17): delete, crypto-shred, receipt in the audit log',
  },
  {
    verb: 'restrict',
    kind: 'restriction',
    description: 'restriction (Art. 18): keep the data, deliver it to no one',
  },
  {
    verb: 'rectify',
    kind: 'rectification',
    description: 'rectification (Art. 16): open until completed with a note',
  },
];

interface RequestOptions extends CommonOptions {
  hold?: boolean;
  note?: string;
  out?: string;
}

function requestKindCommand(verb: string, kind: PrivacyRequestKind, description: string): Command {
  return common(new Command(verb).argument('<subject>', 'the data subject').description(description))
    .option('--hold', 'record it open, to run later (request run ID)')
    .option('--note <text>', 'a note kept with the request')
    .option('--out <file>', 'write the export JSON here (export)')
    .action(async (subject: string, o: RequestOptions) => {
      const outcome = await withPlatform(o, (p) =>
        p.privacy.createRequest({ subject, kind, hold: o.hold, note: o.note }, ACTOR),
      );
      finishOutcome(outcome, o);
    });
}

function requestManageCommands(request: Command): void {
  common(request.command('list').description('data-subject requests with their deadlines'))
    .addOption(new Option('--status <status>', 'only these').choices(['open', 'completed', 'rejected']))
    .action(async (o: CommonOptions & { status?: 'open' | 'completed' | 'rejected' }) => {
      const requests = await withPlatform(o, (p) => p.privacy.listRequests({ status: o.status }));
      if (o.json) return printJson(requests);
      printRequests(requests);
    });
  common(request.command('show <id>').description('a data-subject request')).action(
    async (id: string, o: CommonOptions) => {
      const shown = await withPlatform(o, (p) => p.privacy.getRequest(id));
      if (o.json) return printJson(shown);
      printOutcome({ request: shown }, undefined);
    },
  );
  common(request.command('run <id>').description('run an open request now'))
    .option('--out <file>', 'write the export JSON here (access)')
    .action(async (id: string, o: CommonOptions & { out?: string }) => {
      finishOutcome(await withPlatform(o, (p) => p.privacy.runRequest(id, ACTOR)), o);
    });
  common(request.command('complete <id>').description('close an open request by hand, with a note'))
    .requiredOption('--note <text>', 'what was done (or why it is rejected)')
    .option('--reject', 'reject it instead (e.g. manifestly unfounded, Art. 12(5))')
    .action(async (id: string, o: CommonOptions & { note: string; reject?: boolean }) => {
      const status = o.reject ? ('rejected' as const) : ('completed' as const);
      const done = await withPlatform(o, (p) =>
        p.privacy.completeRequest(id, { status, note: o.note }, ACTOR),
      );
      if (o.json) return printJson(done);
      printOutcome({ request: done }, undefined);
    });
}

function requestCommands(): Command {
  const request = new Command('request').description(
    'data-subject requests (GDPR Art. 15-18) and their deadlines',
  );
  for (const { verb, kind, description } of requestVerbs)
    request.addCommand(requestKindCommand(verb, kind, description));
  requestManageCommands(request);
  return request;
}

// --- record, exports, retention ---------------------------------------------------------------------------

function recordCommand(): Command {
  return common(
    new Command('record').description(
      'the record of processing activities (GDPR Art. 30); --json: --format json',
    ),
  )
    .addOption(new Option('--format <format>', 'json or html').choices(['json', 'html']).default('json'))
    .option('--out <file>', 'write it here instead of standard output')
    .action(async (o: CommonOptions & { format: 'json' | 'html'; out?: string }) => {
      const text = await withPlatform(o, async (p) =>
        o.format === 'html' && !o.json
          ? p.privacy.recordHtml()
          : JSON.stringify(await p.privacy.record(), null, 2),
      );
      if (o.out) {
        writeOut(o.out, text);
        process.stderr.write(`record written to ${o.out}\n`);
      } else process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
    });
}

interface ExportOptions extends CommonOptions {
  schema: string;
  k: number;
  from?: string;
  to?: string;
  limit?: number;
  out?: string;
}

function exportTelemetryCommand(): Command {
  return common(
    new Command('export-telemetry').description(
      "a de-identified export of a schema's stored telemetry, refused when fewer than k subjects share its quasi-identifiers",
    ),
  )
    .requiredOption('--schema <name>', 'the data schema')
    .requiredOption(
      '--k <n>',
      'the smallest group of subjects any row may single out (2-1000)',
      intOption('--k', 2, 1000),
    )
    .option('--from <time>', 'received at or after: ISO date-time, epoch ms or -DURATION (e.g. -7d)')
    .option('--to <time>', 'received before (same forms)')
    .option('--limit <n>', 'rows at most (1-100000)', intOption('--limit', 1, 100_000))
    .option('--out <file>', 'write the rows (JSON) here')
    .action(async (o: ExportOptions) => {
      const exported = await withPlatform(o, (p) =>
        p.privacy.exportTelemetry(
          {
            schema: o.schema,
            k: o.k,
            from: o.from === undefined ? undefined : parseTimeOption(o.from, '--from'),
            to: o.to === undefined ? undefined : parseTimeOption(o.to, '--to'),
            limit: o.limit,
          },
          ACTOR,
        ),
      );
      if (o.out) writeOut(o.out, JSON.stringify(exported.rows, null, 2));
      if (o.json) return printJson(exported);
      process.stdout.write(
        `${exported.rows.length} rows, ${exported.classes} classes over ${exported.quasiIdentifiers.join(', ') || 'no quasi-identifiers'}, smallest ${exported.smallestClass} (k ${exported.k})${o.out ? `: written to ${o.out}` : ''}\n`,
      );
    });
}

function retentionCommand(): Command {
  return common(
    new Command('retention').description('apply the retention of every data schema now, on every store'),
  ).action(async (o: CommonOptions) => {
    const runs = await withPlatform(o, (p) => p.privacy.applyRetention(Date.now()));
    if (o.json) return printJson(runs);
    printTable(
      runs.map((r) => ({
        schema: r.schema,
        store: r.store,
        deleted: String(r.deleted),
        before: iso(r.before),
      })),
      ['schema', 'store', 'deleted', 'before'],
    );
  });
}

/** Commander errors (a missing argument) throw instead of exiting, at every depth (main.ts does two levels). */
function throwOnErrors(cmd: Command): Command {
  cmd.exitOverride();
  for (const sub of cmd.commands) throwOnErrors(sub);
  return cmd;
}

export function privacyCommands(): Command {
  const privacy = new Command('privacy')
    .description(
      'data subjects, consent, requests, the Art. 30 record, exports and retention (docs/privacy.md)',
    )
    .addCommand(subjectCommands())
    .addCommand(consentCommands())
    .addCommand(requestCommands())
    .addCommand(recordCommand())
    .addCommand(exportTelemetryCommand())
    .addCommand(retentionCommand());
  return throwOnErrors(privacy);
}
