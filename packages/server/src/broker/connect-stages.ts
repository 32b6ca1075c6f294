import type { ErrorCode } from '@bulwark/protocol';
import type { Firewall } from '../firewall/index.ts';
import type { DeviceMeter } from '../monitor/index.ts';
import type { DeviceAccess } from '../policy/index.ts';
import type {
  ConnectContext,
  ConnectOutcome,
  ConnectRefusal,
  ConnectStage,
  IdentifiedDevice,
} from './stages.ts';

/** The identity check's answer (pki for certificates, access for the development listener). */
export type ConnectDecision =
  ({ ok: true } & IdentifiedDevice) | { ok: false; code: ErrorCode; reason: string };

export interface ConnectStageDeps {
  firewall: Pick<Firewall, 'certificateBan' | 'admitDevice'>;
  checkConnection(identity: {
    clientId: string;
    certSerial: string | undefined;
    certCn: string | undefined;
  }): Promise<ConnectDecision>;
  checkAnonymous?: ((clientId: string) => Promise<ConnectDecision>) | undefined;
  /** The device's compiled access (policies, zones, quarantine) for this connection. */
  accessFor(identity: {
    deviceId: string;
    remoteAddress: string | null;
    certSubject: Record<string, string>;
    anonymous?: boolean;
  }): Promise<DeviceAccess>;
  /** Per-device metering for the detectors (the meter's rules are in place before the CONNACK). */
  monitor?: { attach(deviceId: string): Promise<DeviceMeter> } | undefined;
  /** Was this device or certificate revoked or disabled at or after `since`? (see sessions.ts) */
  blockedSince(device: IdentifiedDevice, since: number): boolean;
}

const refuse = (refusal: ConnectRefusal): ConnectOutcome => ({ ok: false, refusal });
const next = (context: ConnectContext): ConnectOutcome => ({ ok: true, context });
/** A stage that needs the device before identify ran: a wiring mistake, answered like a store failure. */
const notIdentified = (stage: string) =>
  refuse({ code: 'internal', reason: `access could not be compiled (${stage} before identify)` });

/** A banned certificate is refused before any store read; its refusals are not counted again. */
export function firewallStage(deps: Pick<ConnectStageDeps, 'firewall'>): ConnectStage {
  return {
    name: 'firewall',
    run(context) {
      const { serial } = context.peer;
      const ban = serial ? deps.firewall.certificateBan(serial) : undefined;
      if (ban === undefined) return next(context);
      return refuse({ code: 'forbidden', reason: `certificate banned: ${ban}`, banned: true });
    },
  };
}

/** The certificate is the identity and the client id must equal it (pki); anonymous clients on the dev listener. */
export function identifyStage(
  deps: Pick<ConnectStageDeps, 'checkConnection' | 'checkAnonymous'>,
): ConnectStage {
  return {
    name: 'identify',
    async run(context) {
      const { peer, clientId } = context;
      let decision: ConnectDecision;
      if (!peer.anonymous)
        decision = await deps.checkConnection({ clientId, certSerial: peer.serial, certCn: peer.cn });
      else if (deps.checkAnonymous) decision = await deps.checkAnonymous(clientId);
      else decision = { ok: false, code: 'forbidden', reason: 'anonymous listener not configured' };
      if (!decision.ok) return refuse({ code: decision.code, reason: decision.reason });
      const { deviceId, group, serial } = decision;
      return next({ ...context, device: { deviceId, group, serial } });
    },
  };
}

/** Bans of the device or certificate, and flapping (a ban of the device, never of its address). */
export function admitStage(deps: Pick<ConnectStageDeps, 'firewall'>): ConnectStage {
  return {
    name: 'firewall-admit',
    run(context) {
      const { device } = context;
      if (!device) return notIdentified('firewall-admit');
      const admitted = deps.firewall.admitDevice(device.deviceId, device.serial);
      if (admitted.ok) return next(context);
      return refuse({ code: 'forbidden', reason: admitted.reason, banned: true });
    },
  };
}

/** Compiles the device's access for this connection; its policies may refuse the connection itself. */
export function accessStage(deps: Pick<ConnectStageDeps, 'accessFor'>): ConnectStage {
  return {
    name: 'access',
    async run(context) {
      const { device, peer } = context;
      if (!device) return notIdentified('access');
      const access = await deps.accessFor({
        deviceId: device.deviceId,
        remoteAddress: peer.remoteAddress,
        certSubject: peer.subject,
        anonymous: peer.anonymous,
      });
      const connect = access.connect();
      if (connect.allow) return next({ ...context, access });
      const where = connect.statement ? ` (${connect.policy ?? ''}/${connect.statement})` : '';
      return refuse({ code: 'forbidden', reason: `connect denied: ${connect.reason}${where}` });
    },
  };
}

/** A revocation or disable that happened while this connection was being checked refuses it. */
export function revocationGuardStage(deps: Pick<ConnectStageDeps, 'blockedSince'>): ConnectStage {
  return {
    name: 'revocation-guard',
    run(context) {
      const { device } = context;
      if (!device) return notIdentified('revocation-guard');
      if (!deps.blockedSince(device, context.startedAt)) return next(context);
      return refuse({ code: 'device_revoked', reason: 'device revoked or disabled while connecting' });
    },
  };
}

/** The device's meter, with its profile's rules compiled, before the CONNACK. */
export function meterStage(deps: Pick<ConnectStageDeps, 'monitor'>): ConnectStage {
  return {
    name: 'meter',
    async run(context) {
      const { device } = context;
      if (!device || !deps.monitor) return next(context);
      return next({ ...context, meter: await deps.monitor.attach(device.deviceId) });
    },
  };
}

/** The connect stages in their order: firewall, identify, firewall (device), access, revocation guard, meter. */
export function connectStages(deps: ConnectStageDeps): readonly ConnectStage[] {
  return [
    firewallStage(deps),
    identifyStage(deps),
    admitStage(deps),
    accessStage(deps),
    revocationGuardStage(deps),
    meterStage(deps),
  ];
}
