// Runs a CommonJS bundle made by scripts/build.js with a V8 code cache kept beside it, so that a command
// does not re-parse megabytes of JavaScript at every start: the first run compiles and writes the cache,
// later runs deserialize it (the cache is per Node.js version and is ignored by V8 if it does not fit).
// The same file is in packages/server/bin and packages/device/bin: the device package ships on its own and
// never depends on the server package (DESIGN.md, Layout); keep the two copies identical.
import { readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createRequire, Module } from 'node:module';
import path from 'node:path';
import vm from 'node:vm';

/** The bundle's exports, or undefined when it has not been built (then the caller runs the sources). */
export function loadBundle(file) {
  let stat;
  try {
    stat = statSync(file);
  } catch {
    return undefined;
  }
  const source = readFileSync(file, 'utf8');
  // V8 checks a cache against the source's length only: the name ties it to this very build.
  const cacheFile = `${file}.${stat.size}-${Math.trunc(stat.mtimeMs)}-${process.version}-${process.arch}.cache`;
  let cachedData;
  try {
    cachedData = readFileSync(cacheFile);
  } catch {
    cachedData = undefined;
  }
  const script = new vm.Script(Module.wrap(source), { filename: file, cachedData });
  if (cachedData === undefined || script.cachedDataRejected) {
    // Written once the command has run, so the cache also holds the functions it compiled on the way.
    process.once('exit', () => {
      try {
        const tmp = `${cacheFile}.${process.pid}.tmp`;
        writeFileSync(tmp, script.createCachedData());
        renameSync(tmp, cacheFile);
      } catch {
        // A read-only installation runs without the cache.
      }
    });
  }
  const module = { exports: {}, filename: file, id: file };
  script.runInThisContext()(module.exports, createRequire(file), module, file, path.dirname(file));
  return module.exports;
}
