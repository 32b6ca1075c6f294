import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AttestationStanding } from '@bulwark/protocol';
import { createDeviceService, type DeviceService } from '../devices/index.ts';
import { createAuditLog, createEventBus, subjectOf, type EventBus } from '../events/index.ts';
import { createSecretBox } from '../secrets/index.ts';
import { isBusy, isUniqueViolation } from '../store/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { createAccessService, type AccessService } from './index.ts';

/**
 * Attestation holds access (issue 17): a device whose standing is contraindicated or overdue compiles to the
 * quarantine policy until it attests again; the standing comes from the attestation door, asked at compile time.
 */
describe.each(testDialects)('access held by attestation on %s', (dialect) => {
  let t: TestStore;
  let bus: EventBus;
  let devices: DeviceService;
  let access: AccessService;
  const now = 1_800_000_000_000;
  const standings = new Map<string, AttestationStanding>();
  let asked = 0;

  beforeEach(async () => {
    standings.clear();
    asked = 0;
    t = await createTestStore(dialect);
    const audit = createAuditLog({
      db: t.store.db,
      mac: createSecretBox(randomBytes(32)),
      now: () => now,
      isRetryable: (e) => isUniqueViolation(e) || isBusy(e),
    });
    await audit.ensureAnchor();
    bus = createEventBus({ log: audit, db: t.store.db });
    devices = createDeviceService({ db: t.store.db, events: bus, now: () => now, tokenTtlMs: 86_400_000 });
    access = createAccessService({
      db: t.store.db,
      events: bus,
      now: () => now,
      devices,
      attestationStanding: (id) => {
        asked++;
        return standings.get(id) ?? 'none';
      },
    });
    await devices.add({ id: 'cam-1', group: 'cameras' }, 'test');
    await access.putPolicy(
      'fleet',
      {
        version: '2026-11',
        statements: [
          { sid: 'fleet-pub', effect: 'allow', actions: ['mqtt:publish'], resources: ['fleet/#'] },
          {
            sid: 'attested-pub',
            effect: 'allow',
            actions: ['mqtt:publish'],
            resources: ['secure/#'],
            conditions: { attestation: ['affirming'] },
          },
        ],
      },
      'test',
    );
    await access.attach('fleet', { kind: 'all', target: '*' }, 'test');
  });
  afterEach(async () => {
    await bus.close();
    await t.cleanup();
  });

  const compiled = () => access.accessFor({ deviceId: 'cam-1', remoteAddress: null });

  it.each<AttestationStanding>(['contraindicated', 'overdue'])(
    'a device whose standing is %s gets only the quarantine policy, and says why',
    async (standing) => {
      standings.set('cam-1', standing);
      const a = await compiled();
      expect(a.publish('devices/cam-1/telemetry')).toMatchObject({
        allow: false,
        reason: 'no_matching_statement',
      });
      expect(a.publish('fleet/x').allow).toBe(false);
      expect(a.publish('devices/cam-1/quarantine/status')).toMatchObject({
        allow: true,
        policy: 'quarantine',
      });
      expect(a.subscribe('devices/cam-1/commands/+').allow).toBe(true);
      const held = `held by attestation: ${standing}`;
      expect(a.describe().dropped).toEqual([
        { policy: 'device-default', statement: 'own-topics', reason: held },
        { policy: 'fleet', statement: 'fleet-pub', reason: held },
        { policy: 'fleet', statement: 'attested-pub', reason: held },
      ]);
      expect(await access.describeAccess('cam-1')).toMatchObject({
        quarantined: false,
        attestation: standing,
        held,
        statements: [{ policy: 'quarantine' }, {}, {}, {}, {}],
      });
      expect(
        await access.simulate({ deviceId: 'cam-1', action: 'publish', topic: 'devices/cam-1/telemetry' }),
      ).toMatchObject({
        allow: false,
        attestation: standing,
        held,
        explain: { dropped: [{ reason: held }, {}, {}] },
      });
    },
  );

  it.each<[AttestationStanding, boolean]>([
    ['affirming', true],
    ['warning', false],
    ['none', false],
  ])(
    'a device whose standing is %s keeps its policies (the attestation condition: %s)',
    async (standing, secure) => {
      standings.set('cam-1', standing);
      const a = await compiled();
      expect(a.publish('devices/cam-1/telemetry')).toMatchObject({ allow: true, policy: 'device-default' });
      expect(a.publish('fleet/x').allow).toBe(true);
      expect(a.publish('secure/x').allow).toBe(secure);
      const view = await access.describeAccess('cam-1');
      expect(view).toMatchObject({ attestation: standing });
      expect(view).not.toHaveProperty('held');
    },
  );

  it('simulate tries a standing without changing the device', async () => {
    standings.set('cam-1', 'affirming');
    const asIf = await access.simulate({
      deviceId: 'cam-1',
      action: 'publish',
      topic: 'fleet/x',
      attestation: 'overdue',
    });
    expect(asIf).toMatchObject({
      allow: false,
      attestation: 'overdue',
      held: 'held by attestation: overdue',
    });
    expect((await compiled()).publish('fleet/x').allow).toBe(true);
  });

  it('asks for the standing once per compile, never per message', async () => {
    const a = await compiled();
    const before = asked;
    for (let i = 0; i < 100; i++) a.publish(`fleet/${i}`);
    expect(asked).toBe(before);
  });

  it('an attestation result recompiles only that device, and its next compile holds it', async () => {
    const changed: (string | undefined)[] = [];
    access.onChange((id) => changed.push(id));
    expect((await compiled()).publish('fleet/x').allow).toBe(true);
    // What the attestation module does on a contraindicated verdict: update its standing, commit the event.
    standings.set('cam-1', 'contraindicated');
    await bus.atomically((_tx, emit) => {
      emit({
        type: 'attestation.failed',
        actor: 'system',
        subject: subjectOf.device('cam-1'),
        data: {
          resultId: 'r1',
          tier: 'contraindicated',
          reason: 'pcr_mismatch',
          detail: 'PCR 7 differs',
          release: null,
          mismatchedPcrs: [7],
        },
      });
      return Promise.resolve();
    });
    expect(changed).toEqual(['cam-1']);
    expect((await compiled()).publish('fleet/x').allow).toBe(false);
    standings.set('cam-1', 'affirming');
    await bus.emit({
      type: 'attestation.verified',
      actor: 'system',
      subject: subjectOf.device('cam-1'),
      data: { resultId: 'r2', tier: 'affirming', reason: 'ok', detail: '', release: null },
    });
    expect(changed).toEqual(['cam-1', 'cam-1']);
    expect((await compiled()).publish('secure/x').allow).toBe(true);
  });

  it('without an attestation door every device stands at none', async () => {
    const plain = createAccessService({ db: t.store.db, events: bus, now: () => now, devices });
    standings.set('cam-1', 'contraindicated');
    const view = await plain.describeAccess('cam-1');
    expect(view).toMatchObject({
      attestation: 'none',
      statements: [{ policy: 'device-default' }, { policy: 'fleet' }],
      dropped: [{ statement: 'attested-pub', reason: 'attestation standing is none' }],
    });
    expect(view).not.toHaveProperty('held');
  });
});
