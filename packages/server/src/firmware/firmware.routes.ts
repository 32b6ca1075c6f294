import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { BulwarkError } from '@bulwark/protocol';
import { parseDuration } from '../config/index.ts';
import { fleetWide, requestScope, seesAllGroups } from '../authz/index.ts';
import type { Firmware } from './firmware.service.ts';
import { rolloutDeviceStatuses, rolloutStatuses, type RolloutSettings } from './rollout.plan.ts';
import { releaseStatuses, type Release } from './release.types.ts';
import { MAX_SBOM_BYTES } from './sbom.ts';
import { publicKeyFrom } from './tuf-keys.ts';
import { tufRoles, type TufRole } from './tuf.store.ts';

const releaseOut = z.object({
  id: z.string(),
  name: z.string(),
  version: z.string(),
  filename: z.string(),
  targetPath: z.string(),
  hardwareIds: z.array(z.string()),
  securityVersion: z.number().int(),
  releaseNotes: z.string().nullable(),
  endOfSupport: z.number().int(),
  size: z.number().int(),
  sha256: z.string(),
  status: z.enum(releaseStatuses),
  hasSbom: z.boolean(),
  sbomComponents: z.number().int(),
  /** True when the current signed targets metadata lists this image: only then can devices install it. */
  signed: z.boolean(),
  createdBy: z.string(),
  createdAt: z.number().int(),
  updatedAt: z.number().int(),
  uploadedAt: z.number().int().nullable(),
  retiredAt: z.number().int().nullable(),
});

const phaseSummary = z.object({
  phase: z.number().int(),
  percent: z.number(),
  soakMs: z.number().int(),
  devices: z.number().int(),
  pending: z.number().int(),
  inProgress: z.number().int(),
  succeeded: z.number().int(),
  failed: z.number().int(),
  skipped: z.number().int(),
});

const selector = z
  .object({
    all: z.boolean().optional(),
    groups: z.array(z.string().max(64)).max(100).optional(),
    zones: z.array(z.string().max(64)).max(100).optional(),
    devices: z.array(z.string().max(64)).max(100_000).optional(),
    attributes: z.record(z.string().max(64), z.string().max(256)).optional(),
  })
  .strict();

const windowSchema = z.object({
  start: z.string().max(5),
  end: z.string().max(5),
  days: z.array(z.number().int()).max(7).optional(),
});

const rolloutOut = z.object({
  id: z.string(),
  releaseId: z.string(),
  release: z.object({ name: z.string(), version: z.string(), targetPath: z.string() }),
  selector,
  settings: z.object({
    phases: z.array(z.object({ percent: z.number(), soakMs: z.number().int() })),
    failureThreshold: z.number(),
    maxRetries: z.number().int(),
    retryDelayMs: z.number().int(),
    requireApproval: z.boolean(),
    maintenanceWindow: windowSchema.nullable(),
  }),
  status: z.enum(rolloutStatuses),
  currentPhase: z.number().int(),
  phaseStartedAt: z.number().int(),
  phaseDoneAt: z.number().int().nullable(),
  pauseReason: z.string().nullable(),
  createdBy: z.string(),
  createdAt: z.number().int(),
  updatedAt: z.number().int(),
  phases: z.array(phaseSummary),
});

const duration = (name: string) =>
  z.union([z.string().max(16), z.number().int().nonnegative()]).transform((v, ctx) => {
    const ms = typeof v === 'number' ? v : parseDuration(v);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `${name} must be a duration such as 30s, 10m, 24h` });
      return z.NEVER;
    }
    return ms;
  });

const metadataOut = z.object({ metadata: z.record(z.string(), z.unknown()) });
const anyJson = z.record(z.string(), z.unknown());

export interface FirmwareRoutesDeps {
  firmware: Firmware;
}

/**
 * The firmware management API under /api/v1/firmware: releases, TUF signing, rollouts, stale devices (the
 * vulnerability routes are risk's, risk.routes.ts).
 */
