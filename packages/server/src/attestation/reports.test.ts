// Signed tamper and health reports (JWS, RFC 7515) as the ingress hands them over, on each store dialect.
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { CompactSign } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createAuditLog, createEventBus, type AuditEntry, type EventBus } from '../events/index.ts';
import { createSecretBox } from '../secrets/index.ts';
import { isBusy, isUniqueViolation } from '../store/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { createSecurityReports, distanceKm, locationJump, type SecurityReports } from './reports.ts';

const T0 = 1_800_000_000_000;
const PARIS = { lat: 48.8566, lon: 2.3522 };
const LONDON = { lat: 51.5074, lon: -0.1278 };
const NEW_YORK = { lat: 40.7128, lon: -74.006 };

const ec = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });
const pump = ec();
const other = ec();
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const pem = (k: KeyObject) => k.export({ type: 'spki', format: 'pem' }).toString();

/** Certificates by serial, as pki's door answers them. */
const certificates: Record<string, { publicKeyPem: string; revoked: boolean; deviceId: string | null }> = {
  '01AA': { publicKeyPem: pem(pump.publicKey), revoked: false, deviceId: 'pump-1' },
  '02BB': { publicKeyPem: pem(other.publicKey), revoked: false, deviceId: 'pump-2' },
  '03CC': { publicKeyPem: pem(other.publicKey), revoked: true, deviceId: 'pump-1' },
  '04DD': { publicKeyPem: pem(rsa.publicKey), revoked: false, deviceId: 'pump-1' },
};

async function sign(
  payload: object,
  opts: { key?: KeyObject; kid?: string; alg?: string } = {},
): Promise<{ jws: string }> {
  const jws = await new CompactSign(Buffer.from(JSON.stringify(payload)))
    .setProtectedHeader({ alg: opts.alg ?? 'ES256', kid: opts.kid ?? '01AA' })
    .sign(opts.key ?? pump.privateKey);
  return { jws };
}

describe('distances', () => {
  it('haversine: Paris–London about 344 km; a jump is faster than the limit', () => {
    expect(distanceKm(PARIS, LONDON)).toBeCloseTo(343.5, 0);
    expect(locationJump({ ...PARIS, at: 0 }, { ...LONDON, at: 3_600_000 }, 900)).toBeUndefined();
    expect(locationJump({ ...PARIS, at: 0 }, { ...LONDON, at: 1_800_000 }, 600)).toMatchObject({
      speedKmh: expect.any(Number) as unknown,
      maxSpeedKmh: 600,
    });
  });
});

