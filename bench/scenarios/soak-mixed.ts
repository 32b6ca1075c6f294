/**
 * `npm run soak`: a mixed soak of Bulwark's broker (issue 19, stability). The real server (as `npm run bench`
 * starts it: its own MQTT core, mTLS, policy, audit) under steady telemetry with QoS 0 floods every few
 * minutes, fan-in, fan-out, persistent sessions that go away and come back, reconnects, subscribe and
 * unsubscribe, and refused actions, all at once (the traffic: bench/load/soak-mixed.ts). Every 30 s: a full
 * GC in the server, then its RSS (from /proc), its heap (Prometheus `/metrics`) and the delivery counters.
 * At the end: every acknowledged QoS 1 message must have reached each of its subscribers, the server must
 * still serve, and memory must not grow over the second half.
 */
import { request } from 'node:https';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { bulwarkJson } from '../bulwark/index.ts';
import {
  readRss,
  type Fixture,
  type LoadgenPool,
  type MachineSampler,
  type SystemRun,
} from '../harness/index.ts';
import type { LoadgenApi, MixedSoakResult, MixedSoakStatus } from '../load/index.ts';

export interface SoakPlan {
  minutes: number;
  /** Telemetry devices (fixture indices 0..devices-1). */
  devices: number;
  /** Steady telemetry per device, messages/s (QoS 0 and QoS 1 alternately). */
  ratePerDevice: number;
  persistent: {
    devices: number;
    ratePerDevice: number;
    onlineMs: [number, number];
    offlineMs: [number, number];
  };
  fanout: { instances: number; hotDevices: number };
  flood: { everyMs: number; perDevice: number; qos1PerDevice: number; qos1Window: number; maxMs: number };
  churnEveryMs: number;
  refuseEveryMs: number;
  sampleEveryMs: number;
  payloadSize: number;
  drainMs: number;
  /** Largest slope over the second half still read as "no unbounded growth" (MiB per hour). */
  thresholds: { rssMiBPerHour: number; heapMiBPerHour: number };
  outDir: string;
}

/** Fixture positions: the fleet, the persistent devices, the refusing devices, probes; apps' source addresses. */
export function soakLayout(plan: SoakPlan) {
  const persistentFrom = plan.devices;
  const refusalsFrom = persistentFrom + plan.persistent.devices;
  const probesFrom = refusalsFrom + 10;
  const addressesFrom = probesFrom + 3;
  return {
    fleet: { from: 0, to: plan.devices },
    persistent: { from: persistentFrom, to: refusalsFrom },
    refusals: { from: refusalsFrom, to: probesFrom },
    probes: probesFrom,
    observerIndex: addressesFrom,
    fanoutFrom: addressesFrom + 1,
    commanderIndex: addressesFrom + 1 + plan.fanout.instances,
    /** Devices the fixture must hold. */
    devices: addressesFrom,
  };
}

interface Env {
  plan: SoakPlan;
  fixture: Fixture;
  pool: LoadgenPool;
  run: SystemRun;
  machine: MachineSampler;
  log: (line: string) => void;
}

/** One reading every 30 s. */
export interface Sample {
  /** Seconds since the soak's traffic started. */
  t: number;
  rssMiB: number | undefined;
  heapUsedMiB: number | undefined;
  heapTotalMiB: number | undefined;
  externalMiB: number | undefined;
  eventLoopLagP99Ms: number | undefined;
  mqtt: Record<string, number>;
  published: number;
  acked: number;
  delivered: number;
  /** CPU other processes on the machine used since the previous sample (cores). */
  otherCores: number | undefined;
  loadAverage: number;
}

type Metrics = Map<string, number>;

/** Prometheus text exposition: `name{labels} value` lines into a map keyed by `name{labels}`. */
function parseMetrics(text: string): Metrics {
  const out: Metrics = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    const value = Number(line.slice(cut + 1));
    if (Number.isFinite(value)) out.set(line.slice(0, cut), value);
  }
  return out;
}

