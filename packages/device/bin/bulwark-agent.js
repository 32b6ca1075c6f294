#!/usr/bin/env node
// Runs the compiled bundle (dist/, built by `npm install` and `npm run build`); without one, the
// TypeScript sources through tsx, which is much slower to start.
import { fileURLToPath } from 'node:url';
import { loadBundle } from './load-bundle.js';

let cli = loadBundle(fileURLToPath(new URL('../dist/bulwark-agent.cjs', import.meta.url)));
if (!cli) {
  process.stderr.write(
    'bulwark-agent: dist/ not built, running the TypeScript sources (run `npm run build`)\n',
  );
  const { register } = await import('tsx/esm/api');
  register();
  cli = await import('../src/cli.ts');
}
process.exitCode = await cli.main(process.argv.slice(2));
