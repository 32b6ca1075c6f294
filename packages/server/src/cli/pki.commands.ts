import { writeFileSync } from 'node:fs';
import { Command } from 'commander';
import { common, withPlatform, type CommonOptions } from './context.ts';

export function pkiCommands(): Command {
  const pki = new Command('pki').description('certificate authority');
  common(
    pki.command('ca-chain').description('print the CA chain (PEM) that devices and clients should trust'),
    false,
  )
    .option('--out <file>', 'write to this file instead of standard output')
    .action(async (options: CommonOptions & { out?: string }) => {
      const pem = await withPlatform(options, async (p) => (await p.pki()).chainPem());
      if (options.out) writeFileSync(options.out, pem);
      else process.stdout.write(pem);
    });
  return pki;
}
