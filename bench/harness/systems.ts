import type { ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type {
  DetectionEvidence,
  FirewallEvent,
  MonitorSetup,
  NodeBrokerApi,
  NodeBrokerKind,
} from '../brokers/index.ts';
import { spawnChild, type ChildHandle } from '../ipc/index.ts';
import type { Fixture } from './fixture.ts';
import { startMosquitto } from './mosquitto.ts';

export const systemNames = ['bulwark', 'aedes', 'mosquitto'] as const;
export type SystemName = (typeof systemNames)[number];

export const systemLabels: Record<SystemName, string> = {
  bulwark: 'Bulwark',
  aedes: 'Aedes',
  mosquitto: 'Mosquitto',
};

/** A broker under test, in its own process, measured from outside through /proc. */
export interface SystemUnderTest {
  readonly name: SystemName;
  readonly version: string;
  readonly port: number;
  readonly pid: number;
  /** Bulwark: its data directory (a copy of the fixture's), for the `bulwark` CLI beside the running server. */
  readonly dataDir?: string;
  /** Undefined while running; why it stopped otherwise. */
  exitStatus(): string | undefined;
  stderrTail(): string;
  /** Full garbage collection (Node brokers); a no-op for Mosquitto. */
  gc(): Promise<void>;
  /** TCP_NODELAY on new connections; false when the system does not offer the switch. */
  setNoDelay(on: boolean): Promise<boolean>;
  /** Bulwark: the firewall decisions its audit log recorded for a device since `from` (ms since the epoch). */
  firewallEvents?(deviceId: string, from: number): Promise<FirewallEvent[]>;
  /** Bulwark: puts a security profile and attaches it to a group of devices (the monitor's services). */
  monitorSetup?(setup: MonitorSetup): Promise<void>;
  /** Bulwark: what its audit log, alerts and meters hold about each device since `from`. */
  detectionEvidence?(deviceIds: string[], detector: string, from: number): Promise<DetectionEvidence[]>;
  /** Bulwark: puts a data schema (privacy), or removes the one of that name (`document` null). */
  privacySchema?(name: string, document: Record<string, unknown> | null): Promise<void>;
  profileStart?(intervalUs: number): Promise<void>;
  profileStop?(file: string): Promise<void>;
  stop(): Promise<void>;
}

function packageVersion(pkg: URL): string {
  return (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
}

async function startNodeBroker(kind: NodeBrokerKind, fixture: Fixture): Promise<SystemUnderTest> {
  const child: ChildHandle<NodeBrokerApi> = spawnChild(
    kind,
    new URL('../brokers/node-broker.ts', import.meta.url),
  );
  let runDir: string | undefined;
  try {
    let started: { port: number };
    if (kind === 'bulwark') {
      // Each start gets its own copy of the fixture: the audit log of one run never slows the next.
      runDir = mkdtempSync(path.join(tmpdir(), 'bulwark-bench-run-'));
      cpSync(fixture.dataDir, runDir, { recursive: true });
      started = await child.call('start', { kind, dataDir: runDir }, 120_000);
    } else {
      const tls = {
        key: readFileSync(fixture.serverKeyFile, 'utf8'),
        cert: readFileSync(fixture.serverCertFile, 'utf8'),
        ca: readFileSync(fixture.caFile, 'utf8'),
      };
      started = await child.call('start', { kind, tls }, 60_000);
    }
    const version =
      kind === 'bulwark'
        ? packageVersion(new URL('../../packages/server/package.json', import.meta.url))
        : packageVersion(new URL('../../node_modules/aedes/package.json', import.meta.url));
    return {
      name: kind,
      version,
      port: started.port,
      pid: child.pid,
      ...(runDir ? { dataDir: runDir } : {}),
      exitStatus: () => child.exitStatus(),
      stderrTail: () => child.stderrTail(),
      async gc() {
        await child.call('gc', {}, 30_000);
      },
      async setNoDelay(on) {
        return (await child.call('setNoDelay', { on }, 10_000)).supported;
      },
      ...(kind === 'bulwark'
        ? {
            async firewallEvents(deviceId: string, from: number) {
              return (await child.call('firewallEvents', { deviceId, from }, 30_000)).events;
            },
            async monitorSetup(setup: MonitorSetup) {
              await child.call('monitorSetup', setup, 60_000);
            },
            async detectionEvidence(deviceIds: string[], detector: string, from: number) {
              return (await child.call('detectionEvidence', { deviceIds, detector, from }, 60_000)).evidence;
            },
            async privacySchema(name: string, document: Record<string, unknown> | null) {
              await child.call('privacySchema', { name, document }, 60_000);
            },
          }
        : {}),
      async profileStart(intervalUs) {
        await child.call('profileStart', { intervalUs }, 10_000);
      },
      async profileStop(file) {
        await child.call('profileStop', { file }, 60_000);
      },
      async stop() {
        if (!child.exitStatus()) await child.call('stop', {}, 30_000).catch(() => undefined);
        await child.kill(5000);
        if (runDir) rmSync(runDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await child.kill(1000);
    if (runDir) rmSync(runDir, { recursive: true, force: true });
    throw new Error(`${kind} did not start: ${(err as Error).message}\n${child.stderrTail()}`);
  }
}

async function stopProcess(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

export async function startSystem(
  name: SystemName,
  fixture: Fixture,
  mosquitto: { binary: string; version: string } | undefined,
  observerId: string,
): Promise<SystemUnderTest> {
  if (name !== 'mosquitto') return startNodeBroker(name, fixture);
  if (!mosquitto) throw new Error('mosquitto is not available');
  const m = await startMosquitto(
    mosquitto.binary,
    { caFile: fixture.caFile, certFile: fixture.serverCertFile, keyFile: fixture.serverKeyFile },
    observerId,
  );
  const pid = m.child.pid;
  if (pid === undefined) throw new Error('mosquitto has no pid');
  return {
    name,
    version: mosquitto.version,
    port: m.port,
    pid,
    exitStatus: () =>
      m.child.exitCode !== null
        ? `exit code ${m.child.exitCode}`
        : m.child.signalCode
          ? `killed by ${m.child.signalCode}`
          : undefined,
    stderrTail: () => m.stderrTail(),
    gc: () => Promise.resolve(),
    setNoDelay: () => Promise.resolve(false),
    stop: () => stopProcess(m.child, 5000),
  };
}
