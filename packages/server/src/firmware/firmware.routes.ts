import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { api, BulwarkError, type Contract } from '@bulwark/protocol';
import type {} from '../http/index.ts'; // app.defineRoute
import { fleetWide, requestScope, seesAllGroups } from '../authz/index.ts';
import type { Firmware } from './firmware.service.ts';
import type { RolloutSettings } from './rollout.plan.ts';
import type { Rollout } from './rollout.types.ts';
import type { Release } from './release.types.ts';
import { MAX_SBOM_BYTES } from './sbom.ts';
import { publicKeyFrom } from './tuf-keys.ts';
import { tufRoles } from './tuf.store.ts';

const contracts = api.firmware;

export interface FirmwareRoutesDeps {
  firmware: Firmware;
}

/** Bodies larger than the app's 1 MiB default: an SBOM, signed metadata of a large fleet, a long device list. */
const bodyLimits = new Map<Contract, number>([
  [contracts.createRelease, MAX_SBOM_BYTES + 1024 * 1024],
  [contracts.publishRoot, 4 * 1024 * 1024],
  [contracts.publishTargets, 64 * 1024 * 1024],
  [contracts.startRollout, 4 * 1024 * 1024],
]);

/**
 * Gives the routes registered after it in this plugin the body limit their contract needs (defineRoute sets
 * none of its own; an onRoute hook may change a route's options before Fastify builds it).
 */
function raiseBodyLimits(app: FastifyInstance, limits: ReadonlyMap<Contract, number>): void {
  app.addHook('onRoute', (route) => {
    const limit = route.config?.contract ? limits.get(route.config.contract) : undefined;
    if (limit !== undefined) route.bodyLimit = limit;
  });
}

function releaseReads(app: FastifyInstance, { firmware }: FirmwareRoutesDeps) {
  const { releases } = firmware;
  const withSigned = async (r: Release) => ({
    ...r,
    signed: await firmware.isSigned(r.targetPath, r.sha256),
  });

  app.defineRoute(contracts.listReleases, {
    handler: async ({ query }) => ({
      releases: await Promise.all((await releases.list(query)).map(withSigned)),
    }),
  });
  app.defineRoute(contracts.showRelease, {
    handler: async ({ params }) => withSigned(await releases.get(params.id)),
  });
  app.defineRoute(contracts.releaseSbom, {
    handler: async ({ params, reply }) =>
      reply.type('application/vnd.cyclonedx+json').send(await releases.sbom(params.id)),
  });
  return withSigned;
}

function releaseWrites(app: FastifyInstance, deps: FirmwareRoutesDeps, withSigned: WithSigned) {
  const { releases } = deps.firmware;

  app.defineRoute(contracts.createRelease, {
    handler: async ({ request, body }) =>
      withSigned(await releases.create(body, requestScope(request).actor)),
  });
  app.defineRoute(contracts.uploadArtifact, {
    async handler({ request, reply, params }) {
      const body = request.body;
      if (!(body instanceof Readable))
        throw new BulwarkError('unsupported_media_type', 'send the artifact as application/octet-stream');
      const header = request.headers['content-length'];
      const contentLength = header === undefined ? undefined : Number(header);
      try {
        return await withSigned(
          await releases.upload(params.id, body, {
            actor: requestScope(request).actor,
            contentLength: Number.isSafeInteger(contentLength) ? contentLength : undefined,
          }),
        );
      } catch (err) {
        // The rest of a refused body is not read: close the connection after the answer.
        void reply.header('Connection', 'close');
        throw err;
      }
    },
  });
  app.defineRoute(contracts.retireRelease, {
    handler: async ({ request, params, body }) =>
      withSigned(await releases.retire(params.id, requestScope(request).actor, body.reason)),
  });
  app.defineRoute(contracts.discardRelease, {
    async handler({ request, params }) {
      await releases.discard(params.id, requestScope(request).actor);
    },
  });
}

