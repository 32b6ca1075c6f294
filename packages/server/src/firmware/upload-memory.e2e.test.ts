import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Principal } from '../users/index.ts';
import { startTestServer, type TestServer } from '../test-support/server.ts';

const GiB = 1024 ** 3;
const BLOCK = randomBytes(1024 * 1024);

/** 1 GiB made of a repeated random 1 MiB block, produced as it is read. */
const gibibyte = () =>
  Readable.from(
    (function* () {
      for (let i = 0; i < GiB / BLOCK.length; i++) yield BLOCK;
    })(),
  );

describe('uploading a 1 GiB release', () => {
  let s: TestServer;
  let token: string;

  beforeAll(async () => {
    s = await startTestServer();
    const { user } = await s.platform.users.create({ username: 'big-uploader', role: 'admin' }, 'test');
    const principal: Principal = {
      userId: user.id,
      username: user.username,
      role: 'admin',
      groups: null,
      via: 'session',
      sessionState: 'active',
    };
    token = (await s.platform.users.createToken(principal, { name: 'big', expiresInMs: 3_600_000 })).token;
  });
  afterAll(async () => s?.stop());

  it('streams it to disk over HTTPS while the process memory stays flat', async () => {
    const hash = createHash('sha256');
    for (let i = 0; i < GiB / BLOCK.length; i++) hash.update(BLOCK);
    const sha256 = hash.digest('hex');
    const release = await s.platform.firmware.releases.create(
      {
        name: 'big-fw',
        version: '1.0.0',
        hardwareIds: ['pump-v2'],
        securityVersion: 1,
        endOfSupport: '2099-01-01',
        size: GiB,
        sha256,
      },
      'test',
    );

    global.gc?.();
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 50);
    const status = await new Promise<number>((resolve, reject) => {
      const req = https.request(`${s.httpsUrl}/api/v1/firmware/releases/${release.id}/artifact`, {
        method: 'PUT',
        ca: readFileSync(s.caFile, 'utf8'),
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/octet-stream',
          'content-length': String(GiB),
        },
      });
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      pipeline(gibibyte(), req).catch(reject);
    });
    clearInterval(sampler);

    expect(status).toBe(200);
    expect((await s.platform.firmware.releases.get(release.id)).status).toBe('ready');
    expect(statSync(path.join(s.dataDir, 'firmware', 'artifacts', sha256)).size).toBe(GiB);
    // Client and server share this process; the 1 GiB never is in memory, only buffers of a few MiB.
    const grewMiB = (peak - baseline) / 1024 ** 2;
    console.info(`1 GiB upload: RSS grew by ${grewMiB.toFixed(1)} MiB`);
    expect(grewMiB).toBeLessThan(150);
  }, 180_000);
});