function httpsCall(
  o: { port: number; ca: string; path: string; method?: string; token?: string; body?: unknown },
  timeoutMs = 30_000,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const payload = o.body === undefined ? undefined : JSON.stringify(o.body);
    const req = request(
      {
        host: '127.0.0.1',
        port: o.port,
        servername: 'localhost',
        ca: o.ca,
        path: o.path,
        method: o.method ?? 'GET',
        timeout: timeoutMs,
        headers: {
          ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
          ...(payload ? { 'content-type': 'application/json' } : {}),
        },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${o.path}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * What the soak needs from the server, set up the way an operator would, on the run's own data directory:
 * its HTTPS port (from the `platform.started` audit entry), an operator account and an API token for
 * `/metrics`, and an app allowed to publish to devices' `config` topics, with its client certificate.
 */
async function prepareServer(
  env: Env,
): Promise<{ metrics: () => Promise<Metrics>; commanderFile: string; dispose: () => void }> {
  const { run, fixture, log } = env;
  const dataDir = run.system.dataDir;
  if (!dataDir) throw new Error('the soak needs the Bulwark server started by the bench harness');
  type Started = { data: { mqttPort?: number; listeners?: { name: string; port: number }[] } };
  let httpsPort: number | undefined;
  for (let attempt = 0; attempt < 10 && httpsPort === undefined; attempt++) {
    const [started] = await bulwarkJson<Started[]>(dataDir, [
      'audit-log',
      'list',
      '--type',
      'platform.started',
      '--limit',
      '1',
    ]);
    if (started?.data.mqttPort === run.system.port)
      httpsPort = started.data.listeners?.find((l) => l.name === 'https')?.port;
    else await sleep(500);
  }
  if (httpsPort === undefined) throw new Error("the server's platform.started entry has no HTTPS port");
  const ca = readFileSync(fixture.caFile, 'utf8');
  const username = 'bench-soak';
  const { setupSecret } = await bulwarkJson<{ setupSecret: string }>(dataDir, [
    'admin',
    'create',
    '--username',
    username,
    '--role',
    'operator',
  ]);
  const password = randomBytes(18).toString('base64url');
  const setup = await httpsCall({
    port: httpsPort,
    ca,
    path: '/api/v1/auth/setup',
    method: 'POST',
    body: { username, setupSecret, password },
  });
  if (setup.status !== 200)
    throw new Error(`account setup: HTTP ${setup.status} ${setup.body.slice(0, 200)}`);
  const { token } = await bulwarkJson<{ token: string }>(dataDir, [
    'token',
    'create',
    '--user',
    username,
    '--name',
    'soak-metrics',
    '--expires',
    '1d',
  ]);
  const metrics = async () => {
    const res = await httpsCall({ port: httpsPort, ca, path: '/metrics', token });
    if (res.status !== 200) throw new Error(`/metrics: HTTP ${res.status} ${res.body.slice(0, 200)}`);
    return parseMetrics(res.body);
  };
  await metrics();
  const app = 'bench-soak-ops';
  await bulwarkJson(dataDir, [
    'app',
    'add',
    app,
    '--purpose',
    'essential.service.operations',
    '--grant',
    'publish devices/+/config',
  ]);
  const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-soak-app-'));
  await bulwarkJson(dataDir, ['app', 'cert', app, '--out', dir]);
  const commanderFile = path.join(dir, 'commander.json');
  writeFileSync(
    commanderFile,
    JSON.stringify({
      id: app,
      key: readFileSync(path.join(dir, `${app}.key`), 'utf8'),
      cert: readFileSync(path.join(dir, `${app}.crt`), 'utf8'),
    }),
    { mode: 0o600 },
  );
  log(
    `server set up: /metrics on https port ${httpsPort} (operator token), app ${app} (publish devices/+/config)`,
  );
  return { metrics, commanderFile, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

const MiB = 2 ** 20;
const mib = (bytes: number | undefined) => (bytes === undefined ? undefined : bytes / MiB);
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/** Least-squares slope of `y` over `t` (seconds), in units per hour; undefined with fewer than 3 points. */
export function slopePerHour(points: { t: number; y: number }[]): number | undefined {
  if (points.length < 3) return undefined;
  const n = points.length;
  const mt = sum(points.map((p) => p.t)) / n;
  const my = sum(points.map((p) => p.y)) / n;
  const num = sum(points.map((p) => (p.t - mt) * (p.y - my)));
  const den = sum(points.map((p) => (p.t - mt) ** 2));
  return den === 0 ? undefined : (num / den) * 3600;
}

/** The lowest point of each `windowS` window from `fromS` on (the floor under the transient swings). */
export function floor(points: { t: number; y: number }[], fromS: number, windowS: number) {
  const lowest = new Map<number, { t: number; y: number }>();
  for (const p of points) {
    const w = Math.floor((p.t - fromS) / windowS);
    const seen = lowest.get(w);
    if (!seen || p.y < seen.y) lowest.set(w, p);
  }
  return [...lowest.values()].sort((a, b) => a.t - b.t);
}

function mqttFigures(m: Metrics): Record<string, number> {
  const pick: Record<string, string> = {
    connections: 'bulwark_mqtt_connections',
    sessions: 'bulwark_mqtt_sessions',
    subscriptions: 'bulwark_mqtt_subscriptions',
    received: 'bulwark_mqtt_messages_received_total',
    sent: 'bulwark_mqtt_messages_sent_total',
    droppedQueueFull: 'bulwark_mqtt_dropped_messages_total{reason="queue_full"}',
    droppedTooLarge: 'bulwark_mqtt_dropped_messages_total{reason="too_large"}',
    droppedExpired: 'bulwark_mqtt_dropped_messages_total{reason="expired"}',
    appDroppedObserver: 'bulwark_app_dropped_messages_total{app="bench-observer"}',
    malformed: 'bulwark_mqtt_malformed_packets_total',
    protocolErrors: 'bulwark_mqtt_protocol_errors_total',
    auditEntries: 'bulwark_audit_log_entries',
  };
  const out: Record<string, number> = {};
  for (const [key, name] of Object.entries(pick)) {
    const v = m.get(name);
    if (v !== undefined) out[key] = v;
  }
  let denied = 0;
  for (const [k, v] of m) if (k.startsWith('bulwark_broker_publish_denied_total')) denied += v;
  out.publishDenied = denied;
  return out;
}

const totals = (s: MixedSoakStatus) => ({
  published: sum(s.sent.slice(0, 5)),
  acked: sum(s.acked.slice(0, 5)),
  delivered:
    sum(s.self.delivered) +
    sum(s.observer.delivered) +
    sum(s.fanout.map((f) => sum(f.delivered))) +
    sum(s.persistent.delivered),
});

async function probe(env: Env, index: number): Promise<boolean> {
  const res = await env.pool.first
    .call(
      'ping',
      {
        target: env.run.target,
        index,
        qos: 1,
        count: 3,
        warmup: 0,
        maxMs: 5000,
        timeoutMs: 2000,
        minIntervalMs: 0,
        payloadSize: env.plan.payloadSize,
      },
      20_000,
    )
    .catch((err: unknown) => {
      env.log(`  probe ${index}: ${(err as Error).message.split('\n')[0] ?? ''}`);
      return undefined;
    });
  if (res && res.delivery.length !== 3)
    env.log(`  probe ${index}: ${res.delivery.length}/3 messages back, ${res.timeouts} timeouts`);
  return res?.delivery.length === 3;
}

export interface FloodRecord {
  atS: number;
  floodMs: number;
  qos1Ms: number;
  sentQos0: number;
  sentQos1: number;
  devices: number;
  stalled: number;
}

export interface SoakOutcome {
  startedAt: string;
  durationS: number;
  samples: Sample[];
  floods: FloodRecord[];
  refusals: { subscribeRefused: number; subscribeTried: number; publishClosed: number; publishTried: number };
  result: MixedSoakResult;
  audit: { deliveryDropped: Record<string, number>; subscribeDenied: number; publishDenied: number };
  metricsAtEnd: Record<string, number>;
  alive: boolean;
  exitStatus: string | undefined;
  /**
   * Fits over the second half (from `fromS`) of the lowest reading in each `windowS` window: the server's
   * floor. Single readings swing with what is in flight (a flood's queues, a periodic job of the server
   * holding tens of MiB for a moment), which says nothing about growth; `allSamples` fits every reading.
   */
  slopes: {
    rssMiBPerHour: number | undefined;
    heapMiBPerHour: number | undefined;
    allSamples: { rssMiBPerHour: number | undefined; heapMiBPerHour: number | undefined };
    fromS: number;
    windowS: number;
  };
  otherCores: number | undefined;
  loadAverage: { start: number; end: number };
  start: Awaited<ReturnType<LoadgenApi['mixedStart']>>;
}

/** Runs the soak on a started Bulwark; returns what the report needs. */
export async function mixedSoak(env: Env): Promise<SoakOutcome> {
  const { plan, pool, run, log, machine } = env;
  const layout = soakLayout(plan);
  const server = await prepareServer(env);
  const loadStart = loadavg()[0] ?? 0;
  const started = await pool.first.call(
    'mixedStart',
    {
      target: run.target,
      fleet: layout.fleet,
      ratePerDevice: plan.ratePerDevice,
      payloadSize: plan.payloadSize,
      observerIndex: layout.observerIndex,
      fanout: { ...plan.fanout, indexFrom: layout.fanoutFrom },
      persistent: { ...layout.persistent, ...plan.persistent },
      commander: { file: server.commanderFile, index: layout.commanderIndex },
      refusals: layout.refusals,
      churnEveryMs: plan.churnEveryMs,
      timeoutMs: 30_000,
    },
    600_000,
  );
  log(
    `connected in ${(started.connectMs / 1000).toFixed(1)} s: ${started.fleet} devices, ${started.persistent} persistent sessions, observer ${started.observer}, ${started.fanout} fan-out instances on ${started.hot.length} devices, app ${started.commander}`,
  );
  const t0 = Date.now();
  const end = t0 + plan.minutes * 60_000;
  const samples: Sample[] = [];
  const floods: FloodRecord[] = [];
  const refusals = { subscribeRefused: 0, subscribeTried: 0, publishClosed: 0, publishTried: 0 };
  const pending = new Set<Promise<unknown>>();
  const track = (p: Promise<unknown>) => {
    pending.add(p);
    void p.finally(() => pending.delete(p));
  };
  let lastSampleAt = t0;
  /** A reading; the load generator's counters too while the traffic runs (`final` once it is stopped). */
  const sample = async (final?: MixedSoakStatus) => {
    const at = Date.now();
    await run.system.gc().catch(() => undefined);
    const rss = mib(readRss(run.broker.pid));
    let m: Metrics | undefined;
    try {
      m = await server.metrics();
    } catch (err) {
      log(`  /metrics: ${(err as Error).message}`);
    }
    const status = final ?? (await pool.first.call('mixedStatus', {}, 30_000));
    const t = totals(status);
    const s: Sample = {
      t: Math.round((at - t0) / 1000),
      rssMiB: rss,
      heapUsedMiB: mib(m?.get('bulwark_nodejs_heap_size_used_bytes')),
      heapTotalMiB: mib(m?.get('bulwark_nodejs_heap_size_total_bytes')),
      externalMiB: mib(m?.get('bulwark_nodejs_external_memory_bytes')),
      eventLoopLagP99Ms: ((v) => (v === undefined ? undefined : v * 1000))(
        m?.get('bulwark_nodejs_eventloop_lag_p99_seconds'),
      ),
      mqtt: m ? mqttFigures(m) : {},
      ...t,
      otherCores: machine.foreignCores(lastSampleAt, at),
      loadAverage: loadavg()[0] ?? 0,
    };
    lastSampleAt = at;
    samples.push(s);
    return { s, status };
  };
  const progress = (s: Sample, status: MixedSoakStatus) => {
    const min = Math.round(s.t / 60);
    const c = status.counters;
    log(
      `min ${min}/${plan.minutes}: published ${s.published.toLocaleString('en-US')} (QoS 1 acked ${s.acked.toLocaleString('en-US')}), delivered ${s.delivered.toLocaleString('en-US')}; persistent online ${status.connected.persistentOnline}/${plan.persistent.devices} (${c.persistentCycles} returns); reconnects ${c.reconnects} (${c.resumed} resumed); refusals ${c.deniedSubscribes}+${c.deniedPublishes}; RSS ${s.rssMiB?.toFixed(0) ?? '?'} MiB, heap ${s.heapUsedMiB?.toFixed(0) ?? '?'} MiB, sessions ${s.mqtt.sessions ?? '?'}, subscriptions ${s.mqtt.subscriptions ?? '?'}; errors ${status.errors}; other load ${s.otherCores?.toFixed(2) ?? '?'} cores`,
    );
  };
  await sample();
  let nextSample = t0 + plan.sampleEveryMs;
  let nextFlood = t0 + plan.flood.everyMs;
  let nextRefuse = t0 + Math.min(20_000, plan.refuseEveryMs);
  let nextLog = t0 + 60_000;
  let flooding = false;
  let exitStatus: string | undefined;
  while (Date.now() < end) {
    exitStatus = run.system.exitStatus();
    if (exitStatus) {
      log(`the server stopped: ${exitStatus}`);
      break;
    }
    const now = Date.now();
    if (now >= nextFlood && !flooding && now + plan.flood.maxMs < end) {
      nextFlood += plan.flood.everyMs;
      flooding = true;
      const atS = Math.round((now - t0) / 1000);
      const { perDevice, qos1PerDevice, qos1Window, maxMs } = plan.flood;
      log(`flood ${floods.length + 1}: ${perDevice} QoS 0 messages per device, then ${qos1PerDevice} QoS 1`);
      track(
        pool.first
          .call('mixedFlood', { perDevice, qos1PerDevice, qos1Window, maxMs }, 3 * maxMs + 60_000)
          .then((f) => {
            floods.push({ atS, ...f });
            log(
              `  flood ${floods.length}: ${f.sentQos0.toLocaleString('en-US')} QoS 0 in ${(f.floodMs / 1000).toFixed(1)} s, ${f.sentQos1.toLocaleString('en-US')} QoS 1 acknowledged in ${(f.qos1Ms / 1000).toFixed(1)} s${f.stalled ? `, ${f.stalled} devices stalled` : ''}`,
            );
          })
          .catch((err: unknown) => log(`  flood failed: ${(err as Error).message}`))
          .finally(() => (flooding = false)),
      );
    }
    if (now >= nextRefuse) {
      nextRefuse += plan.refuseEveryMs;
      track(
        pool.first.call('mixedRefuse', {}, 60_000).then((r) => {
          if (r.subscribe >= 0) refusals.subscribeTried++;
          if (r.subscribe === 0x80) refusals.subscribeRefused++;
          refusals.publishTried++;
          if (r.publishClosed) refusals.publishClosed++;
        }),
      );
    }
    if (now >= nextSample) {
      nextSample += plan.sampleEveryMs;
      const { s, status } = await sample();
      if (Date.now() >= nextLog) {
        nextLog += 60_000;
        progress(s, status);
      }
    }
    await sleep(Math.max(50, Math.min(nextSample, nextFlood, nextRefuse, end) - Date.now()));
  }
  await Promise.allSettled([...pending]);
  if (!exitStatus && Date.now() - lastSampleAt > 10_000) await sample().catch(() => undefined);
  const durationS = Math.round((Date.now() - t0) / 1000);
  log('stopping the traffic; waiting for every acknowledged QoS 1 message to arrive');
  const result = await pool.first.call('mixedStop', { drainMs: plan.drainMs }, plan.drainMs + 120_000);
  exitStatus ??= run.system.exitStatus();
  const last = exitStatus ? undefined : await sample(result.status).catch(() => undefined);
  const metricsAtEnd = last?.s.mqtt ?? {};
  // The refusals and drops as the audit log recorded them (the broker's own account, per client id).
  const audit = { deliveryDropped: {} as Record<string, number>, subscribeDenied: 0, publishDenied: 0 };
  if (!exitStatus && run.system.dataDir) {
    const since = new Date(t0 - 1000).toISOString();
    type Entry = { type: string; data: { clientId?: string; dropped?: number } };
    const list = (type: string) =>
      bulwarkJson<Entry[]>(run.system.dataDir as string, [
        'audit-log',
        'list',
        '--type',
        type,
        '--since',
        since,
        '--limit',
        '10000',
      ]).catch((err: unknown) => {
        log(`  audit-log list --type ${type}: ${(err as Error).message}`);
        return [] as Entry[];
      });
    for (const e of await list('mqtt.delivery_dropped')) {
      const id = e.data.clientId ?? '?';
      audit.deliveryDropped[id] = (audit.deliveryDropped[id] ?? 0) + (e.data.dropped ?? 0);
    }
    audit.subscribeDenied = (await list('mqtt.subscribe_denied')).length;
    audit.publishDenied = (await list('mqtt.publish_denied')).length;
  }
  let alive = false;
  for (let attempt = 0; attempt < 3 && !alive && !run.system.exitStatus(); attempt++)
    alive = await probe(env, layout.probes + attempt);
  exitStatus ??= run.system.exitStatus();
  server.dispose();
  const half = durationS / 2;
  const during = samples.filter((s) => s.t >= half && s.t <= durationS);
  const points = (pick: (s: Sample) => number | undefined) =>
    during.flatMap((s) => {
      const y = pick(s);
      return y === undefined ? [] : [{ t: s.t, y }];
    });
  const windowS = Math.min(120, Math.max(30, half / 6));
  // At least four windows, or no fit (a smoke run is too short to say anything about growth).
  const floorSlope = (all: { t: number; y: number }[]) => {
    const lows = floor(all, half, windowS);
    return lows.length >= 4 ? slopePerHour(lows) : undefined;
  };
  return {
    startedAt: new Date(t0).toISOString(),
    durationS,
    samples,
    floods,
    refusals,
    result,
    audit,
    metricsAtEnd,
    alive,
    exitStatus,
    slopes: {
      rssMiBPerHour: floorSlope(points((s) => s.rssMiB)),
      heapMiBPerHour: floorSlope(points((s) => s.heapUsedMiB)),
      allSamples: {
        rssMiBPerHour: slopePerHour(points((s) => s.rssMiB)),
        heapMiBPerHour: slopePerHour(points((s) => s.heapUsedMiB)),
      },
      fromS: Math.round(half),
      windowS: Math.round(windowS),
    },
    otherCores: machine.foreignCores(t0, t0 + durationS * 1000),
    loadAverage: { start: loadStart, end: loadavg()[0] ?? 0 },
    start: started,
  };
}
