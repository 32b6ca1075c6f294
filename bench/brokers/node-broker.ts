/**
 * A broker under test that runs on Node, in its own process: Bulwark (the real server, everything on)
 * or bare Aedes (the engine Bulwark ran on before its own core; same TLS listener settings, no hooks at all).
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { Aedes } from 'aedes';
import { startTestServer, testConfig } from '../bulwark/index.ts';
import { serve } from '../ipc/index.ts';

export const nodeBrokerKinds = ['bulwark', 'aedes'] as const;
export type NodeBrokerKind = (typeof nodeBrokerKinds)[number];

/** A firewall decision Bulwark recorded in its audit log. */
export interface FirewallEvent {
  type: string;
  /** When it was appended (ms since the epoch). */
  ts: number;
  data: Record<string, unknown>;
}

/** A monitor set-up for the detection scenario: one security profile, attached to one group of devices. */
export interface MonitorSetup {
  profile: string;
  /** The profile document, as `PUT /api/v1/security-profiles/{name}` takes it. */
  document: Record<string, unknown>;
  group: string;
  /** Devices moved into the group. */
  deviceIds: string[];
}

/** What Bulwark recorded about one device of the detection scenario. */
export interface DetectionEvidence {
  deviceId: string;
  /** Its audit-log entries from a time on (alerts, responses, quarantine, denials, firewall, sessions). */
  events: FirewallEvent[];
  /** The alert the behaviour raised: when the engine saw the threshold crossed, and its evidence. */
  alert?: { detector: string; firstSeen: number; evidence: Record<string, unknown> };
  /** Publishes the broker accepted from the device (its meter's messages_sent total). */
  accepted: number;
}

interface Running {
  port: number;
  /** Bulwark only: the `firewall.*` events its audit log holds for a device, from a time on. */
  firewallEvents?(deviceId: string, from: number): Promise<FirewallEvent[]>;
  /** Bulwark only: a security profile put and attached to a group, through the monitor's services. */
  monitorSetup?(setup: MonitorSetup): Promise<{ version: number }>;
  /** Bulwark only: the detection scenario's evidence for each device, from the audit log, alerts and meters. */
  detectionEvidence?(deviceIds: string[], detector: string, from: number): Promise<DetectionEvidence[]>;
  /** Bulwark only: puts a data schema (privacy), or removes the one of that name (`document` null). */
  privacySchema?(name: string, document: Record<string, unknown> | null): Promise<void>;
  /** Bare Aedes only: TCP_NODELAY on connections accepted from now on. */
  setNoDelay?(on: boolean): void;
  close(): Promise<void>;
}

let running: Running | undefined;
let profiler: Session | undefined;

/**
 * Bulwark as `bulwark serve` runs it, on a copy of the bench fixture's data directory. The test support
 * raises the per-address connection limits (its clients all come from 127.0.0.1); the bench's devices each
 * have their own address, so the firewall runs with its defaults here, every one of them.
 */
async function startBulwark(dataDir: string): Promise<Running> {
  const firewallDefaults = Object.fromEntries(
    Object.entries(testConfig({}).firewall).map(([key, value]) => [`firewall.${key}`, value]),
  );
  const server = await startTestServer(
    {
      logLevel: 'info',
      'events.tailInterval': 200,
      'https.port': 0,
      'mqtt.port': 0,
      ...firewallDefaults,
    },
    { dataDir },
  );
  return {
    port: server.server.mqttPort,
    async firewallEvents(deviceId, from) {
      await server.platform.events.flush();
      const entries = await server.platform.audit.query({
        subject: `device:${deviceId}`,
        from,
        limit: 1000,
      });
      return entries
        .filter((e) => e.type.startsWith('firewall.'))
        .map((e) => ({ type: e.type, ts: e.ts, data: e.data }));
    },
    // The services behind `PUT /api/v1/devices/{id}`, `PUT /api/v1/security-profiles/{name}` and
    // `POST /api/v1/security-profiles/{name}/attachments` (what `bulwark security-profile put|attach` does).
    async monitorSetup(setup) {
      const { devices, monitor } = server.platform;
      for (const id of setup.deviceIds) await devices.update(id, { group: setup.group }, 'user:bench');
      await monitor.profiles.put(setup.profile, setup.document, 'user:bench');
      const profile = await monitor.profiles.attach(
        setup.profile,
        { kind: 'group', target: setup.group },
        'user:bench',
      );
      await server.platform.events.flush();
      return { version: profile.version };
    },
    async detectionEvidence(deviceIds, detector, from) {
      const { audit, events, monitor } = server.platform;
      await events.flush();
      const out: DetectionEvidence[] = [];
      for (const deviceId of deviceIds) {
        const entries = await audit.query({ subject: `device:${deviceId}`, from, limit: 1000 });
        const [alert] = await monitor.alerts.list({ deviceId, detector, limit: 1 });
        out.push({
          deviceId,
          events: entries.map((e) => ({ type: e.type, ts: e.ts, data: e.data })),
          ...(alert
            ? { alert: { detector: alert.detector, firstSeen: alert.firstSeen, evidence: alert.evidence } }
            : {}),
          accepted: monitor.engine.meter(deviceId).totals[0] ?? 0,
        });
      }
      return out;
    },
    // What `bulwark data-schema put FILE` and `bulwark data-schema remove NAME` do.
    async privacySchema(name, document) {
      const { privacy, events } = server.platform;
      if (document) await privacy.putSchema(document, 'user:bench');
      else await privacy.removeSchema(name, 'user:bench');
      await events.flush();
    },
    close: () => server.stop({ keepData: true }),
  };
}

