import { Command } from 'commander';
import { keyCommands } from './firmware-keys.commands.ts';
import { releaseCommands } from './firmware-release.commands.ts';
import { rolloutCommands } from './firmware-rollout.commands.ts';
import { tufCommands } from './firmware-tuf.commands.ts';
import { vulnerabilityCommands } from './firmware-vulnerability.commands.ts';

/** `bulwark firmware …`: one file per group of sub-commands (firmware-*.commands.ts). */
export function firmwareCommands(): Command {
  const firmware = new Command('firmware').description(
    'firmware releases, TUF signing, staged rollouts and known vulnerabilities',
  );
  keyCommands(firmware);
  releaseCommands(firmware);
  tufCommands(firmware);
  rolloutCommands(firmware);
  vulnerabilityCommands(firmware);

  // Three levels deep (firmware tuf init): errors end in one line, as everywhere (see main.ts).
  const override = (cmd: Command) => {
    cmd.exitOverride();
    cmd.commands.forEach(override);
  };
  override(firmware);
  return firmware;
}
