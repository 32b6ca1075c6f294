import type { TLSSocket } from 'node:tls';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { api, BulwarkError } from '@bulwark/protocol';
import type {} from '../http/index.ts'; // app.defineRoute
import type { ReleaseService } from './release.service.ts';
import type { TufRepository } from './tuf.repository.ts';

export interface DeviceCheck {
  (identity: {
    clientId: string;
    certSerial: string | undefined;
    certCn: string | undefined;
  }): Promise<{ ok: true; deviceId: string } | { ok: false; reason: string }>;
}

export interface TufRoutesDeps {
  tuf: Pick<TufRepository, 'file'>;
  releases: Pick<ReleaseService, 'artifact'>;
  /** The broker's connection check (certificate ours, unrevoked, device active). */
  checkDevice: DeviceCheck;
}

/**
 * Who is asking: an enrolled device, by its TLS client certificate (verified against our CA by TLS, then
 * checked against the store as EST simplereenroll and the broker do).
 */
async function authenticateDevice(request: FastifyRequest, check: DeviceCheck): Promise<string> {
  const socket = request.raw.socket as TLSSocket;
  if (!socket.authorized || typeof socket.getPeerCertificate !== 'function')
    throw new BulwarkError(
      'unauthenticated',
      'the firmware repository is for enrolled devices: present the device certificate as TLS client certificate',
    );
  const peer = socket.getPeerCertificate();
  const cn = typeof peer.subject?.CN === 'string' ? peer.subject.CN : undefined;
  const result = await check({ clientId: cn ?? '', certSerial: peer.serialNumber || undefined, certCn: cn });
  if (!result.ok)
    throw new BulwarkError(
      /revoked/.test(result.reason) ? 'device_revoked' : 'unauthenticated',
      `device certificate refused: ${result.reason}`,
    );
  return result.deviceId;
}

const targetFile = /^([0-9a-f]{64})\.(.+)$/;

/**
 * The TUF repository over HTTPS for enrolled devices: metadata (consistent snapshots: `{n}.root.json`,
 * `timestamp.json`, `{n}.snapshot.json`, `{n}.targets.json`) and target files by hash-prefixed name.
 */
export function tufRoutes(deps: TufRoutesDeps) {
  return function register(app: FastifyInstance) {
    app.defineRoute(api.pki.tufMetadata, {
      async handler({ request, reply, params }) {
        await authenticateDevice(request, deps.checkDevice);
        const body = await deps.tuf.file(params.name);
        if (body === undefined) throw new BulwarkError('not_found', `no metadata ${params.name}`);
        return reply
          .header('Content-Type', 'application/json')
          .header('Cache-Control', 'no-store')
          .send(body);
      },
    });

    app.defineRoute(api.pki.tufTarget, {
      async handler({ request, reply, params }) {
        await authenticateDevice(request, deps.checkDevice);
        const parts = params['*'].split('/');
        const last = parts.pop() ?? '';
        const m = targetFile.exec(last);
        if (!m || parts.some((p) => p === '' || p === '.' || p === '..'))
          throw new BulwarkError('not_found', 'no such target');
        const found = await deps.releases.artifact([...parts, m[2]].join('/'), m[1] ?? '');
        if (!found) throw new BulwarkError('not_found', 'no such target');
        return reply
          .header('Content-Type', 'application/octet-stream')
          .header('Content-Length', String(found.release.size))
          .header('Cache-Control', 'no-store')
          .send(found.stream);
      },
    });
  };
}
