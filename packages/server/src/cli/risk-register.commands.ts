import { writeFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { api, BulwarkError } from '@bulwark/protocol';
import type { z } from 'zod';
import { registerHtml, registerReport, type Register } from '../risk/index.ts';
import {
  common,
  iso,
  printJson,
  printTable,
  readDocument,
  withPlatform,
  type CommonOptions,
} from './context.ts';

const ACTOR = 'cli';
const c = api.riskRegister;

/** Runs `work` on the register of a platform built from the command's options (tests pass their own). */
export type OpenRegister = <T>(
  options: CommonOptions,
  work: (register: Register) => Promise<T>,
) => Promise<T>;

const openFromPlatform: OpenRegister = (options, work) =>
  withPlatform(options, (platform) => work(platform.risk.register));

/** A choice option: the value as typed (any case) must be one of the choices; the error names the option. */
function choice<T extends string>(name: string, choices: readonly T[]) {
  return (value: string): T => {
    const found = choices.find((x) => x === value.trim().toLowerCase());
    if (!found)
      throw new BulwarkError('validation_failed', `${name} "${value}" is not one of ${choices.join(', ')}`);
    return found;
  };
}

const level = (name: string) => choice(`--${name}`, c.requirementLevels);

function writeHtml(file: string, html: string): void {
  try {
    writeFileSync(file, html);
  } catch (err) {
    throw new BulwarkError('validation_failed', `--html ${file}: ${(err as Error).message}`);
  }
}

function assetCommands(open: OpenRegister): Command[] {
  const list = common(new Command('assets'))
    .description(
      'assets from the inventory (device models, firmware, zones, conduits, data categories) and manual ones',
    )
    .addOption(new Option('--kind <kind>', 'only this kind').choices(c.assetKinds))
    .action((options: CommonOptions & { kind?: (typeof c.assetKinds)[number] }) =>
      open(options, async (register) => {
        const assets = await register.assets({ kind: options.kind });
        if (options.json) return printJson({ assets });
        printTable(
          assets.map((a) => ({
            id: a.id,
            owner: a.owner ?? 'unassigned',
            'c/i/a/auth': [
              a.requirements.confidentiality,
              a.requirements.integrity,
              a.requirements.availability,
              a.requirements.authenticity,
            ]
              .map((r) => r[0]?.toUpperCase())
              .join('/'),
            devices: String(a.devices),
            detail: a.detail,
          })),
          ['id', 'owner', 'c/i/a/auth', 'devices', 'detail'],
        );
      }),
    );
  interface SetOptions extends CommonOptions {
    owner?: string;
    description?: string;
    confidentiality?: 'low' | 'medium' | 'high';
    integrity?: 'low' | 'medium' | 'high';
    availability?: 'low' | 'medium' | 'high';
    authenticity?: 'low' | 'medium' | 'high';
    groups?: string;
  }
  const set = common(new Command('set'))
    .description("set an asset's owner, description and requirements (manual:<name> creates a manual asset)")
    .argument('<id>', 'the asset id, e.g. zone:plant-a, firmware:pc200-fw, manual:historian')
    .option('--owner <owner>', 'who owns the asset')
    .option('--description <text>', 'what the asset is')
    .option('--confidentiality <level>', 'low | medium | high', level('confidentiality'))
    .option('--integrity <level>', 'low | medium | high', level('integrity'))
    .option('--availability <level>', 'low | medium | high', level('availability'))
    .option('--authenticity <level>', 'low | medium | high', level('authenticity'))
    .option('--groups <groups>', 'device groups a manual asset covers, comma-separated')
    .action((id: string, options: SetOptions) =>
      open(options, async (register) => {
        const requirements = Object.fromEntries(
          (['confidentiality', 'integrity', 'availability', 'authenticity'] as const)
            .filter((k) => options[k] !== undefined)
            .map((k) => [k, options[k]]),
        );
        const asset = await register.putAsset(
          id,
          {
            ...(options.owner === undefined ? {} : { owner: options.owner }),
            ...(options.description === undefined ? {} : { description: options.description }),
            ...(Object.keys(requirements).length ? { requirements } : {}),
            ...(options.groups === undefined
              ? {}
              : {
                  groups: options.groups
                    .split(',')
                    .map((g) => g.trim())
                    .filter(Boolean),
                }),
          },
          ACTOR,
        );
        if (options.json) return printJson(asset);
        process.stdout.write(`asset ${asset.id}: owner ${asset.owner ?? 'unassigned'}; ${asset.detail}\n`);
      }),
    );
  const remove = common(new Command('delete'), false)
    .description("delete a manual asset, or an inventory asset's annotations")
    .argument('<id>', 'the asset id')
    .action((id: string, options: CommonOptions) =>
      open(options, async (register) => {
        await register.deleteAsset(id, ACTOR);
        process.stdout.write(`asset ${id} deleted\n`);
      }),
    );
  return [
    list,
    new Command('asset').description('annotate or add assets').addCommand(set).addCommand(remove),
  ];
}

type Risk = z.infer<typeof c.registerRisk>;
const arrow = (r: Risk) =>
  r.risk === r.baseRisk ? String(r.risk) : `${r.baseRisk}→${r.risk}${r.raised ? ' ↑' : ''}`;

function registerList(open: OpenRegister): Command {
  return common(new Command('register'))
    .description('the risk register, highest live risk first (--html: the report of the whole register)')
    .addOption(new Option('--status <status>', 'only this status').choices(c.riskStatuses))
    .option('--min-risk <n>', 'only risks of at least this live value (1-5)', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 5)
        throw new BulwarkError('validation_failed', `--min-risk must be 1-5, not "${v}"`);
      return n;
    })
    .option('--html <file>', 'write the register report (HTML) to this file')
    .action((options: CommonOptions & { status?: Risk['status']; minRisk?: number; html?: string }) =>
      open(options, async (register) => {
        if (options.html) {
          const report = await registerReport(register);
          writeHtml(options.html, registerHtml(report, Date.now()));
          if (options.json) return printJson(report);
          process.stdout.write(`register report (${report.risks.length} risks) written to ${options.html}\n`);
          return;
        }
        const risks = await register.list({ status: options.status, minRisk: options.minRisk });
        if (options.json) return printJson({ risks });
        printTable(
          risks.map((r) => ({
            id: r.id,
            risk: arrow(r),
            status: r.status,
            owner: r.owner ?? 'unassigned',
            treatment: r.treatment,
            due: r.due ?? '',
            title: r.title,
          })),
          ['id', 'risk', 'status', 'owner', 'treatment', 'due', 'title'],
        );
      }),
    );
}

