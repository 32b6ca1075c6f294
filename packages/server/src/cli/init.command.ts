import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { CA_CHAIN_FILE, SQLITE_FILE } from '../data-dir.ts';
import { MASTER_KEY_FILE } from '../secrets/index.ts';
import { common, configFrom, printJson, withPlatform, type CommonOptions } from './context.ts';

/**
 * `bulwark init`: creates a data directory (master key, store, CA) without starting the server, for
 * provisioning; on an existing one it only checks that key, store and CA belong together. Besides
 * `serve`, the only command that creates (docs/configuration.md, "The data directory").
 */
export function initCommand(): Command {
  return common(
    new Command('init').description('create the data directory (master key, store, CA); serve does it too'),
  ).action(async (options: CommonOptions) => {
    const config = configFrom(options);
    const dir = path.resolve(config.dataDir);
    const existed = existsSync(path.join(dir, SQLITE_FILE)) || existsSync(path.join(dir, MASTER_KEY_FILE));
    const result = await withPlatform(
      options,
      async (platform) => {
        const chainPem = (await platform.pki()).chainPem();
        const caChainFile = path.join(dir, CA_CHAIN_FILE);
        writeFileSync(caChainFile, chainPem, { mode: 0o644 });
        return {
          dataDir: dir,
          created: !existed,
          store: `${platform.store.dialect} ${platform.store.location}`,
          masterKey: config.masterKey ? 'BULWARK_MASTER_KEY' : path.join(dir, MASTER_KEY_FILE),
          caChain: caChainFile,
        };
      },
      { create: true },
    );
    if (options.json) return printJson(result);
    process.stdout.write(
      [
        result.created
          ? `Created a Bulwark data directory in ${dir}`
          : `${dir} already holds Bulwark data; master key, store and CA belong together`,
        `  Store:       ${result.store}`,
        `  Master key:  ${result.masterKey}  (back it up: without it the CA and secrets are lost)`,
        `  CA chain:    ${result.caChain}`,
        '',
      ].join('\n'),
    );
  });
}