type WithSigned = ReturnType<typeof releaseReads>;

const toKey = (k: unknown, i: number) =>
  publicKeyFrom(typeof k === 'string' ? k : JSON.stringify(k), `key ${i + 1}`);

/** The `_type` of signed TUF metadata (`root`, `targets`, …), if the document has one. */
function metadataType(document: Record<string, unknown>): unknown {
  const signed = document['signed'];
  return typeof signed === 'object' && signed !== null && '_type' in signed ? signed._type : undefined;
}

const metadataOf = (text: string) => ({ metadata: JSON.parse(text) as Record<string, unknown> });

function tufManagement(app: FastifyInstance, { firmware }: FirmwareRoutesDeps) {
  const { tuf } = firmware;
  app.defineRoute(contracts.tufStatus, { handler: () => tuf.status() });

  app.defineRoute(contracts.prepareRoot, {
    async handler({ request, body: b }) {
      const { actor } = requestScope(request);
      const body =
        b.rootKeys || b.targetsKeys
          ? await tuf.prepareInitialRoot(
              {
                rootKeys: (b.rootKeys ?? []).map(toKey),
                rootThreshold: b.rootThreshold ?? 1,
                targetsKeys: (b.targetsKeys ?? []).map(toKey),
                targetsThreshold: b.targetsThreshold ?? 1,
              },
              actor,
            )
          : await tuf.prepareRootChange(
              { role: b.rotate, keys: b.keys?.map(toKey), threshold: b.threshold },
              actor,
            );
      return metadataOf(body);
    },
  });

  for (const [c, role] of [
    [contracts.publishRoot, 'root'],
    [contracts.publishTargets, 'targets'],
  ] as const) {
    app.defineRoute(c, {
      async handler({ request, body }) {
        if (metadataType(body) !== role)
          throw new BulwarkError('validation_failed', `this endpoint publishes ${role} metadata`);
        return tuf.publish(body, requestScope(request).actor);
      },
    });
  }

  app.defineRoute(contracts.prepareTargets, {
    handler: async ({ request }) => metadataOf(await tuf.prepareTargets(requestScope(request).actor)),
  });

  app.defineRoute(contracts.pendingMetadata, {
    async handler({ params }) {
      const role = tufRoles.find((r) => r === params.role);
      const body = role ? await tuf.pending(role) : undefined;
      if (!body) throw new BulwarkError('not_found', `no ${params.role} metadata is pending`);
      return metadataOf(body);
    },
  });
}

/** A user limited to device groups sees and acts only on rollouts confined to those groups (else 404). */
function inScope(request: FastifyRequest, r: { selector: { groups?: string[] | undefined } }): boolean {
  return seesAllGroups(requestScope(request).scope, r.selector.groups);
}

type StartRollout = typeof contracts.startRollout.body._zod.output;

function rolloutSettings(b: StartRollout): Partial<RolloutSettings> & Pick<RolloutSettings, 'phases'> {
  return {
    phases: b.phases.map((p) =>
      typeof p === 'number'
        ? { percent: p, soakMs: b.soak ?? 0 }
        : { percent: p.percent, soakMs: p.soak ?? b.soak ?? 0 },
    ),
    ...(b.failureThreshold !== undefined ? { failureThreshold: b.failureThreshold } : {}),
    ...(b.maxRetries !== undefined ? { maxRetries: b.maxRetries } : {}),
    ...(b.retryDelay !== undefined ? { retryDelayMs: b.retryDelay } : {}),
    ...(b.requireApproval !== undefined ? { requireApproval: b.requireApproval } : {}),
    ...(b.maintenanceWindow ? { maintenanceWindow: b.maintenanceWindow } : {}),
  };
}

