import { createReadStream, existsSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import { BulwarkError, type PcrValues } from '@bulwark/protocol';
import { common, intOption, printJson, printTable, withPlatform, type CommonOptions } from './context.ts';
import { ACTOR, collect, digest, readText, releaseRow } from './firmware-shared.ts';

interface ReleaseFlags extends CommonOptions {
  hardware?: string[];
  securityVersion?: number;
  endOfSupport?: string;
  notes?: string;
  notesFile?: string;
  sbom?: string;
  filename?: string;
  referenceValues?: string;
  pcr?: string[];
}

const releaseOptions = (cmd: Command) =>
  cmd
    .option('--hardware <id>', 'hardware/model id the image fits; repeat or comma-separate', collect)
    .option(
      '--security-version <n>',
      'anti-rollback counter (never lower than an earlier release)',
      intOption('--security-version', 0, 2 ** 31 - 1),
    )
    .option('--end-of-support <date>', 'end of security updates, ISO date (ETSI EN 303 645 5.3-13)')
    .option('--notes <text>', 'release notes')
    .option('--notes-file <file>', 'release notes from a file')
    .option('--sbom <file>', 'CycloneDX JSON SBOM')
    .option('--filename <name>', 'file name devices download (default NAME-VERSION.bin)')
    .option(
      '--reference-values <file>',
      'reference (golden) PCR values measured boot of this image yields: JSON {"sha256": {"7": "HEX"}}',
    )
    .option(
      '--pcr <bank:index=hex>',
      'one reference PCR value, e.g. sha256:7=HEX; repeat (over --reference-values)',
      collect,
    );

const PCR_FLAG = /^(sha1|sha256|sha384|sha512):(\d{1,2})=([0-9a-f]+)$/i;

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function readReferenceValues(file: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readText(file, 'reference values'));
  } catch (err) {
    if (err instanceof BulwarkError) throw err;
    throw new BulwarkError('validation_failed', `reference values ${file} is not JSON`);
  }
  if (!isObject(parsed))
    throw new BulwarkError(
      'validation_failed',
      `reference values ${file} must be a JSON object such as {"sha256": {"7": "HEX"}}`,
    );
  return parsed;
}

/**
 * The reference values of `--reference-values FILE` then each `--pcr bank:index=hex` (a PCR given both ways
 * takes the `--pcr` value). Undefined when neither is given; the release service checks them.
 */
function referenceValuesOf(flags: ReleaseFlags): Record<string, unknown> | undefined {
  if (flags.referenceValues === undefined && !flags.pcr?.length) return undefined;
  const values = flags.referenceValues === undefined ? {} : readReferenceValues(flags.referenceValues);
  for (const flag of flags.pcr ?? []) {
    const match = PCR_FLAG.exec(flag.trim());
    if (!match)
      throw new BulwarkError(
        'validation_failed',
        `--pcr "${flag}" must be BANK:INDEX=HEX with BANK sha1, sha256, sha384 or sha512 (e.g. sha256:7=3d45…)`,
      );
    const [, bank = '', index = '', hex = ''] = match;
    const key = bank.toLowerCase();
    const bankValues = values[key];
    values[key] = {
      ...(isObject(bankValues) ? bankValues : {}),
      [String(Number(index))]: hex.toLowerCase(),
    };
  }
  return values;
}

/** `name@version`, as a release is named everywhere. */
function splitRef(ref: string): { name: string; version: string } {
  const at = ref.lastIndexOf('@');
  if (at < 1 || at === ref.length - 1)
    throw new BulwarkError(
      'validation_failed',
      `name the release as NAME@VERSION (e.g. pump-fw@1.4.0), not "${ref}"`,
    );
  return { name: ref.slice(0, at), version: ref.slice(at + 1) };
}

