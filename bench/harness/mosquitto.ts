import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const CANDIDATES = ['/usr/sbin/mosquitto', '/usr/local/sbin/mosquitto', '/usr/bin/mosquitto'];

function findBinary(): string | undefined {
  for (const candidate of CANDIDATES) if (existsSync(candidate)) return candidate;
  try {
    return execFileSync('which', ['mosquitto'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * The Mosquitto binary, installed from the distribution (Debian: `apt-get install mosquitto`) when it is
 * missing and we may; otherwise the reason Mosquitto is skipped.
 */
export function ensureMosquitto(
  log: (line: string) => void,
): { binary: string; version: string } | { skipped: string } {
  let binary = findBinary();
  if (!binary) {
    const isRoot = process.getuid?.() === 0;
    if (!isRoot)
      return {
        skipped: 'mosquitto is not installed and installing it needs root (apt-get install mosquitto)',
      };
    if (!existsSync('/usr/bin/apt-get'))
      return { skipped: 'mosquitto is not installed and there is no apt-get here' };
    log('mosquitto: not found, installing it with apt-get');
    try {
      execFileSync('apt-get', ['install', '-y', '--no-install-recommends', 'mosquitto'], {
        stdio: ['ignore', 'ignore', 'pipe'],
        timeout: 180_000,
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      });
    } catch (err) {
      return { skipped: `apt-get install mosquitto failed: ${(err as Error).message.split('\n')[0] ?? ''}` };
    }
    binary = findBinary();
    if (!binary) return { skipped: 'apt-get installed mosquitto but no mosquitto binary was found' };
  }
  // `mosquitto -h` prints its usage with the version (and exits non-zero on some versions).
  const help = spawnSync(binary, ['-h'], { encoding: 'utf8', timeout: 10_000 });
  const version = /mosquitto version (\S+)/.exec(`${help.stdout}${help.stderr}`)?.[1] ?? 'unknown';
  if (!version.startsWith('2.'))
    return { skipped: `mosquitto ${version} found; the bench compares against Mosquitto 2` };
  return { binary, version };
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function waitForPort(port: number, child: ChildProcess, maxMs: number): Promise<void> {
  const deadline = Date.now() + maxMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`mosquitto exited with code ${child.exitCode}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    await sleep(50);
  }
  throw new Error(`mosquitto did not listen on ${port} within ${maxMs} ms`);
}

export interface MosquittoTls {
  caFile: string;
  certFile: string;
  keyFile: string;
}

/**
 * Mosquitto 2 with the security Bulwark gives: TLS 1.2+, a client certificate from the same CA required,
 * the certificate's CN as the user name, and an ACL confining each device to `devices/<its id>/#`. The
 * observer identity (only for the one-subscriber scenario) may additionally read every device's topics.
 */
export async function startMosquitto(
  binary: string,
  tlsFiles: MosquittoTls,
  observerId: string,
): Promise<{ child: ChildProcess; port: number; stderrTail(): string }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-bench-mosquitto-'));
  const port = await freePort();
  const aclFile = path.join(dir, 'acl');
  writeFileSync(
    aclFile,
    `pattern readwrite devices/%u/#\n\nuser ${observerId}\ntopic read devices/+/telemetry\n`,
  );
  const confFile = path.join(dir, 'mosquitto.conf');
  writeFileSync(
    confFile,
    [
      // As root, Mosquitto would drop to its own user, which cannot read the bench's private temporary
      // files (key, ACL). Staying root changes nothing measured; the listener is loopback only.
      ...(process.getuid?.() === 0 ? ['user root'] : []),
      'per_listener_settings false',
      'persistence false',
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      'connection_messages false',
      'allow_anonymous false',
      `acl_file ${aclFile}`,
      `listener ${port} 127.0.0.1`,
      `cafile ${tlsFiles.caFile}`,
      `certfile ${tlsFiles.certFile}`,
      `keyfile ${tlsFiles.keyFile}`,
      'tls_version tlsv1.2',
      'require_certificate true',
      'use_identity_as_username true',
      '',
    ].join('\n'),
  );
  const child = spawn(binary, ['-c', confFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  let tail = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-4000);
  });
  child.on('error', () => undefined); // reported through the port check
  await waitForPort(port, child, 10_000).catch((err: Error) => {
    child.kill('SIGKILL');
    throw new Error(`${err.message}: ${tail}`);
  });
  return { child, port, stderrTail: () => tail };
}
