import type { Command } from 'commander';
import { BulwarkError } from '@bulwark/protocol';
import { tufRoles, type TufRole, type TufStatus } from '../firmware/index.ts';
import {
  common,
  intOption,
  iso,
  printJson,
  printTable,
  withPlatform,
  type CommonOptions,
} from './context.ts';
import { ACTOR, collect, keysFrom, output, readText, signAndPublish } from './firmware-shared.ts';

function printStatus(status: TufStatus): void {
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
    process.stdout.write('targets metadata does not verify under the current root: sign targets again\n');
}

function statusCommand(tuf: Command): void {
  common(tuf.command('status').description('role versions, expiries and keys')).action(
    async (flags: CommonOptions) => {
      const status = await withPlatform(flags, (p) => p.firmware.tuf.status());
      if (flags.json) printJson(status);
      else printStatus(status);
    },
  );
}

interface InitFlags extends CommonOptions {
  rootKey: string[];
  rootThreshold: number;
  targetsKey: string[];
  targetsThreshold: number;
  out?: string;
}

async function init(flags: InitFlags): Promise<void> {
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
    await signAndPublish(p, { body, role: 'root' }, rootKeys);
    process.stdout.write('root version 1 published\n');
    if (targetsKeys.filter((k) => k.private).length >= flags.targetsThreshold) {
      const targets = await p.firmware.tuf.prepareTargets(ACTOR);
      await signAndPublish(p, { body: targets, role: 'targets' }, targetsKeys);
      process.stdout.write('targets signed and published; devices can update\n');
    }
  });
}

function initCommand(tuf: Command): void {
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
    .action(init);
}

function targetsCommand(tuf: Command): void {
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
        const { result } = await signAndPublish(p, { body, role: 'targets' }, keys);
        process.stdout.write(`targets version ${result.version} published\n`);
      });
    });
}

interface RotateFlags extends CommonOptions {
  role?: TufRole;
  key?: string[];
  threshold?: number;
  signKey?: string[];
  out?: string;
}

function roleOption(value: string): TufRole {
  const role = tufRoles.find((r) => r === value);
  if (!role) throw new BulwarkError('validation_failed', `--role must be one of ${tufRoles.join(', ')}`);
  return role;
}

async function rotate(flags: RotateFlags): Promise<void> {
  const newKeys = keysFrom(flags.key);
  const signers = keysFrom(flags.signKey);
  await withPlatform(flags, async (p) => {
    const body = await p.firmware.tuf.prepareRootChange(
      { role: flags.role, keys: newKeys.map((k) => k.public), threshold: flags.threshold },
      ACTOR,
    );
    if (signers.length === 0) {
      output(body, flags.out, 'unsigned root');
      return;
    }
    const { result } = await signAndPublish(p, { body, role: 'root' }, signers);
    process.stdout.write(`root version ${result.version} published\n`);
  });
}

function rotateCommand(tuf: Command): void {
  common(
    tuf
      .command('rotate')
      .description(
        'rotate keys of a role (root included) or renew the root: prepares a new root that must be signed by the current and the new root keys',
      ),
    false,
  )
    .option(
      '--role <role>',
      `role whose keys change: ${tufRoles.join(', ')} (omit to renew the root expiry)`,
      roleOption,
    )
    .option('--key <file>', 'new root/targets key (PEM public or private); repeat for several', collect)
    .option('--threshold <n>', 'new threshold for the role', intOption('--threshold', 1, 20))
    .option('--sign-key <file>', 'root private keys to sign with now (current and new); repeat', collect)
    .option('--out <file>', 'write the unsigned root here (without --sign-key)')
    .action(rotate);
}

function publishCommand(tuf: Command): void {
  common(tuf.command('publish <file>').description('publish signed root or targets metadata'), false).action(
    async (file: string, flags: CommonOptions) => {
      const result = await withPlatform(flags, (p) =>
        p.firmware.tuf.publish(readText(file, 'metadata'), ACTOR),
      );
      process.stdout.write(`${result.role} version ${result.version} published\n`);
    },
  );
}

/** `firmware tuf status|init|targets|rotate|publish`: the TUF repository. */
export function tufCommands(firmware: Command): void {
  const tuf = firmware
    .command('tuf')
    .description('the TUF repository: initialize, sign targets, rotate keys');
  statusCommand(tuf);
  initCommand(tuf);
  targetsCommand(tuf);
  rotateCommand(tuf);
  publishCommand(tuf);
}
