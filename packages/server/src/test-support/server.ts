import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { testConfig, type Config } from '../config/index.ts';
import { createLogger } from '../logger.ts';
import { createPlatform, startServer, type Platform, type RunningServer } from '../platform.ts';

const run = promisify(execFile);
export const BULWARK_BIN = fileURLToPath(new URL('../../bin/bulwark.js', import.meta.url));

export interface TestServer {
  platform: Platform;
  server: RunningServer;
  config: Config;
  dataDir: string;
  caFile: string;
  httpsUrl: string;
  mqttUrl: string;
  /** Runs the real `bulwark` CLI in a child process against this server's data directory. */
  cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

/** The real server on ephemeral ports with a temporary data directory. */
export async function startTestServer(overrides: Record<string, unknown> = {}): Promise<TestServer> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'bulwark-e2e-'));
  const config = testConfig({ dataDir, 'mqtt.port': 0, 'https.port': 0, bind: '127.0.0.1', 'events.tailInterval': 100, logLevel: 'silent', ...overrides });
  const platform = await createPlatform(config, { logger: createLogger(config.logLevel) });
  const server = await startServer(platform);
  let stopped = false;
  return {
    platform,
    server,
    config,
    dataDir,
    caFile: server.caChainFile,
    httpsUrl: `https://localhost:${server.httpsPort}`,
    mqttUrl: `mqtts://localhost:${server.mqttPort}`,
    async cli(args) {
      try {
        const { stdout, stderr } = await run(process.execPath, [BULWARK_BIN, ...args, '--data', dataDir], { env: { ...process.env, BULWARK_LOG_LEVEL: 'error' } });
        return { code: 0, stdout, stderr };
      } catch (err) {
        const e = err as { code?: number; stdout?: string; stderr?: string };
        return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.close('test');
      await platform.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
