#!/usr/bin/env node
// `npm run demo`: Bulwark with a simulated fleet under attack, for a first look at the web console
// (docs/demo.md). It
//   1. creates a demo data directory (first run) or reuses it, and keeps telemetry of the devices for a day;
//   2. makes sure the first administrator can sign in: a one-time setup secret for `admin`, unless the account
//      was already set up in an earlier run;
//   3. starts the server (`bulwark serve`) and, once it listens, `bulwark simulate` with 50 devices and an
//      attack every 3 minutes, in turn;
//   4. prints the console's address and the setup secret.
// Ctrl-C stops the fleet (its devices disconnect), then the server.
//
// The data directory is in the system's temporary directory, not in the repository: the lint of `npm test`
// would read its files. `--data DIR` puts it elsewhere, `--fresh` starts over.
/* global process, console, URL, setTimeout, clearTimeout -- Node.js globals (scripts run on Node, outside the TypeScript project) */
import { execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';

const BIN = fileURLToPath(new URL('../packages/server/bin/bulwark.js', import.meta.url));
const USERNAME = 'admin';
const run = promisify(execFile);

const usage = `usage: npm run demo -- [options]
  --data DIR            the demo's data directory (default: ${path.join(tmpdir(), 'bulwark-demo-<user>')})
  --fresh               delete the demo data directory first and start over
  --devices N           simulated devices (default 50)
  --attack-every D      one attack this often, in turn (default 3m)
  --https-port N        API and console (default 8443)
  --mqtt-port N         MQTT over TLS (default 8883)
  --device-port N       the device listener (default 8444)`;

function options() {
  const { values } = parseArgs({
    options: {
      data: { type: 'string' },
      fresh: { type: 'boolean', default: false },
      devices: { type: 'string', default: '50' },
      'attack-every': { type: 'string', default: '3m' },
      'https-port': { type: 'string', default: '8443' },
      'mqtt-port': { type: 'string', default: '8883' },
      'device-port': { type: 'string', default: '8444' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  const user = (() => {
    try {
      return userInfo().username.replace(/[^A-Za-z0-9_.-]/g, '') || 'user';
    } catch {
      return 'user';
    }
  })();
  return { ...values, data: path.resolve(values.data ?? path.join(tmpdir(), `bulwark-demo-${user}`)) };
}

function fail(message) {
  console.error(`demo: ${message}`);
  process.exit(1);
}

/** A `bulwark` command that answers JSON (the demo's own steps). */
async function bulwark(args, data) {
  try {
    const { stdout } = await run(process.execPath, [BIN, ...args, '--data', data, '--json'], {
      env: { ...process.env, BULWARK_LOG_LEVEL: 'error' },
    });
    return JSON.parse(stdout);
  } catch (err) {
    const reason = (err.stderr ?? '').trim().split('\n').at(-1) || err.message;
    fail(`bulwark ${args.join(' ')}: ${reason}`);
  }
}

/** Deletes the data directory for --fresh, only when it holds Bulwark data (or nothing). */
function startOver(data) {
  if (!existsSync(data)) return;
  const entries = readdirSync(data);
  if (entries.length > 0 && !entries.includes('bulwark.db'))
    fail(`--fresh: ${data} does not look like a Bulwark data directory; not deleting it`);
  rmSync(data, { recursive: true, force: true });
}

/** The first administrator: a new one-time setup secret while the account has no password yet. */
async function administrator(data) {
  const users = await bulwark(['admin', 'list'], data);
  const admin = users.find((u) => u.username === USERNAME);
  if (!admin) return bulwark(['admin', 'create', '--username', USERNAME], data);
  if (admin.setupPending) return bulwark(['admin', 'reset', '--username', USERNAME], data);
  return undefined; // set up in an earlier run: sign in with its password and second factor
}

/** Starts `bulwark serve`; resolves with its ports once it says it is running. */
function startServer(o, children) {
  const server = spawn(
    process.execPath,
    [BIN, 'serve', '--data', o.data, '--https-port', o['https-port'], '--mqtt-port', o['mqtt-port']],
    {
      // Its own process group: Ctrl-C reaches the demo only, which stops the fleet first.
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, BULWARK_LOG_LEVEL: 'warn', BULWARK_DEVICE_PORT: o['device-port'] },
    },
  );
  children.server = server;
  let errors = '';
  server.stderr.on('data', (chunk) => {
    errors += chunk;
    process.stderr.write(chunk);
  });
  return new Promise((resolve, reject) => {
    let out = '';
    server.stdout.on('data', (chunk) => {
      out += chunk;
      const https = /HTTPS \(API, EST\):\s+(https:\/\/\S+)/.exec(out);
      const mqtt = /MQTT over TLS:\s+(mqtts:\/\/\S+)/.exec(out);
      const ca = /CA chain:\s+(\S+)/.exec(out);
      if (https && mqtt && ca) resolve({ https: https[1], mqtt: mqtt[1] });
    });
    server.on('exit', (code) => {
      const inUse = /already in use/.test(errors)
        ? '\n  Another Bulwark (npm start?) may hold the ports: stop it, or choose others with' +
          ' npm run demo -- --https-port 9443 --mqtt-port 9883 --device-port 9444'
        : '';
      reject(new Error(`the server stopped (exit code ${code})${inUse}`));
    });
  });
}

function startFleet(o, urls, children) {
  const args = [BIN, 'simulate', '--data', o.data, '--devices', o.devices, '--attack', 'all'];
  args.push('--attack-every', o['attack-every'], '--url', urls.https, '--mqtt', urls.mqtt);
  const fleet = spawn(process.execPath, args, {
    detached: true,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, BULWARK_LOG_LEVEL: 'warn' },
  });
  children.fleet = fleet;
  return fleet;
}

function banner(o, urls, admin) {
  const account = admin
    ? [
        `  Username:       ${USERNAME}`,
        `  Setup secret:   ${admin.setupSecret}`,
        `                  one time, until ${new Date(admin.setupExpiresAt).toISOString()}: "Set up your account",`,
        '                  choose a password, then scan the TOTP QR code with an authenticator app',
      ]
    : [
        `  Username:       ${USERNAME} (set up in an earlier run: its password and TOTP code;`,
        `                  forgot them? npx bulwark admin reset --username ${USERNAME} --data ${o.data})`,
      ];
  console.log(
    [
      '',
      `Bulwark demo: the server, the web console and ${o.devices} simulated devices under attack.`,
      '',
      `  Console:        ${urls.https}/`,
      ...account,
      `  CA chain:       ${path.join(o.data, 'ca-chain.pem')} (import it into the browser, or accept the warning)`,
      `  Data:           ${o.data} (kept for the next run; npm run demo -- --fresh starts over)`,
      '',
      `An attack every ${o['attack-every']}, in turn: tamper, flood, scan, guess, clone, rogue-firmware (docs/demo.md).`,
      'Ctrl-C stops the fleet, then the server.',
      '',
    ].join('\n'),
  );
}

/** Stops a child with SIGTERM (SIGKILL after 15 s); resolves when it has exited. */
function stopChild(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

async function main() {
  const o = options();
  const children = {};
  let stopping = false;
  const stop = async (code) => {
    if (stopping) return;
    stopping = true;
    await stopChild(children.fleet);
    await stopChild(children.server);
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));
  // Whatever ends the demo ends its children too (they run in their own process groups).
  process.on('exit', () => {
    for (const child of [children.fleet, children.server])
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  });

  if (o.fresh) startOver(o.data);
  const init = await bulwark(['init'], o.data);
  console.log(`${init.created ? 'Created' : 'Using'} the demo data directory ${o.data}`);
  // The devices' telemetry is kept for a day, so the console can show it (docs/telemetry.md).
  await bulwark(['telemetry', 'enable', 'devices/+/telemetry', '--retention', '1d'], o.data);
  const admin = await administrator(o.data);
  let urls;
  try {
    urls = await startServer(o, children);
  } catch (err) {
    fail(err.message);
  }
  const fleet = startFleet(o, urls, children);
  banner(o, urls, admin);
  fleet.on('exit', (code) => {
    if (stopping) return;
    console.error(`demo: the simulated fleet stopped (exit code ${code}); stopping the server`);
    void stop(code === 0 ? 0 : 1);
  });
  children.server.on('exit', (code) => {
    if (stopping) return;
    console.error(`demo: the server stopped (exit code ${code}); stopping the fleet`);
    void stop(1);
  });
}

await main();
