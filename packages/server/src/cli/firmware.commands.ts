import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { Command } from 'commander';
import { BulwarkError } from '@bulwark/protocol';
import { parseDuration } from '../config/index.ts';
import {
  generateTufKey,
  privateKeyFromPem,
  publicKeyFrom,
  signDocument,
  tufRoles,
  type Release,
  type Rollout,
  type RolloutSelector,
  type TufRole,
} from '../firmware/index.ts';
import type { Platform } from '../platform.ts';
import {
  common,
  intOption,
  iso,
  printJson,
  printTable,
  withPlatform,
  type CommonOptions,
} from './context.ts';

const ACTOR = 'cli';

const collect = (value: string, previous: string[] = []) => [...previous, value];

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new BulwarkError('validation_failed', `cannot read ${what} ${file}: ${(err as Error).message}`);
  }
}

function durationOption(name: string) {
  return (value: string): number => {
    const ms = parseDuration(value);
    if (ms === undefined)
      throw new BulwarkError(
        'validation_failed',
        `${name} "${value}" is not a duration such as 30m, 24h or 7d`,
      );
    return ms;
  };
}

/** Size and SHA-256 of a file, streamed. */
async function digest(file: string): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { size, sha256: hash.digest('hex') };
}

function releaseRow(r: Release & { signed?: boolean }): Record<string, string> {
  return {
    release: `${r.name}@${r.version}`,
    id: r.id,
    status: r.status,
    security: String(r.securityVersion),
    hardware: r.hardwareIds.join(','),
    size: String(r.size),
    signed: r.signed === undefined ? '' : r.signed ? 'yes' : 'no',
    'end of support': iso(r.endOfSupport).slice(0, 10),
  };
}

function rolloutRows(r: Rollout): Record<string, string>[] {
  return r.phases.map((p) => ({
    phase: `${p.phase + 1}${p.phase === r.currentPhase ? '*' : ''}`,
    percent: `${p.percent}%`,
    devices: String(p.devices),
    succeeded: String(p.succeeded),
    failed: String(p.failed),
    'in progress': String(p.inProgress),
    pending: String(p.pending),
    skipped: String(p.skipped),
  }));
}

function printRollout(r: Rollout): void {
  process.stdout.write(
    `rollout ${r.id}: ${r.release.name}@${r.release.version} ${r.status}${r.pauseReason ? ` (${r.pauseReason})` : ''}\n`,
  );
  printTable(rolloutRows(r), [
    'phase',
    'percent',
    'devices',
    'succeeded',
    'failed',
    'in progress',
    'pending',
    'skipped',
  ]);
}

function output(text: string, out: string | undefined, what: string): void {
  if (out) {
    writeFileSync(out, text + '\n', { mode: 0o644 });
    process.stderr.write(`${what} written to ${out}\n`);
  } else process.stdout.write(text + '\n');
}

/** Keys from files: private keys sign, public keys are only named. */
function keysFrom(files: string[] | undefined) {
  return (files ?? []).map((file) => {
    const text = readText(file, 'key');
    if (/PRIVATE KEY/.test(text)) {
      const key = privateKeyFromPem(text, file);
      return { public: key.public, private: key };
    }
    return { public: publicKeyFrom(text, file), private: undefined };
  });
}

async function signAndPublish(
  p: Platform,
  body: string,
  signers: ReturnType<typeof keysFrom>,
  role: TufRole,
) {
  const keys = signers.flatMap((k) => (k.private ? [k.private] : []));
  const signed = signDocument(body, keys);
  return { signed, result: await p.firmware.tuf.publish(signed, ACTOR), role };
}

