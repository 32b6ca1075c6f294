#!/usr/bin/env node
// Builds the web console into dist/ with Vite's JS API (no config file: everything is here). Run by the root
// build (scripts/build.js: `npm install`, `npm run build`, and before tests when a console input changed).
//
// The server serves dist/ under a strict Content-Security-Policy (script-src/style-src 'self'), so the build
// emits external files only: no inline script (no module-preload polyfill), no data: URLs for assets, and the
// CSS as a file linked from index.html. Names are content-hashed: the server caches /assets/* for a year.
/* global process, URL -- Node.js globals (scripts run on Node, outside the TypeScript project) */
import react from '@vitejs/plugin-react';
import { rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';

export const consoleDir = fileURLToPath(new URL('.', import.meta.url));
export const consoleDist = path.join(consoleDir, 'dist');
/** What the build reads besides node_modules: the tests' set-up rebuilds when one is newer than dist. */
export const consoleInputs = ['index.html', 'src', 'build.js', '../protocol/src'].map((p) =>
  path.join(consoleDir, p),
);

export async function buildConsole({ quiet = false } = {}) {
  const started = Date.now();
  // Built beside and swapped into place: a server reading dist/ meanwhile sees the old build or the new one.
  const staging = path.join(consoleDir, `.dist-${process.pid}`);
  const previous = path.join(consoleDir, `.dist-old-${process.pid}`);
  try {
    await build({
      root: consoleDir,
      configFile: false,
      base: '/',
      publicDir: false,
      logLevel: 'error',
      clearScreen: false,
      plugins: [react()],
      build: {
        outDir: staging,
        emptyOutDir: true,
        target: 'es2022',
        assetsInlineLimit: 0,
        modulePreload: { polyfill: false },
        sourcemap: false,
        reportCompressedSize: false,
      },
    });
    await rename(consoleDist, previous).catch((err) => {
      if (err.code !== 'ENOENT') throw err;
    });
    await rename(staging, consoleDist);
  } finally {
    await rm(staging, { recursive: true, force: true });
    await rm(previous, { recursive: true, force: true });
  }
  if (!quiet) process.stdout.write(`built packages/console/dist in ${Date.now() - started} ms\n`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await buildConsole({ quiet: process.argv.includes('--quiet') });
}
