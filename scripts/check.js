#!/usr/bin/env node
// The static checks of `npm test`: the type-check and the lint (ESLint, then Prettier) side by side, since
// both are CPU-bound and the machine has more than one core. Exits non-zero when either fails, after both
// have finished (so every finding is printed).
/* global process, console -- Node.js globals (scripts run on Node, outside the TypeScript project) */
import { spawn } from 'node:child_process';

const run = (name, command, args) =>
  new Promise((resolve) => {
    const child = spawn(command, args, { stdio: 'inherit', shell: false });
    child.on('close', (code, signal) => {
      if (code !== 0) console.error(`${name} failed${signal ? ` (${signal})` : ''}`);
      resolve(code === 0);
    });
    child.on('error', (err) => {
      console.error(`${name} could not start: ${err.message}`);
      resolve(false);
    });
  });

const npx = process.platform === 'win32' ? 'npx.cmd' : 'npx';
const results = await Promise.all([
  run('typecheck', npx, ['tsc', '-p', 'tsconfig.json', '--noEmit']),
  run('lint', 'sh', ['-c', 'npx eslint . && npx prettier --check .']),
]);
process.exit(results.every(Boolean) ? 0 : 1);