function riskCommandsOf(open: OpenRegister): Command[] {
  const show = common(new Command('show'))
    .description('one risk: its live value, the facts that moved it, and its history')
    .argument('<id>', 'the risk id, e.g. R-3')
    .action((id: string, options: CommonOptions) =>
      open(options, async (register) => {
        const { risk, history } = await register.get(id);
        if (options.json) return printJson({ risk, history });
        const lines = [
          `${risk.id}  ${risk.title}`,
          `status ${risk.status}; owner ${risk.owner ?? 'unassigned'}; treatment ${risk.treatment}; due ${risk.due ?? 'none'}`,
          `assessed: impact ${risk.impact}, feasibility ${risk.baseFeasibility}, risk ${risk.baseRisk}`,
          `live: feasibility ${risk.feasibility}, risk ${risk.risk}${risk.raised ? ' (raised)' : ''}`,
          ...risk.factors.map((f) => `  ${f.kind} ${f.ref}: ${f.detail} → ${f.feasibility}`),
          `review due ${iso(risk.reviewDueAt).slice(0, 10)}`,
          'history:',
          ...history.map(
            (h) => `  ${iso(h.at)} ${h.actor} ${h.change}${h.to === null ? '' : ` ${h.from ?? '–'}→${h.to}`}`,
          ),
        ];
        process.stdout.write(lines.join('\n') + '\n');
      }),
    );
  interface UpdateOptions extends CommonOptions {
    owner?: string;
    treatment?: Risk['treatment'];
    due?: string;
    status?: Risk['status'];
    note?: string;
  }
  const update = common(new Command('update'))
    .description("change a risk's owner, treatment, due date or status (kept in its history)")
    .argument('<id>', 'the risk id')
    .option('--owner <owner>', 'who owns the risk')
    .addOption(
      new Option('--treatment <option>', 'avoid | reduce | share | retain').choices(c.riskTreatments),
    )
    .option('--due <date>', 'due date, YYYY-MM-DD ("none" clears it)')
    .addOption(new Option('--status <status>', 'open | treating | accepted | closed').choices(c.riskStatuses))
    .option('--note <text>', 'why')
    .action((id: string, options: UpdateOptions) =>
      open(options, async (register) => {
        const risk = await register.update(
          id,
          {
            ...(options.owner === undefined ? {} : { owner: options.owner }),
            ...(options.treatment === undefined ? {} : { treatment: options.treatment }),
            ...(options.due === undefined ? {} : { due: options.due === 'none' ? null : options.due }),
            ...(options.status === undefined ? {} : { status: options.status }),
            ...(options.note === undefined ? {} : { note: options.note }),
          },
          ACTOR,
        );
        if (options.json) return printJson(risk);
        process.stdout.write(
          `${risk.id}: ${risk.status}, owner ${risk.owner ?? 'unassigned'}, risk ${arrow(risk)}\n`,
        );
      }),
    );
  const review = common(new Command('review'))
    .description(
      'record a re-assessment; the next one is due after the baseline interval (risk.reassessEvery)',
    )
    .argument('<id>', 'the risk id')
    .requiredOption('--note <text>', 'what the re-assessment found')
    .action((id: string, options: CommonOptions & { note: string }) =>
      open(options, async (register) => {
        const risk = await register.review(id, options.note, ACTOR);
        if (options.json) return printJson(risk);
        process.stdout.write(`${risk.id} reviewed; next review due ${iso(risk.reviewDueAt).slice(0, 10)}\n`);
      }),
    );
  const reassess = common(new Command('reassess'))
    .description('re-evaluate every risk from the live fleet now (the server also does it on each change)')
    .action((options: CommonOptions) =>
      open(options, async (register) => {
        const counts = await register.reassess();
        if (options.json) return printJson(counts);
        process.stdout.write(
          `${counts.examined} risks examined: ${counts.changed} changed, ${counts.raised} raised, ${counts.lowered} lowered\n`,
        );
      }),
    );
  const zones = common(new Command('zones'))
    .description('IEC 62443-3-2: target and achieved security level per zone (latest compliance run)')
    .action((options: CommonOptions) =>
      open(options, async (register) => {
        const list = await register.zones();
        if (options.json) return printJson({ zones: list });
        printTable(
          list.map((z) => ({
            zone: z.zone,
            devices: String(z.devices),
            'sl-t': String(z.target),
            'sl-a': z.achieved === null ? 'not measured' : String(z.achieved),
            gap: z.gap === null ? '' : String(z.gap),
            blocking: z.blocking.join(', '),
          })),
          ['zone', 'devices', 'sl-t', 'sl-a', 'gap', 'blocking'],
        );
      }),
    );
  const taras = common(new Command('taras'))
    .description('saved TARAs (bulwark risk tara FILE --save ID saves one)')
    .action((options: CommonOptions) =>
      open(options, async (register) => {
        const list = await register.taras();
        if (options.json) return printJson({ taras: list });
        printTable(
          list.map((t) => ({
            id: t.id,
            item: t.item,
            version: String(t.version),
            threats: String(t.threats),
            saved: `${iso(t.savedAt)} by ${t.savedBy}`,
          })),
          ['id', 'item', 'version', 'threats', 'saved'],
        );
      }),
    );
  return [show, update, review, reassess, zones, taras];
}

/** Saves a TARA file into the register (`bulwark risk tara FILE --save ID`). */
export async function saveTaraFile(
  open: OpenRegister,
  input: { file: string; id: string; options: CommonOptions },
) {
  const document = readDocument(input.file);
  return open(input.options, (register) => register.saveTara(input.id, document, ACTOR));
}

/** `bulwark risk assets|asset|register|show|update|review|reassess|zones|taras`. */
export function riskRegisterCommands(open: OpenRegister = openFromPlatform): Command[] {
  return [...assetCommands(open), registerList(open), ...riskCommandsOf(open)];
}

export { openFromPlatform as openRegister };
