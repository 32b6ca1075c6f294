import { BulwarkError, type AttestationStanding } from '@bulwark/protocol';
import { subjectOf } from '../events/index.ts';
import type { Decision, DeviceAccess } from '../policy/index.ts';
import { accessFor, accessForApp, standingFor } from './access.compile.ts';
import { attestationHold, deviceRow, isQuarantined, type AccessContext } from './access.context.ts';

/** Per-device access: quarantine, simulation, and what a device can do now. */

/**
 * Quarantine: the device keeps only `devices/{id}/quarantine/#` and its command topic, at once. The device's
 * row changes through the devices door, in the same transaction as the event.
 */
export async function setQuarantine(
  ctx: AccessContext,
  change: { deviceId: string; quarantined: boolean; reason?: string | undefined },
  actor: string,
): Promise<void> {
  const { deviceId: id, quarantined, reason } = change;
  const subject = subjectOf.device(id);
  await ctx.events.atomically(async (tx, emit) => {
    if (!(await ctx.devices.markQuarantined(tx, { id, quarantined }))) return;
    if (quarantined) emit({ type: 'device.quarantined', actor, subject, data: reason ? { reason } : {} });
    else emit({ type: 'device.released', actor, subject, data: {} });
  });
}

export interface SimulateInput {
  deviceId: string;
  action: 'connect' | 'publish' | 'subscribe' | 'receive';
  topic?: string;
  sourceAddress?: string;
  /** Client-certificate subject fields to simulate (CN defaults to the device id). */
  certSubject?: Readonly<Record<string, string>>;
  /** An attestation standing to try (default: the device's current one). */
  attestation?: AttestationStanding | undefined;
}

/** An app to simulate: as the apps module knows it (its zone and purpose), and which instance. */
export interface SimulatedApp {
  name: string;
  instance?: string | null | undefined;
  zone: string | null;
  purpose: string | null;
}

export type AppSimulateInput = Omit<SimulateInput, 'deviceId' | 'attestation'> & { app: SimulatedApp };

/** A device's attestation standing, and the hold it puts on its access (absent when none). */
function attestationView(standing: AttestationStanding): { attestation: AttestationStanding; held?: string } {
  const held = attestationHold(standing);
  return held ? { attestation: standing, held } : { attestation: standing };
}

function decide(access: DeviceAccess, input: Pick<SimulateInput, 'action' | 'topic'>) {
  let decision: Decision;
  if (input.action === 'connect') decision = access.connect();
  else {
    if (!input.topic)
      throw new BulwarkError('validation_failed', `a topic is needed to simulate ${input.action}`);
    decision =
      input.action === 'publish'
        ? access.publish(input.topic)
        : input.action === 'subscribe'
          ? access.subscribe(input.topic)
          : access.receiveDecision(input.topic);
  }
  return {
    ...decision,
    action: input.action,
    topic: input.topic ?? null,
    zone: access.zone,
    // For a deny without a deciding statement: what applied, and what was dropped for this context and why.
    explain: access.describe(),
  };
}

/** Explain a decision: allow or deny, and the statement (and policy) that decided. */
export async function simulate(ctx: AccessContext, input: SimulateInput) {
  const identity = {
    deviceId: input.deviceId,
    remoteAddress: input.sourceAddress ?? null,
    certSubject: input.certSubject,
  };
  const standing = input.attestation ?? standingFor(ctx, identity);
  const access = await accessFor(ctx, identity, standing);
  return { ...decide(access, input), deviceId: input.deviceId, ...attestationView(standing) };
}

/** Explain an app's decision (as `simulate`), for `bulwark policy test --app`. */
export async function simulateApp(ctx: AccessContext, input: AppSimulateInput) {
  const { name, instance = null, zone, purpose } = input.app;
  const access = await accessForApp(ctx, {
    app: name,
    instance,
    zone,
    purpose,
    remoteAddress: input.sourceAddress ?? null,
    certSubject: input.certSubject,
  });
  return { ...decide(access, input), app: name, instance };
}

/**
 * What a device can do now: the statements that apply after variables and conditions, its zone, and its
 * attestation standing (with the hold, when it keeps the device to the quarantine policy).
 */
export async function describeAccess(ctx: AccessContext, deviceId: string) {
  const row = await deviceRow(ctx, deviceId);
  const standing = ctx.attestationStanding(deviceId);
  const access = await accessFor(ctx, { deviceId, remoteAddress: null }, standing);
  return {
    deviceId,
    zone: access.zone,
    quarantined: isQuarantined(row),
    ...attestationView(standing),
    ...access.describe(),
  };
}
