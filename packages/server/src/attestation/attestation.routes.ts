import type { TLSSocket } from 'node:tls';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { api, BulwarkError } from '@bulwark/protocol';
import type {} from '../http/index.ts'; // app.defineRoute
import { requestScope } from '../authz/index.ts';
import type { AttestationService } from './attestation.service.ts';

/** The broker's connection check (certificate ours and unrevoked, device allowed to connect). */
export interface DeviceCheck {
  (identity: {
    clientId: string;
    certSerial: string | undefined;
    certCn: string | undefined;
    remoteAddress?: string;
  }): Promise<{ ok: true; deviceId: string } | { ok: false; reason: string }>;
}

/** The TLS client certificate a request came with (undefined: none, or not verified against our CA). */
export type PeerOf = (
  request: FastifyRequest,
) => { serial: string | undefined; cn: string | undefined } | undefined;

export interface AttestationDeviceRoutesDeps {
  attestation: Pick<AttestationService, 'registerKey' | 'activateKey' | 'challenge' | 'submitQuote'>;
  /**
   * Who the device is. Quarantine (and an attestation hold) must not stop a device from attesting; a lost,
   * revoked or disabled one is refused.
   */
  checkDevice: DeviceCheck;
  /** Reads the peer certificate (default: the mutual-TLS socket's). */
  peerOf?: PeerOf;
}

const tlsPeer: PeerOf = (request) => {
  const socket = request.raw.socket as TLSSocket;
  if (!socket.authorized || typeof socket.getPeerCertificate !== 'function') return undefined;
  const peer = socket.getPeerCertificate();
  const cn = typeof peer.subject?.CN === 'string' ? peer.subject.CN : undefined;
  return { serial: peer.serialNumber || undefined, cn };
};

/** An enrolled device, by its TLS client certificate, checked against the store as EST and the broker do. */
async function authenticateDevice(
  request: FastifyRequest,
  deps: AttestationDeviceRoutesDeps,
): Promise<string> {
  const peer = (deps.peerOf ?? tlsPeer)(request);
  if (!peer)
    throw new BulwarkError(
      'unauthenticated',
      'attestation is for enrolled devices: present the device certificate as TLS client certificate',
    );
  const result = await deps.checkDevice({
    clientId: peer.cn ?? '',
    certSerial: peer.serial,
    certCn: peer.cn,
    remoteAddress: request.ip,
  });
  if (!result.ok)
    throw new BulwarkError(
      /revoked/.test(result.reason) ? 'device_revoked' : 'unauthenticated',
      `device certificate refused: ${result.reason}`,
    );
  return result.deviceId;
}

/**
 * The device side of TPM attestation on the mutual-TLS device listener: register the TPM's keys, activate
 * the credential, get a nonce, submit a quote. A refused quote still answers 200 with its verdict.
 */
export function attestationDeviceRoutes(deps: AttestationDeviceRoutesDeps) {
  const { attestation } = deps;
  return function register(app: FastifyInstance) {
    app.defineRoute(api.attestation.registerKey, {
      handler: async ({ request, body }) =>
        attestation.registerKey(await authenticateDevice(request, deps), body),
    });
    app.defineRoute(api.attestation.activateKey, {
      handler: async ({ request, body }) =>
        attestation.activateKey(await authenticateDevice(request, deps), body),
    });
    app.defineRoute(api.attestation.challenge, {
      handler: async ({ request }) => attestation.challenge(await authenticateDevice(request, deps)),
    });
    app.defineRoute(api.attestation.submitQuote, {
      handler: async ({ request, body }) =>
        attestation.submitQuote(await authenticateDevice(request, deps), body),
    });
  };
}

export interface AttestationRoutesDeps {
  attestation: Pick<AttestationService, 'showDevice' | 'listResults' | 'removeKey' | 'listReports'>;
  /** A device's group: null for none, undefined for no such device. */
  groupOf(deviceId: string): Promise<string | null | undefined>;
}

/** Operators: a device's attestation, verdicts, security reports, and removing a key (a replaced TPM). */
export function attestationRoutes(deps: AttestationRoutesDeps) {
  const { attestation } = deps;
  /** A device outside the user's groups does not exist for them (404, as the devices API answers). */
  const mustSee = async (request: FastifyRequest, deviceId: string) => {
    const group = await deps.groupOf(deviceId);
    if (group === undefined || !requestScope(request).visible(group))
      throw new BulwarkError('not_found', `device ${deviceId} does not exist`);
  };
  /** Rows of devices within the user's groups only (all for fleet-wide users). */
  const visibleOnly = async <T extends { deviceId: string }>(request: FastifyRequest, rows: T[]) => {
    const scope = requestScope(request);
    if (scope.groups === null) return rows;
    const seen = new Map<string, boolean>();
    for (const id of new Set(rows.map((r) => r.deviceId))) {
      const group = await deps.groupOf(id);
      seen.set(id, group !== undefined && scope.visible(group));
    }
    return rows.filter((r) => seen.get(r.deviceId) === true);
  };
  return function register(app: FastifyInstance) {
    app.defineRoute(api.attestation.showDevice, {
      async handler({ request, params }) {
        await mustSee(request, params.id);
        return attestation.showDevice(params.id);
      },
    });
    app.defineRoute(api.attestation.listResults, {
      async handler({ request, query }) {
        if (query.device !== undefined) await mustSee(request, query.device);
        return { results: await visibleOnly(request, await attestation.listResults(query)) };
      },
    });
    app.defineRoute(api.attestation.removeKey, {
      async handler({ request, params, body }) {
        await mustSee(request, params.id);
        return attestation.removeKey(params.id, body.reason, requestScope(request).actor);
      },
    });
    app.defineRoute(api.attestation.listReports, {
      async handler({ request, query }) {
        if (query.device !== undefined) await mustSee(request, query.device);
        return { reports: await visibleOnly(request, await attestation.listReports(query)) };
      },
    });
  };
}
