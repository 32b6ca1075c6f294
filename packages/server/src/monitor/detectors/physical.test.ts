import { describe, expect, it } from 'vitest';
import { subjectOf, type AuditEntry, type EventData, type EventType } from '../doors.ts';
import { createEngine, type Finding } from '../engine.ts';
import { effectiveProfile, type EffectiveProfile, type ProfileDocumentInput } from '../profile.ts';
import { parseProfileDocument } from '../profile.service.ts';
import { createDetectors } from './index.ts';

// The physical-security detectors (issue 17) in the real engine: audit entries in, findings and clears out.

const T0 = Date.UTC(2026, 0, 5, 10);
const S = 1000;

function profileOf(doc: ProfileDocumentInput = {}): EffectiveProfile {
  const { document, explicitBuiltins } = parseProfileDocument(doc);
  const attachments = [{ kind: 'all' as const, target: '*' }];
  const p = {
    id: 'p',
    name: 'p',
    version: 1,
    document,
    explicitBuiltins,
    attachments,
    updatedAt: T0,
    updatedBy: 't',
  };
  return effectiveProfile([p], {});
}

let seq = 0;
/** An audit entry of one type about a device, with that type's data. */
function entry<T extends EventType>(type: T, ts: number, id: string, data: EventData[T]): AuditEntry<T>;
function entry(type: EventType, ts: number, id: string, data: EventData[EventType]) {
  const subject = subjectOf.device(id);
  return { seq: ++seq, ts, type, actor: subject, subject, data, prevHash: '', hash: '' } as AuditEntry;
}

function setup(global: EffectiveProfile = profileOf()) {
  const raised: Finding[] = [];
  const cleared: { detector: string; subject: string; resolution: string }[] = [];
  const engine = createEngine({
    sink: {
      raise: (f) => raised.push(f),
      clear: (detector, subject, resolution) => cleared.push({ detector, subject, resolution }),
    },
    globalProfile: () => global,
    silentAfterMs: 3_600_000,
    baselineIntervalMs: 60_000,
    startedAt: T0,
  });
  const of = (detector: string) => raised.filter((f) => f.detector === detector);
  const clearedOf = (detector: string) => cleared.filter((c) => c.detector === detector);
  return { engine, of, clearedOf };
}

const tamper = (id: string, ts: number, extra: Partial<EventData['device.tamper_reported']> = {}) =>
  entry('device.tamper_reported', ts, id, {
    reason: 'enclosure-opened',
    source: 'tamper',
    reportedAt: ts - 100,
    seq: 7,
    keyId: '0a1b',
    ...extra,
  });

const failed = (id: string, ts: number, reason = 'pcr_mismatch') =>
  entry('attestation.failed', ts, id, {
    resultId: `r-${ts}`,
    tier: 'contraindicated',
    reason,
    detail: 'PCR 7 differs from the release',
    release: 'fw@1.2.0',
    mismatchedPcrs: [7],
  });

const verified = (id: string, ts: number, tier: 'affirming' | 'warning') =>
  entry('attestation.verified', ts, id, {
    resultId: `r-${ts}`,
    tier,
    reason: tier === 'affirming' ? 'ok' : 'no_reference_values',
    detail: '',
    release: null,
  });