export function firmwareRoutes({ firmware }: FirmwareRoutesDeps) {
  const { releases, tuf, rollouts } = firmware;
  const withSigned = async (r: Release) => ({
    ...r,
    signed: await firmware.isSigned(r.targetPath, r.sha256),
  });

  return function register(root: FastifyInstance) {
    // Artifacts arrive as a stream and are written to disk as they come (never buffered whole).
    root.addContentTypeParser('application/octet-stream', (_request, payload, done) => {
      done(null, payload);
    });
    const app = root.withTypeProvider<ZodTypeProvider>();
    const params = z.object({ id: z.string().max(200) });

    // --- releases ---------------------------------------------------------------------------------
    {
      const tags = ['firmware releases'];
      app.get(
        '/api/v1/firmware/releases',
        {
          config: { access: 'firmware:read' },
          schema: {
            tags,
            summary: 'List releases, newest first',
            querystring: z.object({
              name: z.string().max(64).optional(),
              status: z.enum(releaseStatuses).optional(),
              limit: z.coerce.number().int().min(1).max(1000).default(100),
            }),
            response: { 200: z.object({ releases: z.array(releaseOut) }) },
          },
        },
        async (request) => ({
          releases: await Promise.all((await releases.list(request.query)).map(withSigned)),
        }),
      );

      app.post(
        '/api/v1/firmware/releases',
        {
          config: { access: 'firmware:write' },
          bodyLimit: MAX_SBOM_BYTES + 1024 * 1024,
          schema: {
            tags,
            summary:
              'Create a release (metadata, declared size and SHA-256, optional CycloneDX SBOM); upload its artifact next',
            body: z.object({
              name: z.string().max(64),
              version: z.string().max(64),
              filename: z.string().max(128).optional(),
              hardwareIds: z.array(z.string().max(128)).min(1).max(64),
              securityVersion: z.number().int().min(0),
              releaseNotes: z.string().max(65_536).optional(),
              endOfSupport: z.union([z.string().max(40), z.number().int()]),
              size: z.number().int().min(1),
              sha256: z.string().max(64),
              sbom: anyJson.optional(),
            }),
            response: { 201: releaseOut },
          },
        },
        async (request, reply) =>
          reply
            .status(201)
            .send(await withSigned(await releases.create(request.body, requestScope(request).actor))),
      );

      app.get(
        '/api/v1/firmware/releases/:id',
        {
          config: { access: 'firmware:read' },
          schema: { tags, summary: 'A release by id or name@version', params, response: { 200: releaseOut } },
        },
        async (request) => withSigned(await releases.get(request.params.id)),
      );

      app.put(
        '/api/v1/firmware/releases/:id/artifact',
        {
          config: { access: 'firmware:write' },
          schema: {
            tags,
            summary:
              'Upload the artifact (Content-Type: application/octet-stream), streamed to disk; checked against the declared size and SHA-256',
            params,
            response: { 200: releaseOut },
          },
        },
        async (request, reply) => {
          const body = request.body;
          if (!(body instanceof Readable))
            throw new BulwarkError('unsupported_media_type', 'send the artifact as application/octet-stream');
          const header = request.headers['content-length'];
          const contentLength = header === undefined ? undefined : Number(header);
          try {
            return await withSigned(
              await releases.upload(request.params.id, body, {
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
      );

      app.get(
        '/api/v1/firmware/releases/:id/sbom',
        {
          config: { access: 'firmware:read' },
          schema: { tags, summary: 'The CycloneDX SBOM as uploaded', params },
        },
        async (request, reply) =>
          reply.type('application/vnd.cyclonedx+json').send(await releases.sbom(request.params.id)),
      );

      app.post(
        '/api/v1/firmware/releases/:id/retire',
        {
          config: { access: 'firmware:write' },
          schema: {
            tags,
            summary: 'Retire a release: no new rollout may use it and devices can no longer download it',
            params,
            body: z.object({ reason: z.string().max(256).optional() }).default({}),
            response: { 200: releaseOut },
          },
        },
        async (request) =>
          withSigned(
            await releases.retire(request.params.id, requestScope(request).actor, request.body.reason),
          ),
      );

      app.delete(
        '/api/v1/firmware/releases/:id',
        {
          config: { access: 'firmware:write' },
          schema: { tags, summary: 'Discard a draft (a release without artifact)', params },
        },
        async (request, reply) => {
          await releases.discard(request.params.id, requestScope(request).actor);
          return reply.status(204).send();
        },
      );
    }

    // --- TUF --------------------------------------------------------------------------------------
    {
      const tags = ['firmware signing (TUF)'];
      const key = z.union([z.string().max(4096), anyJson]);
      const toKey = (k: unknown, i: number) =>
        publicKeyFrom(typeof k === 'string' ? k : JSON.stringify(k), `key ${i + 1}`);

      app.get(
        '/api/v1/firmware/tuf',
        {
          config: { access: 'firmware:read' },
          schema: {
            tags,
            summary: 'TUF repository status: role versions, expiries, keys, pending metadata',
            response: {
              200: z.object({
                initialized: z.boolean(),
                targetsValid: z.boolean(),
                pending: z.array(z.enum(tufRoles)),
                roles: z.record(
                  z.string(),
                  z.object({
                    version: z.number().int(),
                    expires: z.number().int(),
                    keyids: z.array(z.string()),
                    threshold: z.number().int(),
                  }),
                ),
              }),
            },
          },
        },
        () => tuf.status(),
      );

      app.post(
        '/api/v1/firmware/tuf/root/prepare',
        {
          config: { access: 'firmware:keys' },
          schema: {
            tags,
            summary:
              'Prepare an unsigned root: the first one (root and targets public keys), a key rotation of any role, or a fresh expiry',
            body: z
              .object({
                rootKeys: z.array(key).max(20).optional(),
                rootThreshold: z.number().int().min(1).optional(),
                targetsKeys: z.array(key).max(20).optional(),
                targetsThreshold: z.number().int().min(1).optional(),
                rotate: z.enum(tufRoles).optional(),
                keys: z.array(key).max(20).optional(),
                threshold: z.number().int().min(1).optional(),
              })
              .default({}),
            response: { 200: metadataOut },
          },
        },
        async (request) => {
          const b = request.body;
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
          return { metadata: JSON.parse(body) as Record<string, unknown> };
        },
      );

      app.post(
        '/api/v1/firmware/tuf/root',
        {
          config: { access: 'firmware:keys' },
          bodyLimit: 4 * 1024 * 1024,
          schema: {
            tags,
            summary: 'Publish the pending root, signed by a threshold of the current and the new root keys',
            body: anyJson,
            response: { 200: z.object({ role: z.enum(tufRoles), version: z.number().int() }) },
          },
        },
        async (request) => {
          if ((request.body as { signed?: { _type?: unknown } }).signed?._type !== 'root')
            throw new BulwarkError('validation_failed', 'this endpoint publishes root metadata');
          return tuf.publish(request.body, requestScope(request).actor);
        },
      );

      app.post(
        '/api/v1/firmware/tuf/targets/prepare',
        {
          config: { access: 'firmware:write' },
          schema: {
            tags,
            summary: 'Prepare unsigned targets metadata listing every uploaded, unretired release',
            response: { 200: metadataOut },
          },
        },
        async (request) => ({
          metadata: JSON.parse(await tuf.prepareTargets(requestScope(request).actor)) as Record<
            string,
            unknown
          >,
        }),
      );

      app.post(
        '/api/v1/firmware/tuf/targets',
        {
          config: { access: 'firmware:write' },
          bodyLimit: 64 * 1024 * 1024,
          schema: {
            tags,
            summary: 'Publish targets metadata signed offline by a threshold of the targets keys',
            body: anyJson,
            response: { 200: z.object({ role: z.enum(tufRoles), version: z.number().int() }) },
          },
        },
        async (request) => {
          if ((request.body as { signed?: { _type?: unknown } }).signed?._type !== 'targets')
            throw new BulwarkError('validation_failed', 'this endpoint publishes targets metadata');
          return tuf.publish(request.body, requestScope(request).actor);
        },
      );

      app.get(
        '/api/v1/firmware/tuf/pending/:role',
        {
          config: { access: 'firmware:read' },
          schema: {
            tags,
            summary: 'Metadata waiting for offline signatures',
            params: z.object({ role: z.string().max(16) }),
            response: { 200: metadataOut },
          },
        },
        async (request) => {
          const role = request.params.role as TufRole;
          const body = (tufRoles as readonly string[]).includes(role) ? await tuf.pending(role) : undefined;
          if (!body) throw new BulwarkError('not_found', `no ${request.params.role} metadata is pending`);
          return { metadata: JSON.parse(body) as Record<string, unknown> };
        },
      );
    }

    // --- rollouts ---------------------------------------------------------------------------------
    {
      const tags = ['firmware rollouts'];
      /** A user limited to device groups sees and acts only on rollouts confined to those groups (else 404). */
      const inScope = (request: FastifyRequest, r: { selector: { groups?: string[] | undefined } }) => {
        return seesAllGroups(requestScope(request).scope, r.selector.groups);
      };
      const visibleRollout = async (request: FastifyRequest, id: string) => {
        const r = await rollouts.get(id);
        if (!inScope(request, r)) throw new BulwarkError('not_found', `rollout ${id} does not exist`);
        return r;
      };
      app.get(
        '/api/v1/firmware/rollouts',
        {
          config: { access: 'firmware:read' },
          schema: {
            tags,
            summary: 'List rollouts, newest first, with per-phase counts',
            querystring: z.object({
              status: z.enum(rolloutStatuses).optional(),
              limit: z.coerce.number().int().min(1).max(1000).default(100),
            }),
            response: { 200: z.object({ rollouts: z.array(rolloutOut) }) },
          },
        },
        async (request) => ({
          rollouts: (await rollouts.list(request.query)).filter((r) => inScope(request, r)),
        }),
      );

      app.post(
        '/api/v1/firmware/rollouts',
        {
          config: { access: 'firmware:deploy' },
          bodyLimit: 4 * 1024 * 1024,
          schema: {
            tags,
            summary:
              'Start a staged rollout of a signed release to a group, device list or attribute filter, in phases with gates',
            body: z.object({
              release: z.string().max(200),
              selector,
              phases: z
                .array(
                  z.union([z.number(), z.object({ percent: z.number(), soak: duration('soak').optional() })]),
                )
                .min(1)
                .max(20),
              soak: duration('soak').optional(),
              failureThreshold: z.number().min(0).max(100).optional(),
              maxRetries: z.number().int().min(0).max(10).optional(),
              retryDelay: duration('retryDelay').optional(),
              requireApproval: z.boolean().optional(),
              maintenanceWindow: windowSchema.optional(),
            }),
            response: { 201: rolloutOut },
          },
        },
        async (request, reply) => {
          const { actor, scope } = requestScope(request);
          const b = request.body;
          // A user limited to device groups rolls out only inside them.
          if (!fleetWide(scope) && (b.selector.all || !seesAllGroups(scope, b.selector.groups)))
            throw new BulwarkError(
              'forbidden',
              'you may roll out only to your own device groups (selector.groups)',
            );
          const settings: Partial<RolloutSettings> & Pick<RolloutSettings, 'phases'> = {
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
          return reply
            .status(201)
            .send(await rollouts.create({ release: b.release, selector: b.selector, settings }, actor));
        },
      );

      app.get(
        '/api/v1/firmware/rollouts/:id',
        {
          config: { access: 'firmware:read' },
          schema: { tags, summary: 'A rollout with status per phase', params, response: { 200: rolloutOut } },
        },
        (request) => visibleRollout(request, request.params.id),
      );

      app.get(
        '/api/v1/firmware/rollouts/:id/devices',
        {
          config: { access: 'firmware:read' },
          schema: {
            tags,
            summary: 'Status per device',
            params,
            querystring: z.object({
              phase: z.coerce.number().int().min(0).optional(),
              status: z.enum(rolloutDeviceStatuses).optional(),
            }),
            response: {
              200: z.object({
                devices: z.array(
                  z.object({
                    deviceId: z.string(),
                    phase: z.number().int(),
                    status: z.enum(rolloutDeviceStatuses),
                    step: z.string().nullable(),
                    attempts: z.number().int(),
                    reason: z.string().nullable(),
                    detail: z.string().nullable(),
                    updatedAt: z.number().int(),
                  }),
                ),
              }),
            },
          },
        },
        async (request) => {
          await visibleRollout(request, request.params.id);
          return {
            devices: await rollouts.devices(request.params.id, {
              ...request.query,
              // A user limited to device groups sees only those groups' devices.
              groupsIn: requestScope(request).groups ?? undefined,
            }),
          };
        },
      );

      const actions = {
        pause: 'Pause (no further commands are sent)',
        resume: 'Resume a paused rollout (retryFailed: give failed devices of the phase new attempts)',
        approve: 'Approve the next phase',
        abort: 'Abort: devices not yet updated are skipped',
      } as const;
      for (const [name, summary] of Object.entries(actions)) {
        app.post(
          `/api/v1/firmware/rollouts/:id/${name}`,
          {
            config: { access: 'firmware:deploy' },
            schema: {
              tags,
              summary,
              params,
              body: z
                .object({ reason: z.string().max(256).optional(), retryFailed: z.boolean().optional() })
                .default({}),
              response: { 200: rolloutOut },
            },
          },
          async (request) => {
            const { actor } = requestScope(request);
            const { id } = request.params;
            await visibleRollout(request, id);
            if (name === 'resume')
              return rollouts.resume(id, actor, { retryFailed: request.body.retryFailed });
            if (name === 'pause') return rollouts.pause(id, actor, request.body.reason);
            if (name === 'abort') return rollouts.abort(id, actor, request.body.reason);
            return rollouts.approve(id, actor);
          },
        );
      }
    }

    // --- vulnerabilities --------------------------------------------------------------------------
    {
      const tags = ['firmware vulnerabilities'];
      app.get(
        '/api/v1/firmware/stale',
        {
          config: { access: 'firmware:read' },
          schema: {
            tags,
            summary: 'Devices not updated within the maximum age (firmware.maxAge), or past end of support',
            querystring: z.object({ maxAge: duration('maxAge').optional() }),
            response: {
              200: z.object({
                devices: z.array(
                  z.object({
                    deviceId: z.string(),
                    version: z.string().nullable(),
                    installedAt: z.number().int(),
                    endOfSupport: z.number().int().nullable(),
                    reason: z.enum(['older_than_max_age', 'end_of_support_passed']),
                  }),
                ),
              }),
            },
          },
        },
        async (request) => ({
          devices: await firmware.fleet.stale({
            maxAgeMs: request.query.maxAge,
            groupsIn: requestScope(request).groups ?? undefined,
          }),
        }),
      );
    }
  };
}
