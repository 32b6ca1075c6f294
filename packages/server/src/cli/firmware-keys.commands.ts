import { existsSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { BulwarkError } from '@bulwark/protocol';
import { generateTufKey, privateKeyFromPem, signDocument } from '../firmware/index.ts';
import { printJson } from './context.ts';
import { collect, output, readText } from './firmware-shared.ts';

/** `firmware key generate` and `firmware sign`: offline keys and signing, without a data directory. */
export function keyCommands(firmware: Command): void {
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
}
