import type { Command } from 'commander';
import { BulwarkError } from '@bulwark/protocol';
import type { NewRollout, RolloutSelector } from '../firmware/index.ts';
import { common, intOption, printJson, printTable, withPlatform, type CommonOptions } from './context.ts';
import { ACTOR, collect, durationOption, printRollout } from './firmware-shared.ts';

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

function attributesOf(list: string[]): Record<string, string> {
  return Object.fromEntries(
    list.map((a) => {
      const eq = a.indexOf('=');
      if (eq < 1) throw new BulwarkError('validation_failed', `--attribute "${a}" is not name=value`);
      return [a.slice(0, eq), a.slice(eq + 1)];
    }),
  );
}

function selectorOf(flags: RolloutFlags): RolloutSelector {
  return {
    ...(flags.all ? { all: true } : {}),
    ...(flags.group ? { groups: flags.group } : {}),
    ...(flags.device ? { devices: flags.device } : {}),
    ...(flags.attribute ? { attributes: attributesOf(flags.attribute) } : {}),
  };
}

function windowOf(flags: RolloutFlags) {
  if (!flags.window) return undefined;
  const [start, end] = flags.window.split('-');
  if (!start || !end) throw new BulwarkError('validation_failed', '--window is HH:MM-HH:MM');
  return { start, end, ...(flags.days ? { days: flags.days.split(',').map((d) => Number(d)) } : {}) };
}

function settingsOf(flags: RolloutFlags): NewRollout['settings'] {
  const phases = flags.phases.split(',').map((p) => {
    const n = Number(p.trim().replace(/%$/, ''));
    if (!Number.isFinite(n))
      throw new BulwarkError('validation_failed', `--phases "${flags.phases}" is not a list of percentages`);
    return { percent: n, soakMs: flags.soak ?? 0 };
  });
  const maintenanceWindow = windowOf(flags);
  return {
    phases,
    ...(flags.failureThreshold !== undefined ? { failureThreshold: flags.failureThreshold } : {}),
    ...(flags.maxRetries !== undefined ? { maxRetries: flags.maxRetries } : {}),
    ...(flags.retryDelay !== undefined ? { retryDelayMs: flags.retryDelay } : {}),
    ...(flags.requireApproval ? { requireApproval: true } : {}),
    ...(maintenanceWindow ? { maintenanceWindow } : {}),
  };
}

function createCommand(rollout: Command): void {
  common(rollout.command('create <release>').description('start a rollout of a signed release'))
    .option('--group <group>', 'devices of this group; repeat', collect)
    .option('--device <id>', 'this device; repeat', collect)
    .option('--attribute <k=v>', 'devices with this attribute; repeat', collect)
    .option('--all', 'every active device')
    .option('--phases <list>', 'cumulative percentages, e.g. 1,10,50,100', '100')
    .option(
      '--soak <duration>',
      'minimum soak time after each phase',
      durationOption('--soak', { zero: true }),
    )
    .option(
      '--failure-threshold <percent>',
      'pause when more of a phase fails (default 10)',
      intOption('--failure-threshold', 0, 100),
    )
    .option('--max-retries <n>', 'further attempts per device (default 2)', intOption('--max-retries', 0, 10))
    .option(
      '--retry-delay <duration>',
      'wait before retrying a device (default 1m)',
      durationOption('--retry-delay', { zero: true }),
    )
    .option('--require-approval', 'wait for "rollout approve" between phases')
    .option('--window <HH:MM-HH:MM>', 'maintenance window (UTC) in which commands are sent')
    .option('--days <list>', 'maintenance window days, 0=Sunday … 6=Saturday, e.g. 1,2,3,4,5')
    .action(async (ref: string, flags: RolloutFlags) => {
      const input = { release: ref, selector: selectorOf(flags), settings: settingsOf(flags) };
      const r = await withPlatform(flags, (p) => p.firmware.rollouts.create(input, ACTOR));
      if (flags.json) printJson(r);
      else printRollout(r);
    });
}

function listCommand(rollout: Command): void {
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
}

function showCommand(rollout: Command): void {
  common(rollout.command('show <id>').description('status per phase (and per device with --devices)'))
    .option('--devices', 'also list every device')
    .action(async (id: string, flags: CommonOptions & { devices?: boolean }) => {
      const { r, devices } = await withPlatform(flags, async (p) => ({
        r: await p.firmware.rollouts.get(id),
        devices: flags.devices ? await p.firmware.rollouts.devices(id) : undefined,
      }));
      if (flags.json) {
        printJson(devices ? { ...r, devices } : r);
        return;
      }
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
    });
}

function controlCommands(rollout: Command): void {
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
}

/** `firmware rollout create|list|show|pause|resume|approve|abort`: staged rollouts. */
export function rolloutCommands(firmware: Command): void {
  const rollout = firmware.command('rollout').description('staged rollouts with gates');
  createCommand(rollout);
  listCommand(rollout);
  showCommand(rollout);
  controlCommands(rollout);
}