function rolloutReads(app: FastifyInstance, { firmware }: FirmwareRoutesDeps) {
  const { rollouts } = firmware;
  const visibleRollout = async (request: FastifyRequest, id: string) => {
    const r = await rollouts.get(id);
    if (!inScope(request, r)) throw new BulwarkError('not_found', `rollout ${id} does not exist`);
    return r;
  };

  app.defineRoute(contracts.listRollouts, {
    handler: async ({ request, query }) => ({
      rollouts: (await rollouts.list(query)).filter((r) => inScope(request, r)),
    }),
  });
  app.defineRoute(contracts.showRollout, {
    handler: ({ request, params }) => visibleRollout(request, params.id),
  });
  app.defineRoute(contracts.rolloutDevices, {
    async handler({ request, params, query }) {
      await visibleRollout(request, params.id);
      return {
        devices: await rollouts.devices(params.id, {
          ...query,
          // A user limited to device groups sees only those groups' devices.
          groupsIn: requestScope(request).groups ?? undefined,
        }),
      };
    },
  });
  return visibleRollout;
}

function rolloutWrites(app: FastifyInstance, deps: FirmwareRoutesDeps, visibleRollout: VisibleRollout) {
  const { rollouts } = deps.firmware;
  app.defineRoute(contracts.startRollout, {
    async handler({ request, body: b }) {
      const { actor, scope } = requestScope(request);
      // A user limited to device groups rolls out only inside them.
      if (!fleetWide(scope) && (b.selector.all || !seesAllGroups(scope, b.selector.groups)))
        throw new BulwarkError(
          'forbidden',
          'you may roll out only to your own device groups (selector.groups)',
        );
      return rollouts.create(
        { release: b.release, selector: b.selector, settings: rolloutSettings(b) },
        actor,
      );
    },
  });

  const actions: readonly (readonly [ControlContract, ControlAction])[] = [
    [contracts.pauseRollout, (id, actor, body) => rollouts.pause(id, actor, body.reason)],
    [
      contracts.resumeRollout,
      (id, actor, body) => rollouts.resume(id, actor, { retryFailed: body.retryFailed }),
    ],
    [contracts.approveRollout, (id, actor) => rollouts.approve(id, actor)],
    [contracts.abortRollout, (id, actor, body) => rollouts.abort(id, actor, body.reason)],
  ];
  for (const [c, act] of actions) {
    app.defineRoute(c, {
      async handler({ request, params, body }) {
        await visibleRollout(request, params.id);
        return act(params.id, requestScope(request).actor, body);
      },
    });
  }
}

type VisibleRollout = ReturnType<typeof rolloutReads>;
type ControlContract =
  | typeof contracts.pauseRollout
  | typeof contracts.resumeRollout
  | typeof contracts.approveRollout
  | typeof contracts.abortRollout;
type ControlAction = (
  id: string,
  actor: string,
  body: typeof contracts.pauseRollout.body._zod.output,
) => Promise<Rollout>;

function staleRoute(app: FastifyInstance, { firmware }: FirmwareRoutesDeps) {
  app.defineRoute(contracts.stale, {
    handler: async ({ request, query }) => ({
      devices: await firmware.fleet.stale({
        maxAgeMs: query.maxAge,
        groupsIn: requestScope(request).groups ?? undefined,
      }),
    }),
  });
}

/**
 * The firmware management API under /api/v1/firmware (api.firmware): releases, TUF signing, rollouts, stale
 * devices (the vulnerability routes are risk's, risk.routes.ts).
 */
export function firmwareRoutes(deps: FirmwareRoutesDeps) {
  return function register(app: FastifyInstance) {
    // Artifacts arrive as a stream and are written to disk as they come (never buffered whole).
    app.addContentTypeParser('application/octet-stream', (_request, payload, done) => {
      done(null, payload);
    });
    raiseBodyLimits(app, bodyLimits);
    releaseWrites(app, deps, releaseReads(app, deps));
    tufManagement(app, deps);
    rolloutWrites(app, deps, rolloutReads(app, deps));
    staleRoute(app, deps);
  };
}