describe('physical-security detectors', () => {
  it('are built in, in the engine and in the profile settings (enabled by default)', () => {
    const names = createDetectors(0).list.map((d) => d.name);
    const builtins = profileOf().builtins;
    for (const d of ['tamper_report', 'location_jump', 'attestation_failed', 'lost_device_seen'] as const) {
      expect(names).toContain(d);
      expect(builtins[d]).toEqual({ enabled: true });
    }
  });

  it('tamper_report: high, names the device and the reason; later reports of the episode add their reasons', () => {
    const { engine, of, clearedOf } = setup();
    engine.onEvent(tamper('meter-1', T0 + S, { detail: 'lid switch', location: { lat: 48.1, lon: 11.5 } }));
    expect(of('tamper_report')).toEqual([
      {
        detector: 'tamper_report',
        subject: 'device:meter-1',
        deviceId: 'meter-1',
        severity: 'high',
        title: 'meter-1 reported tampering: enclosure-opened',
        at: T0 + S,
        evidence: {
          reason: 'enclosure-opened',
          reasons: ['enclosure-opened'],
          source: 'tamper',
          detail: 'lid switch',
          reportedAt: T0 + S - 100,
          seq: 7,
          keyId: '0a1b',
          location: { lat: 48.1, lon: 11.5 },
        },
      },
    ]);
    // A health report turning bad: raised again for the same device (the open alert takes it, one alert).
    engine.onEvent(
      tamper('meter-1', T0 + 2 * S, { reason: 'secure-boot-disabled', source: 'health', seq: 8 }),
    );
    const [, second] = of('tamper_report');
    expect(second?.title).toBe('meter-1 reported tampering: secure-boot-disabled (health report)');
    expect(second?.subject).toBe('device:meter-1');
    expect(second?.evidence.reasons).toEqual(['enclosure-opened', 'secure-boot-disabled']);
    // Nothing a device says later clears it; an operator resolving it starts a new episode.
    expect(clearedOf('tamper_report')).toEqual([]);
    engine.forget('tamper_report', 'device:meter-1');
    engine.onEvent(tamper('meter-1', T0 + 3 * S, { reason: 'debug-port-enabled', seq: 9 }));
    expect(of('tamper_report')[2]?.evidence.reasons).toEqual(['debug-port-enabled']);
  });

  it('location_jump: high, with both positions and the speed', () => {
    const { engine, of } = setup();
    engine.onEvent(
      entry('device.location_jump', T0 + S, 'truck-7', {
        from: { lat: 48.137, lon: 11.575, at: T0 - 3_600_000 },
        to: { lat: 40.416, lon: -3.703, at: T0 },
        distanceKm: 1480.6,
        speedKmh: 1480.6,
        maxSpeedKmh: 900,
      }),
    );
    expect(of('location_jump')).toEqual([
      expect.objectContaining({
        subject: 'device:truck-7',
        deviceId: 'truck-7',
        severity: 'high',
        title: 'truck-7 moved 1481 km at 1481 km/h (more than 900 km/h)',
        evidence: {
          from: { lat: 48.137, lon: 11.575, at: T0 - 3_600_000 },
          to: { lat: 40.416, lon: -3.703, at: T0 },
          distanceKm: 1480.6,
          speedKmh: 1480.6,
          maxSpeedKmh: 900,
        },
      }),
    ]);
  });

  it('attestation_failed: high on a failed or overdue attestation; cleared by an affirming verdict only', () => {
    const { engine, of, clearedOf } = setup();
    engine.onEvent(verified('gw-1', T0, 'affirming'));
    expect(clearedOf('attestation_failed')).toEqual([]);
    engine.onEvent(failed('gw-1', T0 + S));
    expect(of('attestation_failed')).toEqual([
      expect.objectContaining({
        subject: 'device:gw-1',
        deviceId: 'gw-1',
        severity: 'high',
        title: 'gw-1 failed attestation: pcr_mismatch',
        evidence: {
          reason: 'pcr_mismatch',
          detail: 'PCR 7 differs from the release',
          resultId: `r-${T0 + S}`,
          release: 'fw@1.2.0',
          mismatchedPcrs: [7],
        },
      }),
    ]);
    engine.onEvent(verified('gw-1', T0 + 2 * S, 'warning'));
    expect(clearedOf('attestation_failed')).toEqual([]);
    engine.onEvent(verified('gw-1', T0 + 3 * S, 'affirming'));
    expect(clearedOf('attestation_failed')).toEqual([
      {
        detector: 'attestation_failed',
        subject: 'device:gw-1',
        resolution: 'the device attested successfully',
      },
    ]);

    engine.onEvent(entry('attestation.overdue', T0 + 4 * S, 'gw-2', { lastAt: null, maxAgeMs: 86_400_000 }));
    expect(of('attestation_failed')[1]).toMatchObject({
      subject: 'device:gw-2',
      severity: 'high',
      title: 'gw-2 is overdue for attestation (no good verdict within 24 h)',
      evidence: { reason: 'overdue', lastAt: null, maxAgeMs: 86_400_000 },
    });
  });

  it('lost_device_seen: critical, names the device, the way and the address; cleared when found', () => {
    const { engine, of, clearedOf } = setup();
    engine.onEvent(
      entry('device.lost_seen', T0 + S, 'cam-3', {
        via: 'mqtt',
        remoteAddress: '203.0.113.9',
        certSerial: '0f',
      }),
    );
    engine.onEvent(entry('device.lost_seen', T0 + 2 * S, 'cam-4', { via: 'tpm', remoteAddress: null }));
    expect(of('lost_device_seen').map((f) => [f.severity, f.title, f.evidence])).toEqual([
      [
        'critical',
        'lost device cam-3 seen again via mqtt from 203.0.113.9',
        { via: 'mqtt', remoteAddress: '203.0.113.9', certSerial: '0f', suppressed: 0 },
      ],
      [
        'critical',
        'lost device cam-4 seen again via tpm',
        { via: 'tpm', remoteAddress: null, certSerial: null, suppressed: 0 },
      ],
    ]);
    engine.onEvent(entry('device.found', T0 + 3 * S, 'cam-3', {}));
    engine.onEvent(entry('device.found', T0 + 3 * S, 'cam-9', {}));
    expect(clearedOf('lost_device_seen')).toEqual([
      { detector: 'lost_device_seen', subject: 'device:cam-3', resolution: 'the device was marked found' },
    ]);
  });

  it('a profile turning one off silences it, and only it', () => {
    const { engine, of } = setup(
      profileOf({ builtins: { tamper_report: { enabled: false }, lost_device_seen: { enabled: false } } }),
    );
    engine.onEvent(tamper('meter-1', T0 + S));
    engine.onEvent(
      entry('device.lost_seen', T0 + S, 'cam-3', { via: 'https', remoteAddress: '198.51.100.1' }),
    );
    engine.onEvent(failed('gw-1', T0 + S));
    expect(of('tamper_report')).toEqual([]);
    expect(of('lost_device_seen')).toEqual([]);
    expect(of('attestation_failed')).toHaveLength(1);
  });
});
