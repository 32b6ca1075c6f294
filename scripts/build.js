#!/usr/bin/env node
// Compiles the `bulwark` and `bulwark-agent` commands to JavaScript bundles, so that a command starts
// without transpiling TypeScript or resolving hundreds of module files at every run (through tsx a
// command took 3-10 s on a 2-core machine; see docs/performance.md for the figure with the bundle).
//
// - The workspace packages (@bulwark/*, TypeScript sources) and the pure-JavaScript npm dependencies are
//   bundled. Native modules (better-sqlite3, @node-rs/argon2) stay external and load from node_modules
//   with their binaries, as do optional dependencies that are not installed (requiring one fails at run
//   time exactly as it would without the bundle).
// - CommonJS dependencies get Node's ESM interop (`import x from 'cjs'` is `module.exports`), the
//   semantics the sources are type-checked and tested with (see nodeInterop).
// - A dependency or source that reads files next to itself gets its real location (ownDirname,
//   ownImportMeta): the bundle is built in place, beside node_modules and the sources.
// Run by `npm install`/`npm ci` (the root `prepare` script), `npm run build`, and before every test run
// (vitest globalSetup), so that tests which spawn the commands never run stale code.
//
// It also builds the web console (packages/console/build.js, Vite) into packages/console/dist, which the
// server serves at `/`.
/* global process, URL -- Node.js globals (scripts run on Node, outside the TypeScript project) */
import { build } from 'esbuild';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildConsole } from '@bulwark/console/build.js';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Each bundle is CommonJS (.cjs) so that bin/*.js can run it with a V8 code cache (see bin/load-bundle.js). */
export const targets = [
  { entry: 'packages/server/src/cli/index.ts', outfile: 'packages/server/dist/bulwark.cjs' },
  { entry: 'packages/device/src/cli.ts', outfile: 'packages/device/dist/bulwark-agent.cjs' },
];

/** Native addons: their .node binaries are found relative to their own package. */
const native = ['better-sqlite3', '@node-rs/argon2'];

/** Bare imports that do not resolve (optional dependencies not installed) stay external. */
const externalIfMissing = {
  name: 'external-if-missing',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, async (args) => {
      if (args.pluginData === 'retry' || args.path.startsWith('node:')) return undefined;
      const resolved = await b.resolve(args.path, {
        kind: args.kind,
        importer: args.importer,
        resolveDir: args.resolveDir,
        pluginData: 'retry',
      });
      return resolved.errors.length > 0 ? { path: args.path, external: true } : resolved;
    });
  },
};

/**
 * A bundled CommonJS module that finds files next to itself (CycloneDX reads its JSON schemas that way)
 * gets its own `__dirname`/`__filename`, resolved at run time relative to the bundle, so the bundle keeps
 * working when the checkout moves together with its node_modules.
 */
function ownDirname(outdir) {
  return {
    name: 'own-dirname',
    setup(b) {
      b.onLoad({ filter: /[\\/]node_modules[\\/].*\.c?js$/ }, async (args) => {
        const source = await readFile(args.path, 'utf8');
        if (!/\b__(dirname|filename)\b/.test(source)) return undefined;
        const relative = JSON.stringify(path.relative(outdir, args.path));
        return {
          contents: `var __filename = __bulwarkPath.resolve(__bulwarkDir, ${relative}), __dirname = __bulwarkPath.dirname(__filename);\n${source}`,
          loader: 'js',
          resolveDir: path.dirname(args.path),
        };
      });
    },
  };
}

/**
 * A workspace source that reads a file beside it (`new URL('./x.json', import.meta.url)`) gets its own
 * import.meta.url/dirname/filename, resolved at run time relative to the bundle like ownDirname's.
 */
function ownImportMeta(outdir) {
  return {
    name: 'own-import-meta',
    setup(b) {
      b.onLoad({ filter: /[\\/]packages[\\/][^\\/]+[\\/]src[\\/].*\.ts$/ }, async (args) => {
        const source = await readFile(args.path, 'utf8');
        if (!source.includes('import.meta')) return undefined;
        const file = `__bulwarkPath.resolve(__bulwarkDir, ${JSON.stringify(path.relative(outdir, args.path))})`;
        return {
          contents: source
            .replaceAll('import.meta.url', `require('node:url').pathToFileURL(${file}).href`)
            .replaceAll('import.meta.dirname', `__bulwarkPath.dirname(${file})`)
            .replaceAll('import.meta.filename', file),
          loader: 'ts',
        };
      });
    },
  };
}

// What the prologues of ownDirname and ownImportMeta refer to: the bundle's own directory.
const banner = "const __bulwarkPath = require('node:path'), __bulwarkDir = __dirname;";

/**
 * `__toESM(require_x())` → `__toESM(require_x(), 1)`: Node's interop for a default import of CommonJS
 * (esbuild applies it only to .mjs importers, and our importers are .ts in "type": "module" packages).
 */
function nodeInterop(code) {
  return code.replace(/__toESM\((require_[\w$]+\(\))\)/g, '__toESM($1, 1)');
}

/** The command bundles (esbuild). */
export async function buildBundles({ quiet = false } = {}) {
  const started = Date.now();
  await Promise.all(
    targets.map(async ({ entry, outfile }) => {
      const file = path.join(root, outfile);
      const result = await build({
        absWorkingDir: root,
        entryPoints: [entry],
        outfile: file,
        write: false,
        bundle: true,
        format: 'cjs',
        platform: 'node',
        target: 'node20',
        external: native,
        banner: { js: banner },
        sourcemap: 'linked',
        sourcesContent: false,
        legalComments: 'none',
        logLevel: 'error',
        plugins: [externalIfMissing, ownDirname(path.dirname(file)), ownImportMeta(path.dirname(file))],
      });
      // Written beside and renamed into place: a command started during a rebuild (tests run several at
      // once) reads either the old bundle or the new one, never half of one.
      await mkdir(path.dirname(file), { recursive: true });
      for (const output of result.outputFiles) {
        const tmp = `${output.path}.${process.pid}.tmp`;
        const text = output.path === file ? nodeInterop(output.text) : output.text;
        await writeFile(tmp, text);
        await rename(tmp, output.path);
      }
      // Code caches of earlier builds (bin/load-bundle.js names each after its bundle's size and time).
      const dir = path.dirname(file);
      for (const name of await readdir(dir))
        if (name.endsWith('.cache') && !name.startsWith('.')) await rm(path.join(dir, name), { force: true });
    }),
  );
  if (!quiet)
    process.stdout.write(`built ${targets.map((t) => t.outfile).join(', ')} in ${Date.now() - started} ms\n`);
}

/** The command bundles and the web console, side by side. */
export async function buildAll({ quiet = false } = {}) {
  await Promise.all([buildBundles({ quiet }), buildConsole({ quiet })]);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await buildAll({ quiet: process.argv.includes('--quiet') });
}
