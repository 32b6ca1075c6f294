import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { BULWARK_BIN } from '../test-support/server.ts';

const exec = promisify(execFile);
const dataDir = mkdtempSync(path.join(tmpdir(), 'bulwark-cli-'));

async function bulwark(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await exec(process.execPath, [BULWARK_BIN, ...args], {
      env: { ...process.env, BULWARK_DATA: dataDir, ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('the bulwark command', () => {
  // Only `init` and `serve` create a data directory; the other commands need one.
  beforeAll(async () => {
    expect((await bulwark(['init'])).code).toBe(0);
  });

  it('lists its commands in --help', async () => {
    const r = await bulwark(['--help']);
    expect(r.code).toBe(0);
    for (const cmd of ['serve', 'device', 'pki', 'audit-log']) expect(r.stdout).toContain(cmd);
    expect((await bulwark(['device', '--help'])).stdout).toMatch(/add.*\n[\s\S]*token[\s\S]*revoke/);
  });

  it('stops start-up on an invalid setting with one line naming the key and what is allowed', async () => {
    const r = await bulwark(['serve'], { BULWARK_MQTT_PORT: 'eighty' });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/mqtt\.port \(from BULWARK_MQTT_PORT\): must be a port number/);
  });

  it('answers bad input with one line and a non-zero exit, and changes nothing', async () => {
    const bad = await bulwark(['device', 'add', 'a/b']);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim()).toMatch(/^bulwark: device id must be/);
    const missing = await bulwark(['device', 'token', 'ghost']);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim()).toBe('bulwark: device ghost does not exist');
    const ttl = await bulwark(['device', 'token', 'ghost', '--ttl', 'forever']);
    expect(ttl.stderr.trim()).toMatch(/--ttl "forever" is not a duration/);
    expect(JSON.parse((await bulwark(['device', 'list', '--json'])).stdout)).toEqual([]);
    expect((await bulwark(['nonsense'])).code).not.toBe(0);
  });

  it('adds, lists and shows devices, and its audit log verifies', async () => {
    expect((await bulwark(['device', 'add', 'cli-1', '--group', 'line-3'])).code).toBe(0);
    const token = JSON.parse(
      (await bulwark(['device', 'token', 'cli-1', '--ttl', '15m', '--json'])).stdout,
    ) as { token: string; expiresAt: string };
    expect(token.token).toMatch(/^bwk_[A-Za-z0-9_-]{43}$/);
    expect(Date.parse(token.expiresAt) - Date.now()).toBeGreaterThan(14 * 60_000);
    const table = (await bulwark(['device', 'list'])).stdout;
    expect(table).toMatch(/^ID\s+GROUP\s+STATUS/);
    expect(table).toMatch(/cli-1\s+line-3\s+registered/);
    const verify = JSON.parse((await bulwark(['audit-log', 'verify', '--json'])).stdout) as {
      ok: boolean;
      entries: number;
    };
    expect(verify.ok).toBe(true);
    expect(verify.entries).toBeGreaterThanOrEqual(2);
  });
});
