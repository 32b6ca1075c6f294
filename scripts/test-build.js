// vitest globalSetup: rebuilds the command bundles when a source is newer than them, so that end-to-end
// tests which spawn `bulwark` or `bulwark-agent` (test-support/server.ts BULWARK_BIN) run the code under
// test, never a stale build. If the build fails, the bundles are removed and the commands run the
// TypeScript sources instead (bin/*.js falls back to tsx), which fail the same way the sources do.
/* global process, URL -- Node.js globals (scripts run on Node, outside the TypeScript project) */
import { readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildAll, targets } from './build.js';

const root = fileURLToPath(new URL('..', import.meta.url));

function newest(dir) {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) latest = Math.max(latest, newest(full));
    else if (/\.(ts|js|json)$/.test(entry.name)) latest = Math.max(latest, statSync(full).mtimeMs);
  }
  return latest;
}

function stale() {
  const inputs = Math.max(
    ...['protocol', 'server', 'device'].map((p) => newest(path.join(root, 'packages', p, 'src'))),
    statSync(path.join(root, 'scripts', 'build.js')).mtimeMs,
    statSync(path.join(root, 'package-lock.json')).mtimeMs,
  );
  return targets.some(({ outfile }) => {
    try {
      return statSync(path.join(root, outfile)).mtimeMs < inputs;
    } catch {
      return true;
    }
  });
}

export async function setup() {
  if (!stale()) return;
  try {
    await buildAll({ quiet: true });
  } catch (err) {
    for (const { outfile } of targets)
      rmSync(path.join(root, path.dirname(outfile)), { recursive: true, force: true });
    process.stderr.write(
      `test set-up: the command bundles did not build, the CLI runs from sources: ${err.message}\n`,
    );
  }
}
