/**
 * Scenarios (5) and (6), Bulwark only, in their own process: the per-message policy decision and the
 * audit log (durable appends, and verification of the whole chain).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  compilePolicies,
  createLogger,
  createPlatform,
  DEFAULT_POLICY,
  POLICY_VERSION,
  testConfig,
  type AttachedPolicy,
} from '../bulwark/index.ts';
import { serve } from '../ipc/index.ts';

function nsPer(start: bigint, count: number): number {
  return Number(process.hrtime.bigint() - start) / count;
}

export interface PolicyResult {
  statements: number;
  /** Compiling a device's access at CONNECT, ms: its policies' shared parts already built (every connect but the first after a policy change). */
  compileMs: number;
  /** The first CONNECT after a policy change: the policies' shared parts built too, ms. */
  firstCompileMs: number;
  /** Publish decision on a topic the device already used (the per-connection cache). */
  publishCachedNs: number;
  /** Publish decision on a topic not seen before (trie lookup), alternating allowed and denied. */
  publishUncachedNs: number;
  /** Subscribe decision on a filter not seen before. */
  subscribeUncachedNs: number;
  allowed: number;
}

const MAX_DOC = 10_000; // statements per policy document (the document schema's limit)

/**
 * N statements spread over as many policy documents as needed, attached to one device next to the
 * default policy: per-site line rights, one in ten a deny, the way an operator grants a fleet topics.
 */
function policies(n: number): AttachedPolicy[] {
  const out: AttachedPolicy[] = [DEFAULT_POLICY];
  for (let d = 0; d * MAX_DOC < n; d++) {
    const statements = Array.from({ length: Math.min(MAX_DOC, n - d * MAX_DOC) }, (_, k) => {
      const i = d * MAX_DOC + k;
      return {
        sid: `s${i}`,
        effect: i % 10 === 9 ? ('deny' as const) : ('allow' as const),
        actions: ['mqtt:publish' as const, 'mqtt:subscribe' as const, 'mqtt:receive' as const],
        resources: [`sites/site-${i % 100}/line-${i}/+/telemetry`],
      };
    });
    out.push({ name: `bench-${d}`, version: 1, document: { version: POLICY_VERSION, statements } });
  }
  return out;
}

/**
 * ns per call of `op`: a warm-up, then calls in doubling chunks (the clock is read once per chunk, so
 * reading it costs nothing measurable) until `count` calls or `maxMs`, whichever comes first.
 */
function timed(count: number, maxMs: number, op: (k: number) => void): number {
  const deadline = process.hrtime.bigint() + BigInt(maxMs) * 1_000_000n;
  const warmUntil = process.hrtime.bigint() + BigInt(Math.ceil(maxMs / 5)) * 1_000_000n;
  for (let k = 0, chunk = 1; k < 1000 && process.hrtime.bigint() < warmUntil; chunk *= 2) {
    for (const end = Math.min(1000, k + chunk); k < end; k++) op(k);
  }
  const start = process.hrtime.bigint();
  let k = 0;
  for (let chunk = 1; k < count; chunk = Math.min(chunk * 2, 65_536)) {
    for (const end = Math.min(count, k + chunk); k < end; k++) op(k);
    if (process.hrtime.bigint() > deadline) break;
  }
  return nsPer(start, k);
}