export function firmwareCommands(): Command {
  const firmware = new Command('firmware').description(
    'firmware releases, TUF signing, staged rollouts and known vulnerabilities',
  );

  // --- keys and offline signing -------------------------------------------------------------------
  const key = firmware.command('key').description('TUF signing keys (Ed25519)');
  key
    .command('generate')
    .description('make an Ed25519 key pair for a TUF role: FILE (private, 0600) and FILE.pub')
    .requiredOption('--out <file>', 'private key file to create')
    .option('--json', 'print JSON')
    .action((options: { out: string; json?: boolean }) => {
      if (existsSync(options.out))
        throw new BulwarkError('conflict', `${options.out} exists; not overwriting a key`);
      const generated = generateTufKey();
      writeFileSync(options.out, generated.privatePem, { mode: 0o600, flag: 'wx' });
      writeFileSync(`${options.out}.pub`, generated.publicPem, { mode: 0o644 });
      if (options.json)
        printJson({ keyid: generated.keyid, private: options.out, public: `${options.out}.pub` });
      else
        process.stdout.write(
          `key ${generated.keyid}\nprivate: ${options.out}\npublic:  ${options.out}.pub\n`,
        );
    });

  firmware
    .command('sign')
    .description(
      'add signatures to TUF metadata (root or targets) with offline keys; runs without a data directory',
    )
    .requiredOption('--key <file>', 'private key (PEM); repeat for several', collect)
    .requiredOption(
      '--in <file>',
      'metadata to sign (from "firmware tuf targets" or "firmware tuf init/rotate")',
    )
    .option('--out <file>', 'where to write the signed metadata (default: stdout)')
    .action((options: { key: string[]; in: string; out?: string }) => {
      const keys = options.key.map((file) => privateKeyFromPem(readText(file, 'key'), file));
      output(signDocument(readText(options.in, 'metadata'), keys), options.out, 'signed metadata');
    });

  // --- releases -----------------------------------------------------------------------------------
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
      .option('--filename <name>', 'file name devices download (default NAME-VERSION.bin)');

  interface ReleaseFlags extends CommonOptions {
    hardware?: string[];
    securityVersion?: number;
    endOfSupport?: string;
    notes?: string;
    notesFile?: string;
    sbom?: string;
    filename?: string;
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
      ...artifact,
    };
  }

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
        p.firmware.releases.create(newRelease(ref, flags, flags), ACTOR),
      );
      if (flags.json) printJson(r);
      else
        process.stdout.write(
          `release ${r.name}@${r.version} created (${r.id}); next: bulwark firmware upload FILE ${r.name}@${r.version}\n`,
        );
    });

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
        vulnerabilities: await p.firmware.vulnerabilities.forRelease(release.id),
      };
    });
    if (flags.json) printJson({ ...release, signed, vulnerabilities });
    else {
      printTable(
        [releaseRow({ ...release, signed })],
        ['release', 'status', 'security', 'hardware', 'signed', 'end of support', 'id'],
      );
      process.stdout.write(
        `target ${release.targetPath}, sha256 ${release.sha256}, SBOM components ${release.sbomComponents}\n`,
      );
      printTable(
        vulnerabilities.map((v) => ({
          advisory: v.advisoryId,
          severity: v.severity,
          score: v.score === null ? '' : v.score.toFixed(1),
          component: `${v.purl}`,
        })),
        ['advisory', 'severity', 'score', 'component'],
      );
    }
  });

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

  // --- TUF repository ----------------------------------------------------------------------------
  const tuf = firmware
    .command('tuf')
    .description('the TUF repository: initialize, sign targets, rotate keys');

  common(tuf.command('status').description('role versions, expiries and keys')).action(
    async (flags: CommonOptions) => {
      const status = await withPlatform(flags, (p) => p.firmware.tuf.status());
      if (flags.json) printJson(status);
      else {
        if (!status.initialized)
          process.stdout.write('not initialized: bulwark firmware tuf init --root-key … --targets-key …\n');
        printTable(
          tufRoles.flatMap((role) => {
            const r = status.roles[role];
            return r
              ? [
                  {
                    role,
                    version: String(r.version),
                    expires: iso(r.expires),
                    threshold: `${r.threshold}/${r.keyids.length}`,
                    keys: r.keyids.map((k) => k.slice(0, 12)).join(','),
                  },
                ]
              : [];
          }),
          ['role', 'version', 'expires', 'threshold', 'keys'],
        );
        if (status.pending.length) process.stdout.write(`pending signatures: ${status.pending.join(', ')}\n`);
        if (status.initialized && !status.targetsValid)
          process.stdout.write(
            'targets metadata does not verify under the current root: sign targets again\n',
          );
      }
    },
  );

  common(
    tuf
      .command('init')
      .description(
        'create the first root: root and targets keys are held offline (give public keys to get unsigned metadata, or private keys to sign and publish now); snapshot and timestamp keys are made here',
      ),
    false,
  )
    .requiredOption('--root-key <file>', 'root key (PEM public or private); repeat for several', collect)
    .option('--root-threshold <n>', 'signatures needed for root', intOption('--root-threshold', 1, 20), 1)
    .requiredOption(
      '--targets-key <file>',
      'targets key (PEM public or private); repeat for several',
      collect,
    )
    .option(
      '--targets-threshold <n>',
      'signatures needed for targets',
      intOption('--targets-threshold', 1, 20),
      1,
    )
    .option('--out <file>', 'write the unsigned root here when not all keys are private')
    .action(
      async (
        flags: CommonOptions & {
          rootKey: string[];
          rootThreshold: number;
          targetsKey: string[];
          targetsThreshold: number;
          out?: string;
        },
      ) => {
        const rootKeys = keysFrom(flags.rootKey);
        const targetsKeys = keysFrom(flags.targetsKey);
        await withPlatform(flags, async (p) => {
          const body = await p.firmware.tuf.prepareInitialRoot(
            {
              rootKeys: rootKeys.map((k) => k.public),
              rootThreshold: flags.rootThreshold,
              targetsKeys: targetsKeys.map((k) => k.public),
              targetsThreshold: flags.targetsThreshold,
            },
            ACTOR,
          );
          if (rootKeys.filter((k) => k.private).length < flags.rootThreshold) {
            output(body, flags.out, 'unsigned root');
            process.stderr.write(
              'sign it (bulwark firmware sign --key ROOT_KEY --in FILE) and publish it (bulwark firmware tuf publish FILE)\n',
            );
            return;
          }
          await signAndPublish(p, body, rootKeys, 'root');
          process.stdout.write('root version 1 published\n');
          if (targetsKeys.filter((k) => k.private).length >= flags.targetsThreshold) {
            await signAndPublish(p, await p.firmware.tuf.prepareTargets(ACTOR), targetsKeys, 'targets');
            process.stdout.write('targets signed and published; devices can update\n');
          }
        });
      },
    );

  common(
    tuf
      .command('targets')
      .description(
        'prepare targets metadata listing every uploaded release; with --key, sign and publish it at once',
      ),
    false,
  )
    .option('--key <file>', 'targets private key; repeat to reach the threshold', collect)
    .option('--out <file>', 'write the unsigned targets metadata here (without --key)')
    .action(async (flags: CommonOptions & { key?: string[]; out?: string }) => {
      const keys = keysFrom(flags.key);
      await withPlatform(flags, async (p) => {
        const body = await p.firmware.tuf.prepareTargets(ACTOR);
        if (keys.length === 0) {
          output(body, flags.out, 'unsigned targets');
          process.stderr.write(
            'sign it offline (bulwark firmware sign --key TARGETS_KEY --in FILE) and publish it (bulwark firmware tuf publish FILE)\n',
          );
          return;
        }
        const { result } = await signAndPublish(p, body, keys, 'targets');
        process.stdout.write(`targets version ${result.version} published\n`);
      });
    });

  common(
    tuf
      .command('rotate')
      .description(
        'rotate keys of a role (root included) or renew the root: prepares a new root that must be signed by the current and the new root keys',
      ),
    false,
  )
    .option('--role <role>', `role whose keys change: ${tufRoles.join(', ')} (omit to renew the root expiry)`)
    .option('--key <file>', 'new root/targets key (PEM public or private); repeat for several', collect)
    .option('--threshold <n>', 'new threshold for the role', intOption('--threshold', 1, 20))
    .option('--sign-key <file>', 'root private keys to sign with now (current and new); repeat', collect)
    .option('--out <file>', 'write the unsigned root here (without --sign-key)')
    .action(
      async (
        flags: CommonOptions & {
          role?: string;
          key?: string[];
          threshold?: number;
          signKey?: string[];
          out?: string;
        },
      ) => {
        if (flags.role !== undefined && !(tufRoles as readonly string[]).includes(flags.role))
          throw new BulwarkError('validation_failed', `--role must be one of ${tufRoles.join(', ')}`);
        const newKeys = keysFrom(flags.key);
        const signers = keysFrom(flags.signKey);
        await withPlatform(flags, async (p) => {
          const body = await p.firmware.tuf.prepareRootChange(
            {
              role: flags.role as TufRole | undefined,
              keys: newKeys.map((k) => k.public),
              threshold: flags.threshold,
            },
            ACTOR,
          );
          if (signers.length === 0) {
            output(body, flags.out, 'unsigned root');
            return;
          }
          const { result } = await signAndPublish(p, body, signers, 'root');
          process.stdout.write(`root version ${result.version} published\n`);
        });
      },
    );

  common(tuf.command('publish <file>').description('publish signed root or targets metadata'), false).action(
    async (file: string, flags: CommonOptions) => {
      const result = await withPlatform(flags, (p) =>
        p.firmware.tuf.publish(readText(file, 'metadata'), ACTOR),
      );
      process.stdout.write(`${result.role} version ${result.version} published\n`);
    },
  );

  // --- rollouts ----------------------------------------------------------------------------------
  const rollout = firmware.command('rollout').description('staged rollouts with gates');
  interface RolloutFlags extends CommonOptions {
    group?: string[];
    device?: string[];
    attribute?: string[];
    all?: boolean;
    phases: string;
    soak?: number;
    failureThreshold?: number;
    maxRetries?: number;
    retryDelay?: number;
    requireApproval?: boolean;
    window?: string;
    days?: string;
  }
  common(rollout.command('create <release>').description('start a rollout of a signed release'))
    .option('--group <group>', 'devices of this group; repeat', collect)
    .option('--device <id>', 'this device; repeat', collect)
    .option('--attribute <k=v>', 'devices with this attribute; repeat', collect)
    .option('--all', 'every active device')
    .option('--phases <list>', 'cumulative percentages, e.g. 1,10,50,100', '100')
    .option('--soak <duration>', 'minimum soak time after each phase', durationOption('--soak'))
    .option(
      '--failure-threshold <percent>',
      'pause when more of a phase fails (default 10)',
      intOption('--failure-threshold', 0, 100),
    )
    .option('--max-retries <n>', 'further attempts per device (default 2)', intOption('--max-retries', 0, 10))
    .option(
      '--retry-delay <duration>',
      'wait before retrying a device (default 1m)',
      durationOption('--retry-delay'),
    )
    .option('--require-approval', 'wait for "rollout approve" between phases')
    .option('--window <HH:MM-HH:MM>', 'maintenance window (UTC) in which commands are sent')
    .option('--days <list>', 'maintenance window days, 0=Sunday … 6=Saturday, e.g. 1,2,3,4,5')
    .action(async (ref: string, flags: RolloutFlags) => {
      const selector: RolloutSelector = {
        ...(flags.all ? { all: true } : {}),
        ...(flags.group ? { groups: flags.group } : {}),
        ...(flags.device ? { devices: flags.device } : {}),
        ...(flags.attribute
          ? {
              attributes: Object.fromEntries(
                flags.attribute.map((a) => {
                  const eq = a.indexOf('=');
                  if (eq < 1)
                    throw new BulwarkError('validation_failed', `--attribute "${a}" is not name=value`);
                  return [a.slice(0, eq), a.slice(eq + 1)];
                }),
              ),
            }
          : {}),
      };
      const phases = flags.phases.split(',').map((p) => {
        const n = Number(p.trim().replace(/%$/, ''));
        if (!Number.isFinite(n))
          throw new BulwarkError(
            'validation_failed',
            `--phases "${flags.phases}" is not a list of percentages`,
          );
        return { percent: n, soakMs: flags.soak ?? 0 };
      });
      let maintenanceWindow: { start: string; end: string; days?: number[] } | undefined;
      if (flags.window) {
        const [start, end] = flags.window.split('-');
        if (!start || !end) throw new BulwarkError('validation_failed', '--window is HH:MM-HH:MM');
        maintenanceWindow = {
          start,
          end,
          ...(flags.days ? { days: flags.days.split(',').map((d) => Number(d)) } : {}),
        };
      }
      const r = await withPlatform(flags, (p) =>
        p.firmware.rollouts.create(
          {
            release: ref,
            selector,
            settings: {
              phases,
              ...(flags.failureThreshold !== undefined ? { failureThreshold: flags.failureThreshold } : {}),
              ...(flags.maxRetries !== undefined ? { maxRetries: flags.maxRetries } : {}),
              ...(flags.retryDelay !== undefined ? { retryDelayMs: flags.retryDelay } : {}),
              ...(flags.requireApproval ? { requireApproval: true } : {}),
              ...(maintenanceWindow ? { maintenanceWindow } : {}),
            },
          },
          ACTOR,
        ),
      );
      if (flags.json) printJson(r);
      else printRollout(r);
    });

  common(rollout.command('list').description('rollouts, newest first'))
    .option('--status <status>', 'running, paused, waiting_approval, completed, aborted')
    .action(async (flags: CommonOptions & { status?: string }) => {
      const list = await withPlatform(flags, (p) => p.firmware.rollouts.list({ status: flags.status }));
      if (flags.json) printJson(list);
      else
        printTable(
          list.map((r) => ({
            id: r.id,
            release: `${r.release.name}@${r.release.version}`,
            status: r.status,
            phase: `${r.currentPhase + 1}/${r.phases.length}`,
            succeeded: String(r.phases.reduce((s, p) => s + p.succeeded, 0)),
            failed: String(r.phases.reduce((s, p) => s + p.failed, 0)),
            devices: String(r.phases.reduce((s, p) => s + p.devices, 0)),
          })),
          ['id', 'release', 'status', 'phase', 'devices', 'succeeded', 'failed'],
        );
    });

  common(rollout.command('show <id>').description('status per phase (and per device with --devices)'))
    .option('--devices', 'also list every device')
    .action(async (id: string, flags: CommonOptions & { devices?: boolean }) => {
      const { r, devices } = await withPlatform(flags, async (p) => ({
        r: await p.firmware.rollouts.get(id),
        devices: flags.devices ? await p.firmware.rollouts.devices(id) : undefined,
      }));
      if (flags.json) printJson(devices ? { ...r, devices } : r);
      else {
        printRollout(r);
        if (devices)
          printTable(
            devices.map((d) => ({
              device: d.deviceId,
              phase: String(d.phase + 1),
              status: d.status,
              step: d.step ?? '',
              attempts: String(d.attempts),
              reason: d.reason ?? '',
            })),
            ['device', 'phase', 'status', 'step', 'attempts', 'reason'],
          );
      }
    });

  for (const name of ['pause', 'resume', 'approve', 'abort'] as const) {
    const cmd = common(rollout.command(`${name} <id>`).description(`${name} a rollout`));
    if (name === 'pause' || name === 'abort')
      cmd.option('--reason <text>', 'why (recorded in the audit log)');
    if (name === 'resume') cmd.option('--retry-failed', 'give the failed devices of the phase new attempts');
    cmd.action(async (id: string, flags: CommonOptions & { reason?: string; retryFailed?: boolean }) => {
      const r = await withPlatform(flags, (p) => {
        const rollouts = p.firmware.rollouts;
        if (name === 'pause') return rollouts.pause(id, ACTOR, flags.reason);
        if (name === 'abort') return rollouts.abort(id, ACTOR, flags.reason);
        if (name === 'resume') return rollouts.resume(id, ACTOR, { retryFailed: flags.retryFailed });
        return rollouts.approve(id, ACTOR);
      });
      if (flags.json) printJson(r);
      else printRollout(r);
    });
  }

  // --- vulnerabilities ---------------------------------------------------------------------------
  const advisories = firmware.command('advisories').description('OSV advisories (offline feed)');
  common(
    advisories.command('import <path>').description('import OSV JSON from a file or a directory tree'),
  ).action(async (source: string, flags: CommonOptions) => {
    const result = await withPlatform(flags, (p) => p.firmware.vulnerabilities.importFrom(source, ACTOR));
    if (flags.json) printJson(result);
    else
      process.stdout.write(
        `${result.imported} imported, ${result.unchanged} unchanged, ${result.matches} release matches\n`,
      );
  });
  common(advisories.command('list').description('imported advisories, highest score first'))
    .option('--severity <level>', 'critical, high, medium, low, none, unknown')
    .action(async (flags: CommonOptions & { severity?: string }) => {
      const list = await withPlatform(flags, (p) =>
        p.firmware.vulnerabilities.advisories({ severity: flags.severity }),
      );
      if (flags.json) printJson(list);
      else
        printTable(
          list.map((a) => ({
            id: a.id,
            severity: a.severity,
            score: a.score === null ? '' : a.score.toFixed(1),
            summary: a.summary.slice(0, 60),
          })),
          ['id', 'severity', 'score', 'summary'],
        );
    });

  common(
    firmware
      .command('exposure')
      .description('devices running releases with known vulnerabilities, worst first'),
  )
    .option('--min-severity <level>', 'only devices at or above: critical, high, medium, low')
    .action(async (flags: CommonOptions & { minSeverity?: string }) => {
      const list = await withPlatform(flags, (p) =>
        p.firmware.vulnerabilities.exposure({ minSeverity: flags.minSeverity as never }),
      );
      if (flags.json) printJson(list);
      else
        printTable(
          list.map((d) => ({
            device: d.deviceId,
            release: d.release ? `${d.release.name}@${d.release.version}` : '',
            worst: d.worstSeverity,
            score: d.worstScore === null ? '' : d.worstScore.toFixed(1),
            advisories: d.advisories.map((a) => a.id).join(','),
          })),
          ['device', 'release', 'worst', 'score', 'advisories'],
        );
    });

  common(
    firmware
      .command('stale')
      .description('devices not updated within the maximum age, or past end of support'),
  )
    .option('--max-age <duration>', 'override firmware.maxAge, e.g. 180d', durationOption('--max-age'))
    .action(async (flags: CommonOptions & { maxAge?: number }) => {
      const list = await withPlatform(flags, (p) =>
        p.firmware.vulnerabilities.stale({ maxAgeMs: flags.maxAge }),
      );
      if (flags.json) printJson(list);
      else
        printTable(
          list.map((d) => ({
            device: d.deviceId,
            version: d.version ?? '',
            installed: iso(d.installedAt),
            reason: d.reason,
          })),
          ['device', 'version', 'installed', 'reason'],
        );
    });

  // Three levels deep (firmware tuf init): errors end in one line, as everywhere (see main.ts).
  const override = (cmd: Command) => {
    cmd.exitOverride();
    cmd.commands.forEach(override);
  };
  override(firmware);
  return firmware;
}
