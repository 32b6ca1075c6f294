import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FirmwareCommand } from '@bulwark/protocol';
import { createDeviceService } from '../devices/index.ts';
import type { SecurityEvent } from '../events/index.ts';
import { createSecretBox } from '../secrets/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { releaseInput } from '../test-support/firmware.ts';
import { createFirmware, generateTufKey, privateKeyFromPem, signDocument, type Firmware } from './index.ts';
import { assignPhases, inWindow } from './rollout.plan.ts';
import { recordingEvents } from './recording-events.fixture.ts';

const DAY = 86_400_000;

describe('rollout rules', () => {
  it('assigns cumulative phases by a stable hash order', () => {
    const ids = Array.from({ length: 100 }, (_, i) => `d${i}`);
    const phases = [1, 10, 50, 100].map((percent) => ({ percent, soakMs: 0 }));
    const plan = assignPhases('r1', ids, phases);
    expect([0, 1, 2, 3].map((p) => plan.filter((d) => d.phase === p).length)).toEqual([1, 9, 40, 50]);
    expect(assignPhases('r1', [...ids].reverse(), phases)).toEqual(plan);
    expect(assignPhases('r2', ids, phases)[0]?.deviceId).not.toBe(plan[0]?.deviceId);
    expect(assignPhases('r3', ['only'], phases)).toEqual([{ deviceId: 'only', phase: 0, position: 0 }]);
  });

  it('knows maintenance windows, including ones that wrap past midnight', () => {
    const at = (iso: string) => Date.parse(iso);
    const night = { start: '22:00', end: '04:00' };
    expect(inWindow(night, at('2026-03-02T23:30:00Z'))).toBe(true);
    expect(inWindow(night, at('2026-03-03T03:59:00Z'))).toBe(true);
    expect(inWindow(night, at('2026-03-03T12:00:00Z'))).toBe(false);
    // Monday night only: 01:00 on Tuesday still belongs to Monday's window.
    const monday = { ...night, days: [1] };
    expect(inWindow(monday, at('2026-03-03T01:00:00Z'))).toBe(true); // 2026-03-03 is a Tuesday
    expect(inWindow(monday, at('2026-03-03T23:00:00Z'))).toBe(false);
    expect(inWindow(null, 0)).toBe(true);
  });
});

