import path from 'node:path';
import { certificateInfo, openIdentityStore } from '@bulwark/device';
import { statusAllows, type DeviceService } from '../devices/index.ts';
import { modelOf, type DeviceModel } from './rhythm.ts';

/*
 * The platform side of a simulation, run in the CLI's process on the data directory as every CLI command
 * does: each simulated device is registered (with its group and model) and given a one-time enrollment
 * token, unless the identity kept in the state directory from an earlier run still holds a good certificate.
 * The running server sees the devices and tokens in the store; the events reach it through the audit log.
 */

/** What registration needs from the platform. */
export interface RegistrationDeps {
  readonly devices: Pick<DeviceService, 'find' | 'addWithToken' | 'issueToken'>;
  /** The PKI's view of a certificate: issued by it, not revoked, its device still known. */
  readonly certificateStanding: (serial: string) => Promise<{ ok: true } | { ok: false; reason: string }>;
  readonly now: () => number;
}

/** One device of the simulated fleet, ready to run (after enrolling with `token` when it has one). */
export interface PlannedDevice {
  readonly id: string;
  readonly dir: string;
  readonly model: DeviceModel;
  /** A one-time enrollment token: the device enrolls over EST first. Absent: it runs on its kept identity. */
  readonly token?: string | undefined;
  /** Quarantined on the platform: it runs, and the broker refuses what the quarantine policy does not allow. */
  readonly quarantined: boolean;
}

export interface FleetPlan {
  readonly devices: PlannedDevice[];
  /** Devices that cannot run: revoked, decommissioned, lost or disabled on the platform. */
  readonly skipped: { readonly id: string; readonly reason: string }[];
  /** How many were added to the platform by this run. */
  readonly added: number;
}

export interface PlanInput {
  readonly count: number;
  readonly prefix: string;
  readonly stateDir: string;
  readonly actor: string;
  /** How long the tokens of this run are valid. */
  readonly tokenTtlMs: number;
}

/** The fleet's device ids: `<prefix>-0001` … */
export function simulatedDeviceId(prefix: string, index: number): string {
  return `${prefix}-${String(index + 1).padStart(4, '0')}`;
}

/** True when `dir` holds this device's identity with a certificate the platform still honours. */
async function keptIdentityIsGood(
  deps: RegistrationDeps,
  device: { id: string; dir: string },
): Promise<boolean> {
  const store = openIdentityStore(device.dir);
  if (!(await store.exists())) return false;
  try {
    const identity = await store.load();
    const certificate = certificateInfo(identity.certPem);
    if (identity.deviceId !== device.id || certificate.notAfter <= deps.now()) return false;
    return (await deps.certificateStanding(certificate.serialNumber)).ok;
  } catch {
    return false; // unreadable: enroll again
  }
}

type Step =
  { kind: 'run'; device: PlannedDevice; added: boolean } | { kind: 'skip'; id: string; reason: string };

async function planOne(deps: RegistrationDeps, input: PlanInput & { index: number }): Promise<Step> {
  const id = simulatedDeviceId(input.prefix, input.index);
  const dir = path.join(input.stateDir, id);
  const model = modelOf(input.index);
  const device = await deps.devices.find(id);
  if (!device) {
    const added = await deps.devices.addWithToken(
      { id, group: model.group, attributes: { model: model.name, simulated: 'true' } },
      input.actor,
      input.tokenTtlMs,
    );
    return { kind: 'run', added: true, device: { id, dir, model, token: added.token, quarantined: false } };
  }
  if (!statusAllows(device.status, 'enroll'))
    return { kind: 'skip', id, reason: `it is ${device.status} on the platform` };
  const quarantined = device.state === 'quarantined';
  if (device.status === 'active' && (await keptIdentityIsGood(deps, { id, dir })))
    return { kind: 'run', added: false, device: { id, dir, model, quarantined } };
  const { token } = await deps.devices.issueToken(id, input.actor, input.tokenTtlMs);
  return { kind: 'run', added: false, device: { id, dir, model, token, quarantined } };
}

/**
 * Registers the simulated fleet on the platform: new devices are added with a token, known ones whose kept
 * identity is still good run on it (a second run reuses the fleet), the others get a new token.
 */
export async function planFleet(deps: RegistrationDeps, input: PlanInput): Promise<FleetPlan> {
  const devices: PlannedDevice[] = [];
  const skipped: FleetPlan['skipped'] = [];
  let added = 0;
  for (let index = 0; index < input.count; index++) {
    const step = await planOne(deps, { ...input, index });
    if (step.kind === 'skip') skipped.push({ id: step.id, reason: step.reason });
    else {
      devices.push(step.device);
      if (step.added) added++;
    }
  }
  return { devices, skipped, added };
}