/** Aedes, the engine Bulwark ran on before its own core: its broker options, Bulwark's TLS listener, no hooks. */
async function startAedes(tlsFiles: { key: string; cert: string; ca: string }): Promise<Running> {
  const aedes = await Aedes.createBroker({
    connectTimeout: 10_000,
    heartbeatInterval: 60_000,
    drainTimeout: 30_000,
  });
  let noDelay = false;
  const server = tls.createServer(
    {
      key: tlsFiles.key,
      cert: tlsFiles.cert,
      ca: tlsFiles.ca,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
    },
    (socket) => {
      if (noDelay) socket.setNoDelay(true);
      aedes.handle(socket);
    },
  );
  server.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  return {
    port: (server.address() as AddressInfo).port,
    setNoDelay(on) {
      noDelay = on;
    },
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
    },
  };
}

const methods = {
  async start(p: {
    kind: NodeBrokerKind;
    dataDir?: string;
    tls?: { key: string; cert: string; ca: string };
  }) {
    if (running) throw new Error('already started');
    if (p.kind === 'bulwark') {
      if (!p.dataDir) throw new Error('bulwark needs a data directory');
      running = await startBulwark(p.dataDir);
    } else {
      if (!p.tls) throw new Error('aedes needs TLS material');
      running = await startAedes(p.tls);
    }
    return { port: running.port, pid: process.pid };
  },

  /** Full collections, so idle-memory readings do not depend on when V8 last collected. */
  gc(_: Record<string, never>) {
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    gc?.();
    return Promise.resolve({ collected: gc !== undefined });
  },

  async monitorSetup(p: MonitorSetup) {
    if (!running?.monitorSetup) throw new Error('this broker has no monitor');
    return running.monitorSetup(p);
  },

  async detectionEvidence(p: { deviceIds: string[]; detector: string; from: number }) {
    if (!running?.detectionEvidence) throw new Error('this broker has no monitor');
    return { evidence: await running.detectionEvidence(p.deviceIds, p.detector, p.from) };
  },

  async privacySchema(p: { name: string; document: Record<string, unknown> | null }) {
    if (!running?.privacySchema) throw new Error('this broker has no data schemas');
    await running.privacySchema(p.name, p.document);
    return {};
  },

  setNoDelay(p: { on: boolean }) {
    if (!running?.setNoDelay) return Promise.resolve({ supported: false });
    running.setNoDelay(p.on);
    return Promise.resolve({ supported: true });
  },

  async firewallEvents(p: { deviceId: string; from: number }) {
    if (!running?.firewallEvents) return { supported: false, events: [] as FirewallEvent[] };
    return { supported: true, events: await running.firewallEvents(p.deviceId, p.from) };
  },

  async profileStart(p: { intervalUs: number }) {
    profiler = new Session();
    profiler.connect();
    await profiler.post('Profiler.enable');
    await profiler.post('Profiler.setSamplingInterval', { interval: p.intervalUs });
    await profiler.post('Profiler.start');
    return {};
  },

  async profileStop(p: { file: string }) {
    if (!profiler) throw new Error('no profile running');
    const { profile } = await profiler.post('Profiler.stop');
    profiler.disconnect();
    profiler = undefined;
    writeFileSync(p.file, JSON.stringify(profile));
    return { file: p.file };
  },

  async stop(_: Record<string, never>) {
    await running?.close();
    running = undefined;
    setImmediate(() => process.exit(0));
    return {};
  },
};

export type NodeBrokerApi = typeof methods;

process.on('SIGTERM', () => {
  void (running?.close() ?? Promise.resolve()).finally(() => process.exit(0));
});

serve(methods);