describe.each(testDialects)('rollouts (%s)', (dialect) => {
  let t: TestStore;
  let firmware: Firmware;
  let events: SecurityEvent[];
  let sent: { deviceId: string; command: FirmwareCommand }[];
  let clock: number;
  let releaseId: string;
  let target: string;

  beforeEach(async () => {
    t = await createTestStore(dialect);
    events = [];
    sent = [];
    clock = Date.parse('2026-03-02T12:00:00Z');
    const emitter = recordingEvents(t.store.db, events);
    const devices = createDeviceService({
      db: t.store.db,
      events: emitter,
      now: () => clock,
      tokenTtlMs: DAY,
    });
    firmware = createFirmware({
      db: t.store.db,
      box: createSecretBox(randomBytes(32)),
      events: emitter,
      now: () => clock,
      dir: mkdtempSync(path.join(tmpdir(), 'bulwark-rollout-')),
      settings: {
        maxArtifactSize: 1 << 20,
        deviceTimeout: 60 * 60_000,
        maxAge: 365 * DAY,
        rootExpiry: 365 * DAY,
        targetsExpiry: 90 * DAY,
        snapshotExpiry: 7 * DAY,
        timestampExpiry: DAY,
      },
      devices,
      zoneResolver: () => Promise.resolve((d) => (d.group === 'valves' ? 'cell-2' : 'cell-1')),
    });
    for (let i = 0; i < 10; i++)
      await devices.add({ id: `d${i}`, group: i < 8 ? 'pumps' : 'valves' }, 'test');
    await t.store.db.updateTable('devices').set({ status: 'active' }).execute();
    await t.store.db
      .updateTable('devices')
      .set({ attributes: '{"site":"north"}' })
      .where('id', 'in', ['d0', 'd1'])
      .execute();

    // A signed release (Date.now-based signatures: TUF expiry is checked against the wall clock by clients).
    const bytes = randomBytes(256);
    const created = await firmware.releases.create(
      releaseInput(
        { size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') },
        { endOfSupport: clock + 365 * DAY },
      ),
      'test',
    );
    const ready = await firmware.releases.upload(created.id, Readable.from([bytes]), 'test');
    releaseId = ready.id;
    target = ready.targetPath;
    await expect(
      firmware.rollouts.create(
        { release: releaseId, selector: { all: true }, settings: { phases: [{ percent: 100, soakMs: 0 }] } },
        'test',
      ),
    ).rejects.toMatchObject({ code: 'conflict' }); // not signed yet
    const root = privateKeyFromPem(generateTufKey().privatePem);
    const targets = privateKeyFromPem(generateTufKey().privatePem);
    const unsigned = await firmware.tuf.prepareInitialRoot(
      { rootKeys: [root.public], rootThreshold: 1, targetsKeys: [targets.public], targetsThreshold: 1 },
      'test',
    );
    await firmware.tuf.publish(signDocument(unsigned, [root]), 'test');
    await firmware.tuf.publish(signDocument(await firmware.tuf.prepareTargets('test'), [targets]), 'test');
    firmware.connect((deviceId, _topic, payload) => {
      sent.push({ deviceId, command: JSON.parse(payload) as FirmwareCommand });
      return Promise.resolve();
    });
  });
  afterEach(async () => t.cleanup());

  const report = (deviceId: string, step: 'succeeded' | 'failed' | 'downloading', rolloutId: string) => {
    const command = sent.filter((c) => c.deviceId === deviceId).at(-1)?.command;
    return firmware.rollouts.report(deviceId, {
      step,
      target,
      rolloutId,
      attempt: command?.attempt,
      ts: clock,
      ...(step === 'failed' ? { reason: 'install_failed' as const } : {}),
    });
  };

  it('targets groups and attributes, skips devices in another rollout, and waits for approval and soak', async () => {
    const r = await firmware.rollouts.create(
      {
        release: releaseId,
        selector: { groups: ['pumps'], attributes: { site: 'north' } },
        settings: {
          phases: [50, 100].map((percent) => ({ percent, soakMs: 10 * 60_000 })),
          requireApproval: true,
        },
      },
      'user:op',
    );
    expect(r.phases.map((p) => p.devices)).toEqual([1, 1]);
    expect(sent).toHaveLength(1);
    const first = sent[0]!.deviceId;
    await report(first, 'downloading', r.id);
    expect((await firmware.rollouts.devices(r.id, { phase: 0 }))[0]).toMatchObject({
      status: 'in_progress',
      step: 'downloading',
    });
    await report(first, 'succeeded', r.id);
    // Soak: nothing moves for 10 minutes.
    clock += 9 * 60_000;
    await firmware.rollouts.tick();
    expect((await firmware.rollouts.get(r.id)).status).toBe('running');
    clock += 2 * 60_000;
    await firmware.rollouts.tick();
    expect((await firmware.rollouts.get(r.id)).status).toBe('waiting_approval');
    expect(sent).toHaveLength(1);
    await expect(firmware.rollouts.resume(r.id, 'user:op')).rejects.toMatchObject({ code: 'conflict' });
    const approved = await firmware.rollouts.approve(r.id, 'user:op');
    expect(approved.currentPhase).toBe(1);
    expect(sent).toHaveLength(2);

    // A second rollout over the same group skips the device still updating in the first.
    const second = await firmware.rollouts.create(
      {
        release: releaseId,
        selector: { groups: ['pumps'] },
        settings: { phases: [{ percent: 100, soakMs: 0 }] },
      },
      'user:op',
    );
    expect(second.phases[0]).toMatchObject({ devices: 8, skipped: 1 });
    expect(events.filter((e) => e.type === 'rollout.approved')).toHaveLength(1);
  });

  it('retries a failing device a bounded number of times, counts silence as failure, and can abort', async () => {
    const r = await firmware.rollouts.create(
      {
        release: releaseId,
        selector: { devices: ['d0', 'd1', 'd2', 'd3'] },
        settings: {
          phases: [{ percent: 100, soakMs: 0 }],
          failureThreshold: 50,
          maxRetries: 1,
          retryDelayMs: 60_000,
        },
      },
      'test',
    );
    expect(sent.map((c) => c.deviceId).sort()).toEqual(['d0', 'd1', 'd2', 'd3']);
    expect(await firmware.rollouts.devices(r.id, { groupsIn: ['valves'] })).toEqual([]);
    expect(await firmware.rollouts.devices(r.id, { groupsIn: ['pumps'] })).toHaveLength(4);
    await report('d0', 'failed', r.id);
    expect((await firmware.rollouts.devices(r.id)).find((d) => d.deviceId === 'd0')).toMatchObject({
      status: 'pending',
      attempts: 1,
    });
    await firmware.rollouts.tick();
    expect(sent.filter((c) => c.deviceId === 'd0')).toHaveLength(1); // retry delay not over yet
    clock += 61_000;
    await firmware.rollouts.tick();
    expect(sent.filter((c) => c.deviceId === 'd0').map((c) => c.command.attempt)).toEqual([1, 2]);
    // A report for the superseded first attempt is ignored.
    await firmware.rollouts.report('d0', {
      step: 'succeeded',
      target,
      rolloutId: r.id,
      attempt: 1,
      ts: clock,
    });
    expect((await firmware.rollouts.devices(r.id)).find((d) => d.deviceId === 'd0')?.status).toBe('sent');
    await report('d0', 'failed', r.id);
    expect((await firmware.rollouts.devices(r.id)).find((d) => d.deviceId === 'd0')).toMatchObject({
      status: 'failed',
      attempts: 2,
    });
    // d1 and d2 succeed, d3 says nothing for an hour: a failed attempt, then final after its retry.
    await report('d1', 'succeeded', r.id);
    await report('d2', 'succeeded', r.id);
    clock += 61 * 60_000;
    await firmware.rollouts.tick();
    expect((await firmware.rollouts.devices(r.id)).find((d) => d.deviceId === 'd3')).toMatchObject({
      status: 'pending',
      attempts: 1,
      reason: 'timeout',
    });
    clock += 61_000;
    await firmware.rollouts.tick();
    expect((await firmware.rollouts.devices(r.id)).find((d) => d.deviceId === 'd3')).toMatchObject({
      status: 'sent',
      attempts: 2,
    });
    const aborted = await firmware.rollouts.abort(r.id, 'test', 'enough');
    expect(aborted.status).toBe('aborted');
    await expect(firmware.rollouts.abort(r.id, 'test')).rejects.toMatchObject({ code: 'conflict' });
  });

  it('sends only inside the maintenance window, and a device that reconnects gets its command again', async () => {
    const r = await firmware.rollouts.create(
      {
        release: releaseId,
        selector: { devices: ['d5'] },
        settings: {
          phases: [{ percent: 100, soakMs: 0 }],
          maintenanceWindow: { start: '22:00', end: '04:00' },
        },
      },
      'test',
    );
    expect(sent).toHaveLength(0); // 12:00 UTC
    clock = Date.parse('2026-03-02T22:30:00Z');
    await firmware.rollouts.tick();
    expect(sent).toHaveLength(1);
    await firmware.rollouts.deviceOnline('d5', null);
    expect(sent.map((c) => c.command.attempt)).toEqual([1, 1]);
    // It reconnects already running the image: that is a success.
    await firmware.rollouts.deviceOnline('d5', target);
    expect((await firmware.rollouts.get(r.id)).status).toBe('completed');
  });

  it('a paused rollout resumes counting only new failures; retryFailed gives failed devices new attempts', async () => {
    const r = await firmware.rollouts.create(
      {
        release: releaseId,
        selector: { devices: ['d0', 'd1', 'd2', 'd3', 'd4'] },
        settings: { phases: [{ percent: 100, soakMs: 0 }], failureThreshold: 20, maxRetries: 0 },
      },
      'test',
    );
    await report('d0', 'failed', r.id);
    expect((await firmware.rollouts.get(r.id)).status).toBe('running'); // 1 of 5 = 20%, not above
    await report('d1', 'failed', r.id);
    const paused = await firmware.rollouts.get(r.id);
    expect(paused.status).toBe('paused');
    expect(events.filter((e) => e.type === 'rollout.paused').at(-1)?.data).toMatchObject({
      automatic: true,
      failureRate: 40,
      threshold: 20,
    });
    await firmware.rollouts.resume(r.id, 'user:op');
    expect((await firmware.rollouts.get(r.id)).status).toBe('running');
    await firmware.rollouts.pause(r.id, 'user:op', 'checking');
    await firmware.rollouts.resume(r.id, 'user:op', { retryFailed: true });
    expect(sent.filter((c) => c.deviceId === 'd0')).toHaveLength(2);
    for (const d of ['d0', 'd1', 'd2', 'd3', 'd4']) await report(d, 'succeeded', r.id);
    expect((await firmware.rollouts.get(r.id)).status).toBe('completed');
  });

  it('skips devices known to be other hardware instead of failing them', async () => {
    await firmware.fleet.recordState('d3', {
      hardwareId: 'valve-v1',
      target: null,
      version: '0.1.0',
      securityVersion: 0,
      ts: clock,
    });
    const r = await firmware.rollouts.create(
      {
        release: releaseId,
        selector: { devices: ['d2', 'd3'] },
        settings: { phases: [{ percent: 100, soakMs: 0 }] },
      },
      'test',
    );
    expect((await firmware.rollouts.devices(r.id)).map((d) => [d.deviceId, d.status, d.reason])).toEqual(
      expect.arrayContaining([
        ['d2', 'sent', null],
        ['d3', 'skipped', 'hardware_mismatch'],
      ]),
    );
  });

  it('targets a security zone', async () => {
    const r = await firmware.rollouts.create(
      {
        release: releaseId,
        selector: { zones: ['cell-2'] },
        settings: { phases: [{ percent: 100, soakMs: 0 }] },
      },
      'test',
    );
    expect((await firmware.rollouts.devices(r.id)).map((d) => d.deviceId).sort()).toEqual(['d8', 'd9']);
  });

  it('refuses empty selectors and bad phases', async () => {
    const create = (selector: object, phases: number[]) =>
      firmware.rollouts.create(
        {
          release: releaseId,
          selector,
          settings: { phases: phases.map((percent) => ({ percent, soakMs: 0 })) },
        },
        'test',
      );
    await expect(create({}, [100])).rejects.toMatchObject({ code: 'validation_failed' });
    await expect(create({ all: true }, [50, 40, 100])).rejects.toMatchObject({ code: 'validation_failed' });
    await expect(create({ all: true }, [10, 50])).rejects.toMatchObject({ code: 'validation_failed' });
    await expect(create({ groups: ['nobody'] }, [100])).rejects.toMatchObject({ code: 'validation_failed' });
  });
});
