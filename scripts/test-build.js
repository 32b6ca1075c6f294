// vitest globalSetup: rebuilds the command bundles when a source is newer than them, so that end-to-end
// tests which spawn `bulwark` or `bulwark-agent` (test-support/server.ts BULWARK_BIN) run the code under
// test, never a stale build. If the build fails, the bundles are removed and the commands run the
// TypeScript sources instead (bin/*.js falls back to tsx), which fail the same way the sources do.
// Likewise the web console (packages/console/dist, served at `/` and driven by the console's browser test)
// is rebuilt when one of its inputs is newer than its index.html; if that build fails, dist is removed and
// the server answers `/` with a problem saying so.
/* global process, URL -- Node.js globals (scripts run on Node, outside the TypeScript project) */
import { readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildBundles, targets } from './build.js';
import { buildConsole, consoleDist, consoleInputs } from '@bulwark/console/build.js';

const root = fileURLToPath(new URL('..', import.meta.url));

function newest(dir, pattern = /\.(ts|js|json)$/) {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) latest = Math.max(latest, newest(full, pattern));
    else if (pattern.test(entry.name)) latest = Math.max(latest, statSync(full).mtimeMs);
  }
  return latest;
}

const mtime = (file) => {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
};

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

function consoleStale() {
  const built = mtime(path.join(consoleDist, 'index.html'));
  if (built === undefined) return true;
  const inputs = Math.max(
    ...consoleInputs.map((p) => (statSync(p).isDirectory() ? newest(p, /./) : statSync(p).mtimeMs)),
    statSync(path.join(root, 'package-lock.json')).mtimeMs,
  );
  return built < inputs;
}

async function setupConsole() {
  if (!consoleStale()) return;
  try {
    await buildConsole({ quiet: true });
  } catch (err) {
    rmSync(consoleDist, { recursive: true, force: true });
    process.stderr.write(`test set-up: the web console did not build: ${err.message}\n`);
  }
}

export async function setup() {
  await Promise.all([setupBundles(), setupConsole()]);
}

async function setupBundles() {
  if (!stale()) return;
  try {
    await buildBundles({ quiet: true });
  } catch (err) {
    for (const { outfile } of targets)
      rmSync(path.join(root, path.dirname(outfile)), { recursive: true, force: true });
    process.stderr.write(
      `test set-up: the command bundles did not build, the CLI runs from sources: ${err.message}\n`,
    );
  }
}