function measurePolicy(statements: number, decisions: number, maxMs: number): PolicyResult {
  let attached = policies(statements);
  const compile = () =>
    compilePolicies({
      ctx: {
        deviceId: 'bench-00000',
        group: 'pumps',
        zone: null,
        attributes: {},
        cert: { cn: 'bench-00000' },
        state: 'active',
        sourceAddress: '127.0.0.1',
      },
      policies: attached,
      segmentation: { zones: [], conduits: [] },
      deviceZone: () => undefined,
    });
  // The first compile of freshly loaded documents builds their shared parts (as after a policy change):
  // new documents each time, only the compile timed.
  let firstNs = 0n;
  let firsts = 0;
  const firstUntil = process.hrtime.bigint() + BigInt(maxMs) * 1_000_000n;
  for (; firsts < 5 && (firsts === 0 || process.hrtime.bigint() < firstUntil); firsts++) {
    attached = policies(statements);
    const start = process.hrtime.bigint();
    compile();
    firstNs += process.hrtime.bigint() - start;
  }
  const firstCompileMs = Number(firstNs) / firsts / 1e6;
  const t = process.hrtime.bigint();
  const until = t + BigInt(maxMs) * 1_000_000n;
  let access = compile();
  let compiles = 1;
  for (; compiles < 1000 && process.hrtime.bigint() < until; compiles++) access = compile();
  const compileMs = nsPer(t, compiles) / 1e6;
  let allowed = 0;
  const own = 'devices/bench-00000/telemetry';
  const publishCachedNs = timed(decisions, maxMs, () => {
    allowed += access.publish(own).allow ? 1 : 0;
  });
  // 20,000 distinct topics (the per-connection cache holds 4,096 and is cleared when full), so each
  // decision walks the trie; half match an allow or deny statement, half no statement at all.
  const topics = Array.from({ length: 20_000 }, (_, k) => {
    const i = (k * 7919) % statements;
    return `sites/site-${i % 100}/line-${k % 2 ? i : i + statements}/d${k}/telemetry`;
  });
  const publishUncachedNs = timed(decisions, maxMs, (k) => {
    allowed += access.publish(topics[k % topics.length]!).allow ? 1 : 0;
  });
  const subscribeUncachedNs = timed(decisions, maxMs, (k) => {
    allowed += access.subscribe(topics[(k + 7) % topics.length]!).allow ? 1 : 0;
  });
  return {
    statements,
    compileMs,
    firstCompileMs,
    publishCachedNs,
    publishUncachedNs,
    subscribeUncachedNs,
    allowed,
  };
}

const event = {
  type: 'mqtt.publish_denied',
  actor: 'device:bench-00000',
  subject: 'device:bench-00000',
  data: { topic: 'devices/bench-00001/telemetry', reason: 'outside_own_subtree' },
} as const;

const methods = {
  policy(p: { statements: number[]; decisions: number; maxMs: number }) {
    return Promise.resolve(p.statements.map((n) => measurePolicy(n, p.decisions, p.maxMs)));
  },

  /** On the real platform store (SQLite, WAL, synchronous=FULL) in a temporary data directory. */
  async audit(p: { singleAppends: number; batchedEvents: number; verifyEntries: number }) {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'bulwark-bench-audit-'));
    const config = testConfig({ dataDir, logLevel: 'silent' });
    const platform = await createPlatform(config, { logger: createLogger('silent') });
    try {
      let t = process.hrtime.bigint();
      for (let i = 0; i < p.singleAppends; i++) await platform.audit.append([event]);
      const singlePerSec = 1e9 / nsPer(t, p.singleAppends);

      // As the broker emits: many events at once through the bus, which batches them per transaction.
      const wave = 1000;
      t = process.hrtime.bigint();
      for (let done = 0; done < p.batchedEvents; done += wave) {
        await Promise.all(Array.from({ length: wave }, () => platform.events.emit(event)));
      }
      const busPerSec = 1e9 / nsPer(t, Math.ceil(p.batchedEvents / wave) * wave);

      // Fill up to the verification size in large transactions (also a figure: bulk append rate).
      const have = (await platform.audit.head()).seq;
      const chunk = 5000;
      const batch = Array.from({ length: chunk }, () => event);
      t = process.hrtime.bigint();
      let appended = 0;
      for (let seq = have; seq < p.verifyEntries; seq += chunk) {
        await platform.audit.append(batch.slice(0, Math.min(chunk, p.verifyEntries - seq)));
        appended += Math.min(chunk, p.verifyEntries - seq);
      }
      const bulkPerSec = appended > 0 ? 1e9 / nsPer(t, appended) : Number.NaN;

      t = process.hrtime.bigint();
      const verified = await platform.audit.verify();
      const verifyPerSec = 1e9 / nsPer(t, verified.entries);
      return {
        singlePerSec,
        busPerSec,
        bulkPerSec,
        verifyPerSec,
        verified: verified.entries,
        ok: verified.ok,
      };
    } finally {
      await platform.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  },
};

export type MicroApi = typeof methods;

serve(methods);