function newRelease(ref: string, flags: ReleaseFlags, artifact: { size: number; sha256: string }) {
  const named = splitRef(ref);
  const missing = (['hardware', 'securityVersion', 'endOfSupport'] as const).filter(
    (k) => flags[k] === undefined,
  );
  if (missing.length)
    throw new BulwarkError(
      'validation_failed',
      `missing ${missing.map((m) => `--${m.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`).join(', ')}`,
    );
  return {
    ...named,
    filename: flags.filename,
    hardwareIds: (flags.hardware ?? [])
      .flatMap((h) => h.split(','))
      .map((h) => h.trim())
      .filter(Boolean),
    securityVersion: flags.securityVersion ?? 0,
    endOfSupport: flags.endOfSupport ?? '',
    releaseNotes: flags.notesFile ? readText(flags.notesFile, 'release notes') : flags.notes,
    sbom: flags.sbom ? readText(flags.sbom, 'SBOM') : undefined,
    referenceValues: referenceValuesOf(flags),
    ...artifact,
  };
}

function createCommand(firmware: Command): void {
  common(
    releaseOptions(
      firmware
        .command('create <name@version>')
        .description(
          'record a release (metadata, SBOM, declared size and hash) before uploading its artifact',
        ),
    ),
  )
    .requiredOption('--sha256 <hex>', 'SHA-256 of the artifact')
    .requiredOption(
      '--size <bytes>',
      'artifact size in bytes',
      intOption('--size', 1, Number.MAX_SAFE_INTEGER),
    )
    .action(async (ref: string, flags: ReleaseFlags & { sha256: string; size: number }) => {
      const r = await withPlatform(flags, (p) =>
        p.firmware.releases.create(newRelease(ref, flags, { size: flags.size, sha256: flags.sha256 }), ACTOR),
      );
      if (flags.json) printJson(r);
      else
        process.stdout.write(
          `release ${r.name}@${r.version} created (${r.id}); next: bulwark firmware upload FILE ${r.name}@${r.version}\n`,
        );
    });
}

function uploadCommand(firmware: Command): void {
  common(
    releaseOptions(
      firmware
        .command('upload <file> <name@version>')
        .description(
          'upload an artifact: to an existing draft, or create the release from the flags and upload in one step; a refused upload leaves nothing behind',
        ),
    ),
  ).action(async (file: string, ref: string, flags: ReleaseFlags) => {
    if (!existsSync(file) || !statSync(file).isFile())
      throw new BulwarkError('not_found', `${file} is not a file`);
    const r = await withPlatform(flags, async (p) => {
      const existing = await p.firmware.releases.find(ref);
      if (existing) return p.firmware.releases.upload(existing.id, createReadStream(file), ACTOR);
      const created = await p.firmware.releases.create(newRelease(ref, flags, await digest(file)), ACTOR);
      try {
        return await p.firmware.releases.upload(created.id, createReadStream(file), ACTOR);
      } catch (err) {
        await p.firmware.releases.discard(created.id, ACTOR);
        throw err;
      }
    });
    if (flags.json) printJson(r);
    else
      process.stdout.write(
        `release ${r.name}@${r.version} uploaded (${r.size} bytes, sha256 ${r.sha256}); next: bulwark firmware tuf targets --key TARGETS_KEY\n`,
      );
  });
}

function listCommand(firmware: Command): void {
  common(firmware.command('list').description('list releases, newest first'))
    .option('--name <name>', 'only this image name')
    .option('--status <status>', 'draft, ready or retired')
    .action(async (flags: CommonOptions & { name?: string; status?: string }) => {
      const list = await withPlatform(flags, async (p) =>
        Promise.all(
          (await p.firmware.releases.list({ name: flags.name, status: flags.status })).map(async (r) => ({
            ...r,
            signed: await p.firmware.isSigned(r.targetPath, r.sha256),
          })),
        ),
      );
      if (flags.json) printJson(list);
      else
        printTable(list.map(releaseRow), [
          'release',
          'status',
          'security',
          'hardware',
          'signed',
          'end of support',
          'id',
        ]);
    });
}

/** One line per reference PCR value (`reference sha256:7 HEX`), or a line saying there are none. */
function referenceLines(values: PcrValues | null): string {
  const lines = Object.entries(values ?? {}).flatMap(([bank, pcrs]) =>
    Object.entries(pcrs ?? {})
      .sort(([a], [b]) => Number(a) - Number(b))
      .map(([index, hex]) => `reference ${bank}:${index} ${hex}\n`),
  );
  return lines.length
    ? lines.join('')
    : 'no reference PCR values (attestation answers no_reference_values)\n';
}

function showCommand(firmware: Command): void {
  common(
    firmware
      .command('show <release>')
      .description('a release (id or name@version) and its known vulnerabilities'),
  ).action(async (ref: string, flags: CommonOptions) => {
    const { release, vulnerabilities, signed } = await withPlatform(flags, async (p) => {
      const release = await p.firmware.releases.get(ref);
      return {
        release,
        signed: await p.firmware.isSigned(release.targetPath, release.sha256),
        vulnerabilities: await p.risk.vulnerabilities.forRelease(release.id),
      };
    });
    if (flags.json) {
      printJson({ ...release, signed, vulnerabilities });
      return;
    }
    printTable(
      [releaseRow({ ...release, signed })],
      ['release', 'status', 'security', 'hardware', 'signed', 'end of support', 'id'],
    );
    process.stdout.write(
      `target ${release.targetPath}, sha256 ${release.sha256}, SBOM components ${release.sbomComponents}\n`,
    );
    process.stdout.write(referenceLines(release.referenceValues));
    printTable(
      vulnerabilities.map((v) => ({
        advisory: v.advisoryId,
        severity: v.severity,
        score: v.score === null ? '' : v.score.toFixed(1),
        component: `${v.purl}`,
      })),
      ['advisory', 'severity', 'score', 'component'],
    );
  });
}

function retireCommand(firmware: Command): void {
  common(
    firmware
      .command('retire <release>')
      .description('withdraw a release: no new rollouts, no more downloads'),
  )
    .option('--reason <text>', 'why (recorded in the audit log)')
    .action(async (ref: string, flags: CommonOptions & { reason?: string }) => {
      const r = await withPlatform(flags, (p) => p.firmware.releases.retire(ref, ACTOR, flags.reason));
      if (flags.json) printJson(r);
      else process.stdout.write(`release ${r.name}@${r.version} retired\n`);
    });
}

/** `firmware create|upload|list|show|retire`: releases. */
export function releaseCommands(firmware: Command): void {
  createCommand(firmware);
  uploadCommand(firmware);
  listCommand(firmware);
  showCommand(firmware);
  retireCommand(firmware);
}
