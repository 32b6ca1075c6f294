#!/usr/bin/env node
// Runs the compiled bundle (dist/, built by `npm install` and `npm run build`); without one, the
// TypeScript sources through tsx, which is much slower to start.
import { fileURLToPath } from 'node:url';
import { loadBundle } from './load-bundle.js';

const cli = loadBundle(fileURLToPath(new URL('../dist/bulwark.cjs', import.meta.url)));
if (cli) {
  await cli.runCli(process.argv);
} else {
  process.stderr.write('bulwark: dist/ not built, running the TypeScript sources (run `npm run build`)\n');
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/main.ts');
}
