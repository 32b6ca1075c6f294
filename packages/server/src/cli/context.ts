import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { Option } from 'commander';
import { BulwarkError, parseSeverity } from '@bulwark/protocol';
import { loadConfig, type Config } from '../config/index.ts';
import type { Platform } from '../platform.ts';

export interface CommonOptions {
  data?: string;
  config?: string;
  json?: boolean;
}

/** Adds the options every command takes. */
export function common(cmd: Command, withJson = true): Command {
  cmd.option('--data <dir>', 'data directory (default ./.bulwark, env BULWARK_DATA)');
  cmd.option('--config <file>', 'configuration file, YAML or JSON (env BULWARK_CONFIG)');
  if (withJson) cmd.addOption(new Option('--json', 'print JSON'));
  return cmd;
}

export function configFrom(options: CommonOptions, overrides: Record<string, unknown> = {}): Config {
  return loadConfig({ file: options.config, overrides: { dataDir: options.data, ...overrides } });
}

/**
 * Runs `work` on a platform built from the command's options, and always closes it. The data directory
 * must already hold Bulwark data unless `create` (only `serve` and `init` create: docs/configuration.md).
 */
export async function withPlatform<T>(
  options: CommonOptions,
  work: (platform: Platform) => Promise<T>,
  { create = false }: { create?: boolean } = {},
): Promise<T> {
  const config = configFrom(options);
  // Loaded on use, so that `--help`, `--version` and bad arguments answer without loading the services.
  const [{ createPlatform }, { createLogger }] = await Promise.all([
    import('../platform.ts'),
    import('../logger.ts'),
  ]);
  // One-shot commands log warnings only: their output is the answer, not a log.
  const platform = await createPlatform(config, {
    logger: createLogger(config.logLevel === 'debug' ? 'debug' : 'warn'),
    createDataDir: create,
  });
  try {
    return await work(platform);
  } finally {
    await platform.close();
  }
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

export function printTable(rows: Record<string, string>[], columns: string[]): void {
  if (rows.length === 0) {
    process.stdout.write('(none)\n');
    return;
  }
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd() + '\n';
  process.stdout.write(line(columns.map((c) => c.toUpperCase())));
  for (const row of rows) process.stdout.write(line(columns.map((c) => row[c] ?? '')));
}

export const iso = (ms: number | null) => (ms === null ? '' : new Date(ms).toISOString());

/** Parses a whole-number option, naming it in the error. */
/** A severity option: the one scale from protocol, in any case (`Critical` is `critical`). */
export function severityOption(name: string) {
  return (value: string) => parseSeverity(value, name);
}

export function intOption(name: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new BulwarkError(
        'validation_failed',
        `${name} must be a whole number from ${min} to ${max}, not "${value}"`,
      );
    }
    return n;
  };
}

/** Reads a YAML or JSON document given on the command line; a clear error names what is wrong. */
export function readDocument(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new BulwarkError('validation_failed', `cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    return parseYaml(text) as unknown; // YAML or JSON
  } catch (err) {
    throw new BulwarkError('validation_failed', `${file} is not valid YAML/JSON: ${(err as Error).message}`);
  }
}