describe.each(testDialects)('security reports (%s)', (dialect) => {
  let t: TestStore;
  let bus: EventBus;
  let entries: AuditEntry[];
  let clock: number;
  let reports: SecurityReports;
  let seq: number;

  beforeEach(async () => {
    t = await createTestStore(dialect);
    clock = T0;
    seq = 0;
    const log = createAuditLog({
      db: t.store.db,
      mac: createSecretBox(randomBytes(32)),
      now: () => clock,
      isRetryable: (e) => isUniqueViolation(e) || isBusy(e),
    });
    await log.ensureAnchor();
    bus = createEventBus({ log, db: t.store.db });
    entries = [];
    bus.subscribe((e) => entries.push(e));
    reports = createSecurityReports({
      db: t.store.db,
      events: bus,
      now: () => clock,
      logger: { warn: () => undefined, error: () => undefined },
      settings: { maxSpeedKmh: 900 },
      certificateForReport: (_deviceId, serial) => Promise.resolve(certificates[serial]),
    });
  });
  afterEach(async () => {
    await bus.close();
    await t.cleanup();
  });

  const tamper = (more: object = {}) => ({
    kind: 'tamper',
    deviceId: 'pump-1',
    ts: clock,
    seq: ++seq,
    reason: 'enclosure-opened',
    ...more,
  });
  const health = (more: object = {}) => ({
    kind: 'health',
    deviceId: 'pump-1',
    ts: clock,
    seq: ++seq,
    ...more,
  });

  const rejections = () =>
    entries.flatMap((e) => (e.type === 'device.security_report_rejected' ? [e.data.reason] : []));
  const tampers = () =>
    entries.flatMap((e) =>
      e.type === 'device.tamper_reported' ? [`${e.data.source}:${e.data.reason}`] : [],
    );

  it('accepts a signed tamper report: recorded, and device.tamper_reported', async () => {
    await reports.handlers.tamper.accept('pump-1', await sign(tamper({ detail: 'lid sensor' })), undefined);
    await reports.handlers.tamper.accept(
      'pump-1',
      await sign(tamper({ reason: 'other' }), { key: rsa.privateKey, kid: '04DD', alg: 'RS256' }),
      undefined,
    );
    await bus.flush();
    expect(rejections()).toEqual([]);
    const first = entries.find((e) => e.type === 'device.tamper_reported');
    expect(first).toMatchObject({
      actor: 'device:pump-1',
      subject: 'device:pump-1',
      data: {
        reason: 'enclosure-opened',
        source: 'tamper',
        detail: 'lid sensor',
        seq: 1,
        keyId: '01AA',
        reportedAt: T0,
      },
    });
    const listed = await reports.list({ device: 'pump-1', limit: 10 });
    expect(listed.map((r) => [r.kind, r.reasons, r.seq])).toEqual([
      ['tamper', ['other'], 2],
      ['tamper', ['enclosure-opened'], 1],
    ]);
    expect(await reports.list({ kind: 'health', limit: 10 })).toEqual([]);
    expect(reports.rejectedCount()).toBe(0);
  });

  it('refuses unsigned, garbage, wrongly signed, foreign, revoked, mismatched, stale and replayed reports', async () => {
    const accept = (payload: { jws: string }, kind: 'tamper' | 'health' = 'tamper', device = 'pump-1') =>
      reports.handlers[kind].accept(device, payload, undefined);
    reports.handlers.tamper.reject?.('pump-1', 'payload is not JSON');
    await accept({ jws: 'AAAA.BBBB.CCCC' });
    const unsigned = `${Buffer.from('{"alg":"none","kid":"01AA"}').toString('base64url')}.${Buffer.from(JSON.stringify(tamper())).toString('base64url')}.AAAA`;
    await accept({ jws: unsigned });
    await accept(await sign(tamper(), { key: other.privateKey }));
    await accept(await sign(tamper(), { kid: '99' }));
    await accept(await sign(tamper(), { key: other.privateKey, kid: '02BB' }));
    await accept(await sign(tamper(), { key: other.privateKey, kid: '03CC' }));
    await accept(await sign({ kind: 'tamper', deviceId: 'pump-1', ts: clock }));
    await accept(await sign(tamper({ deviceId: 'pump-2' })));
    await accept(await sign(tamper()), 'health');
    await accept(await sign(tamper({ ts: clock - 300_001 })));
    await accept(await sign(tamper({ seq: 100 })));
    await accept(await sign(tamper({ seq: 100 })));
    await accept(await sign(tamper({ seq: 99 })));
    await bus.flush();
    expect(rejections()).toEqual([
      'not a signed report: payload is not JSON',
      'not a JWS',
      'algorithm none is not allowed',
      'bad signature',
      'unknown key 99',
      "certificate 02BB is not this device's",
      'certificate 03CC is revoked',
      expect.stringMatching(/^payload: (seq|reason)/) as unknown,
      'report of device pump-2 sent by pump-1',
      'a tamper report on the health topic',
      expect.stringMatching(/^stale: /) as unknown,
      "replayed: seq 100 is not newer than the last report's",
      "replayed: seq 99 is not newer than the last report's",
    ]);
    expect(reports.rejectedCount()).toBe(13);
    expect(tampers()).toEqual(['tamper:enclosure-opened']);
  });

  it('a health report raises tamper_reported only for bad states that changed', async () => {
    const send = async (more: object) =>
      reports.handlers.health.accept('pump-1', await sign(health(more)), undefined);
    await send({ secureBoot: false, debugPortEnabled: false, enclosureClosed: true, bootCount: 3 });
    await send({ secureBoot: false, debugPortEnabled: false, enclosureClosed: true });
    await send({ enclosureClosed: false });
    await send({ secureBoot: true, debugPortEnabled: true });
    await send({ secureBoot: false });
    await bus.flush();
    expect(tampers()).toEqual([
      'health:secure-boot-disabled',
      'health:enclosure-opened',
      'health:debug-port-enabled',
      'health:secure-boot-disabled',
    ]);
    const listed = await reports.list({ device: 'pump-1', kind: 'health', limit: 10 });
    expect(listed.map((r) => r.reasons)).toEqual([
      ['secure-boot-disabled'],
      ['debug-port-enabled'],
      ['enclosure-opened'],
      [],
      ['secure-boot-disabled'],
    ]);
  });

  it('a located report further than the speed limit allows from the last is a location jump', async () => {
    await reports.handlers.health.accept('pump-1', await sign(health({ location: PARIS })), undefined);
    clock += 3_600_000;
    await reports.handlers.health.accept('pump-1', await sign(health({ location: LONDON })), undefined);
    clock += 3_600_000;
    await reports.handlers.tamper.accept('pump-1', await sign(tamper({ location: NEW_YORK })), undefined);
    await bus.flush();
    const jumps = entries.flatMap((e) => (e.type === 'device.location_jump' ? [e.data] : []));
    expect(jumps).toHaveLength(1);
    expect(jumps[0]).toMatchObject({
      from: { ...LONDON, at: T0 + 3_600_000 },
      to: { ...NEW_YORK, at: T0 + 7_200_000 },
      maxSpeedKmh: 900,
    });
    expect(jumps[0]?.distanceKm).toBeGreaterThan(5500);
    expect(jumps[0]?.speedKmh).toBeGreaterThan(900);
  });

  it('writes at most 20 refusals a minute per device, then says how many were suppressed; counts all', async () => {
    for (let i = 0; i < 25; i++)
      await reports.handlers.tamper.accept('pump-1', { jws: 'AAAA.BBBB.CCCC' }, undefined);
    await bus.flush();
    expect(rejections()).toHaveLength(20);
    clock += 60_000;
    await reports.handlers.tamper.accept('pump-1', { jws: 'AAAA.BBBB.CCCC' }, undefined);
    await bus.flush();
    const last = entries.findLast((e) => e.type === 'device.security_report_rejected');
    expect(last?.type === 'device.security_report_rejected' && last.data.suppressed).toBe(5);
    expect(reports.rejectedCount()).toBe(26);
  });
});
