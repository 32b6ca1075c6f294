import type { ErrorCode } from '@bulwark/protocol';
import type { AppAccessIdentity } from '../access/index.ts';
import type { AppCheckRequest, AppDecision } from '../apps/index.ts';
import type { Firewall } from '../firewall/index.ts';
import type { DeviceMeter } from '../monitor/index.ts';
import type { DeviceAccess } from '../policy/index.ts';
import { appKey, blockOfApp, type Blockable } from './sessions.ts';
import {
  type ConnectContext,
  type ConnectOutcome,
  type ConnectRefusal,
  type ConnectStage,
  type IdentifiedApp,
  type IdentifiedDevice,
} from './stages.ts';

type Refused = { ok: false; code: ErrorCode; reason: string };

/**
 * The identity check's answer (pki for certificates, access for the development listener): a device, or
 * an app certificate (whose client id the apps check then compares, see {@link AppDecision}).
 */
export type ConnectDecision =
  | ({ ok: true; kind?: 'device' } & IdentifiedDevice)
  | { ok: true; kind: 'app'; app: string; serial: string }
  | Refused;

export interface ConnectStageDeps {
  firewall: Pick<Firewall, 'certificateBan' | 'admitDevice'>;
  checkConnection(identity: {
    clientId: string;
    certSerial: string | undefined;
    certCn: string | undefined;
  }): Promise<ConnectDecision>;
  checkAnonymous?: ((clientId: string) => Promise<ConnectDecision>) | undefined;
  /** The apps check: app certificates and app credentials (user name = app, password = token). */
  checkApp?: ((request: AppCheckRequest) => Promise<AppDecision>) | undefined;
  /** TLS clients without a certificate may authenticate with app credentials (config mqtt.appPasswords). */
  appPasswords?: boolean | undefined;
  /** The device's compiled access (policies, zones, quarantine) for this connection. */
  accessFor(identity: {
    deviceId: string;
    remoteAddress: string | null;
    certSubject: Record<string, string>;
    anonymous?: boolean;
  }): Promise<DeviceAccess>;
  /** An app's compiled access (its default policy and grants) for this connection. */
  accessForApp?: ((identity: AppAccessIdentity) => Promise<DeviceAccess>) | undefined;
  /** Per-device metering for the detectors (the meter's rules are in place before the CONNACK). */
  monitor?: { attach(deviceId: string): Promise<DeviceMeter> } | undefined;
  /** Was this device (app) or certificate (token) revoked or disabled at or after `since`? (see sessions.ts) */
  blockedSince(identity: Blockable, since: number): boolean;
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

const noCredentials = (): Refused => ({
  ok: false,
  code: 'unauthenticated',
  reason: 'no client certificate and no app credentials',
});
const noApps = (): Refused => ({ ok: false, code: 'forbidden', reason: 'apps are not configured' });

/** A TLS client without a certificate: app credentials from the CONNECT, or nothing. */
function checkPassword(
  deps: Pick<ConnectStageDeps, 'checkApp' | 'appPasswords'>,
  context: ConnectContext,
): Promise<AppDecision> | AppDecision {
  const { credentials, clientId, peer } = context;
  if (!credentials || deps.appPasswords === false) return noCredentials();
  if (!deps.checkApp) return noApps();
  return deps.checkApp({ clientId, remoteAddress: peer.remoteAddress, password: credentials });
}

type Identified = { ok: true; device: IdentifiedDevice } | { ok: true; app: IdentifiedApp } | Refused;

async function identify(
  deps: Pick<ConnectStageDeps, 'checkConnection' | 'checkAnonymous' | 'checkApp' | 'appPasswords'>,
  context: ConnectContext,
): Promise<Identified> {
  const { peer, clientId } = context;
  if (peer.anonymous) {
    if (!deps.checkAnonymous)
      return { ok: false, code: 'forbidden', reason: 'anonymous listener not configured' };
    const decision = await deps.checkAnonymous(clientId);
    if (!decision.ok) return decision;
    if (decision.kind === 'app') return { ok: false, code: 'forbidden', reason: 'not a device' };
    return {
      ok: true,
      device: { deviceId: decision.deviceId, group: decision.group, serial: decision.serial },
    };
  }
  if (peer.password || peer.serial === undefined) {
    const app = await checkPassword(deps, context);
    return app.ok ? { ok: true, app } : app;
  }
  const decision = await deps.checkConnection({ clientId, certSerial: peer.serial, certCn: peer.cn });
  if (!decision.ok) return decision;
  if (decision.kind !== 'app')
    return {
      ok: true,
      device: { deviceId: decision.deviceId, group: decision.group, serial: decision.serial },
    };
  // An app certificate identifies an app, never a device; the apps check compares it with the client id.
  if (!deps.checkApp) return noApps();
  const certificate = { serial: decision.serial, app: decision.app, notAfter: peer.notAfter };
  const app = await deps.checkApp({ clientId, remoteAddress: peer.remoteAddress, certificate });
  return app.ok ? { ok: true, app } : app;
}

/**
 * Devices: the certificate is the identity and the client id must equal it (pki); anonymous clients on the
 * dev listener. Apps: an app certificate, or (TLS without a certificate) app credentials at CONNECT, and a
 * client id `NAME` or `NAME/<instance>` of that app (the apps check).
 */
export function identifyStage(
  deps: Pick<ConnectStageDeps, 'checkConnection' | 'checkAnonymous' | 'checkApp' | 'appPasswords'>,
): ConnectStage {
  return {
    name: 'identify',
    async run(context) {
      const identified = await identify(deps, context);
      if (!identified.ok) return refuse({ code: identified.code, reason: identified.reason });
      if ('device' in identified) return next({ ...context, device: identified.device });
      const { app, instance, clientId, zone, purpose, serial, tokenId, expiresAt } = identified.app;
      const identity = { app, instance, clientId, zone, purpose, serial, tokenId, expiresAt };
      return next({ ...context, app: identity });
    },
  };
}

export const APP_CLEAN_SESSION_REQUIRED =
  'apps must connect with a clean session: Bulwark keeps no offline queue for apps';

/**
 * An app must connect with clean session 1: Bulwark keeps no offline queue for apps (a persistent session
 * would queue every matching QoS 1 and 2 message while the app is away, and keep it across a revocation of
 * the app or its token). Devices are not affected.
 */
export const appCleanSessionStage: ConnectStage = {
  name: 'app-clean-session',
  run(context) {
    if (!context.app || context.cleanSession !== false) return next(context);
    return refuse({ code: 'forbidden', reason: APP_CLEAN_SESSION_REQUIRED });
  },
};

/** The firewall key and block of whoever the identify stage found. */
function identityOf(
  context: ConnectContext,
): ({ key: string; certSerial: string | undefined } & Blockable) | undefined {
  const { device, app } = context;
  if (device)
    return { key: device.deviceId, block: device.deviceId, serial: device.serial, certSerial: device.serial };
  if (!app) return undefined;
  const certSerial = app.tokenId === null ? app.serial : undefined;
  return { key: appKey(app.clientId), block: blockOfApp(app.app), serial: app.serial, certSerial };
}

/**
 * Bans of the device or certificate, and flapping (a ban of the device, never of its address). An app
 * instance is admitted by its key (`app:<clientId>`) and its certificate, if it has one.
 */
export function admitStage(deps: Pick<ConnectStageDeps, 'firewall'>): ConnectStage {
  return {
    name: 'firewall-admit',
    run(context) {
      const identity = identityOf(context);
      if (!identity) return notIdentified('firewall-admit');
      const admitted = deps.firewall.admitDevice(identity.key, identity.certSerial);
      if (admitted.ok) return next(context);
      return refuse({ code: 'forbidden', reason: admitted.reason, banned: true });
    },
  };
}

/** Compiles the device's access for this connection; its policies may refuse the connection itself. */
export function accessStage(deps: Pick<ConnectStageDeps, 'accessFor' | 'accessForApp'>): ConnectStage {
  return {
    name: 'access',
    async run(context) {
      const { device, app, peer } = context;
      let access: DeviceAccess;
      if (device)
        access = await deps.accessFor({
          deviceId: device.deviceId,
          remoteAddress: peer.remoteAddress,
          certSubject: peer.subject,
          anonymous: peer.anonymous,
        });
      else if (app && deps.accessForApp)
        access = await deps.accessForApp({
          app: app.app,
          instance: app.instance,
          zone: app.zone,
          purpose: app.purpose,
          remoteAddress: peer.remoteAddress,
          certSubject: peer.subject,
        });
      else return notIdentified('access');
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
      const identity = identityOf(context);
      if (!identity) return notIdentified('revocation-guard');
      if (!deps.blockedSince(identity, context.startedAt)) return next(context);
      if (context.app) return refuse({ code: 'forbidden', reason: 'app revoked while connecting' });
      return refuse({ code: 'device_revoked', reason: 'device revoked or disabled while connecting' });
    },
  };
}

/** The device's meter, with its profile's rules compiled, before the CONNACK (devices only: apps are not metered). */
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

/** The connect stages in their order: firewall, identify, clean session (apps), firewall (device), access, revocation guard, meter. */
export function connectStages(deps: ConnectStageDeps): readonly ConnectStage[] {
  return [
    firewallStage(deps),
    identifyStage(deps),
    appCleanSessionStage,
    admitStage(deps),
    accessStage(deps),
    revocationGuardStage(deps),
    meterStage(deps),
  ];
}
