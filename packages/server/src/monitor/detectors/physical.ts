import { deviceIdOf, subjectOf } from '../doors.ts';
import type { DeviceState } from '../device-state.ts';
import type { DetectorContext } from './detector.ts';
import { defineDetector } from './detector.ts';

/*
 * Physical security (issue 17): what a device's signed tamper and health reports say, where it reports
 * being, what its TPM proves, and a lost device showing up again. Each is a built-in detector a profile
 * can turn off (ETSI EN 303 645 5.11, IEC 62443-4-2 CR 3.4 / CR 3.11 / EDR 3.14).
 */

/** The device's state, unless the profile applying to it turns this detector off. */
function enabledState(
  ctx: DetectorContext,
  input: {
    id: string;
    at: number;
    detector: 'tamper_report' | 'location_jump' | 'attestation_failed' | 'lost_device_seen';
  },
) {
  const state = ctx.device(input.id, input.at);
  return ctx.builtins(state)[input.detector].enabled ? state : undefined;
}

/** Clears the detector's alarm on a device, if it holds one (a device the engine does not know holds none). */
function clearHeld(ctx: DetectorContext, input: { id: string; detector: string; resolution: string }) {
  const state = ctx.known(input.id);
  if (!state?.alarms.has(input.detector)) return;
  ctx.clear({
    state,
    detector: input.detector,
    subject: subjectOf.device(input.id),
    resolution: input.resolution,
  });
}

/**
 * A verified tamper report, or a health report whose security state turned bad (secure boot off, debug port
 * on, enclosure open). Stays open until an operator resolves it: nothing a device says later proves the
 * enclosure was not opened. The default profile quarantines the device (monitor.service.ts).
 *
 * One alert per device while it is open: each report raises again, the alert service folds it into the open
 * alert, and the evidence lists every reason of the episode (kept per device state, oldest first).
 */
export function createTamperReportDetector() {
  const tamperReasons = new WeakMap<DeviceState, string[]>();
  return defineDetector({
    name: 'tamper_report',
    consumes: ['device.tamper_reported'],
    onEvent(entry, ctx) {
      const id = deviceIdOf(entry.subject);
      if (!id) return;
      const state = enabledState(ctx, { id, at: entry.ts, detector: 'tamper_report' });
      if (!state) return;
      const data = entry.data;
      const held = state.alarms.has('tamper_report') ? (tamperReasons.get(state) ?? []) : [];
      const reasons = held.includes(data.reason) ? held : [...held, data.reason];
      tamperReasons.set(state, reasons);
      ctx.raise({
        state,
        detector: 'tamper_report',
        subject: subjectOf.device(id),
        deviceId: id,
        severity: 'high',
        title: `${id} reported tampering: ${data.reason}${data.source === 'health' ? ' (health report)' : ''}`,
        at: entry.ts,
        evidence: {
          reason: data.reason,
          reasons,
          source: data.source,
          detail: data.detail ?? null,
          reportedAt: data.reportedAt,
          seq: data.seq,
          keyId: data.keyId,
          location: data.location ? { lat: data.location.lat, lon: data.location.lon } : null,
        },
      });
    },
  });
}

/** Two located reports further apart than the configured speed allows (physical.maxSpeedKmh). */
export const locationJump = defineDetector({
  name: 'location_jump',
  consumes: ['device.location_jump'],
  onEvent(entry, ctx) {
    const id = deviceIdOf(entry.subject);
    if (!id) return;
    const state = enabledState(ctx, { id, at: entry.ts, detector: 'location_jump' });
    if (!state) return;
    const { from, to, distanceKm, speedKmh, maxSpeedKmh } = entry.data;
    ctx.raise({
      state,
      detector: 'location_jump',
      subject: subjectOf.device(id),
      deviceId: id,
      severity: 'high',
      title: `${id} moved ${Math.round(distanceKm)} km at ${Math.round(speedKmh)} km/h (more than ${maxSpeedKmh} km/h)`,
      at: entry.ts,
      evidence: {
        from: { lat: from.lat, lon: from.lon, at: from.at },
        to: { lat: to.lat, lon: to.lon, at: to.at },
        distanceKm,
        speedKmh,
        maxSpeedKmh,
      },
    });
  },
});

/**
 * TPM attestation failed (a contraindicated verdict) or is overdue; resolved by the next affirming verdict.
 * The device is held in quarantine by policy meanwhile (access), whatever the profile's responses.
 */
export const attestationFailed = defineDetector({
  name: 'attestation_failed',
  consumes: ['attestation.failed', 'attestation.overdue', 'attestation.verified'],
  onEvent(entry, ctx) {
    const id = deviceIdOf(entry.subject);
    if (!id) return;
    if (entry.type === 'attestation.verified') {
      if (entry.data.tier === 'affirming')
        clearHeld(ctx, {
          id,
          detector: 'attestation_failed',
          resolution: 'the device attested successfully',
        });
      return;
    }
    const state = enabledState(ctx, { id, at: entry.ts, detector: 'attestation_failed' });
    if (!state) return;
    const base = {
      state,
      detector: 'attestation_failed',
      subject: subjectOf.device(id),
      deviceId: id,
      severity: 'high',
      at: entry.ts,
    } as const;
    if (entry.type === 'attestation.overdue') {
      const { lastAt, maxAgeMs } = entry.data;
      ctx.raise({
        ...base,
        title: `${id} is overdue for attestation (no good verdict within ${Math.round(maxAgeMs / 3_600_000)} h)`,
        evidence: { reason: 'overdue', lastAt, maxAgeMs },
      });
      return;
    }
    const data = entry.data;
    ctx.raise({
      ...base,
      title: `${id} failed attestation: ${data.reason}`,
      evidence: {
        reason: data.reason,
        detail: data.detail,
        resultId: data.resultId,
        release: data.release,
        mismatchedPcrs: data.mismatchedPcrs,
      },
    });
  },
});

/**
 * A device marked lost presented its certificate (MQTT, HTTPS) or its TPM again: someone holds it. Resolved
 * when the device is marked found.
 */
export const lostDeviceSeen = defineDetector({
  name: 'lost_device_seen',
  consumes: ['device.lost_seen', 'device.found'],
  onEvent(entry, ctx) {
    const id = deviceIdOf(entry.subject);
    if (!id) return;
    if (entry.type === 'device.found') {
      clearHeld(ctx, { id, detector: 'lost_device_seen', resolution: 'the device was marked found' });
      return;
    }
    const state = enabledState(ctx, { id, at: entry.ts, detector: 'lost_device_seen' });
    if (!state) return;
    const { via, remoteAddress, certSerial, suppressed } = entry.data;
    ctx.raise({
      state,
      detector: 'lost_device_seen',
      subject: subjectOf.device(id),
      deviceId: id,
      severity: 'critical',
      title: `lost device ${id} seen again via ${via}${remoteAddress ? ` from ${remoteAddress}` : ''}`,
      at: entry.ts,
      evidence: {
        via,
        remoteAddress,
        certSerial: certSerial ?? null,
        suppressed: suppressed ?? 0,
      },
    });
  },
});
