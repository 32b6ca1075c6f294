import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { BulwarkError } from '@bulwark/protocol';
import { streamEvents, type AuditEntry, type AuditLog, type EventBus } from '../events/index.ts';
import { can, fleetActor, requestScope } from '../users/index.ts';
import { alertStatuses, type Alert } from './alert.service.ts';
import type { Monitor } from './monitor.service.ts';
import { responsePermissions } from './monitor.service.ts';
import { attachmentKinds, responseActions, severities, type SecurityProfile } from './profile.ts';

export interface MonitorRoutesDeps {
  monitor: Monitor;
  log: Pick<AuditLog, 'readAfter'>;
  bus: Pick<EventBus, 'subscribe'>;
  visible(request: FastifyRequest, entry: AuditEntry): boolean | Promise<boolean>;
  /** Prometheus exposition (text format) for GET /metrics. */
  metrics(): Promise<{ contentType: string; body: string }>;
}

const jsonValue: z.ZodType<unknown> = z.unknown();
const alertOut = z.object({
  id: z.string(),
  detector: z.string(),
  subject: z.string(),
  deviceId: z.string().nullable(),
  severity: z.enum(severities),
  status: z.enum(alertStatuses),
  title: z.string(),
  evidence: z.record(z.string(), jsonValue),
  occurrences: z.number().int(),
  firstSeen: z.number().int(),
  lastSeen: z.number().int(),
  assignee: z.string().nullable(),
  notes: z.array(z.object({ at: z.number().int(), by: z.string(), text: z.string() })),
  acknowledgedAt: z.number().int().nullable(),
  acknowledgedBy: z.string().nullable(),
  resolvedAt: z.number().int().nullable(),
  resolvedBy: z.string().nullable(),
  resolution: z.string().nullable(),
  responsesRun: z
    .array(
      z.object({
        at: z.number().int(),
        action: z.string(),
        automatic: z.boolean(),
        actor: z.string(),
        ok: z.boolean(),
        detail: z.string().optional(),
      }),
    )
    .describe('responses run for this alert, oldest first'),
  responses: z.array(z.enum(responseActions)).describe('responses an operator may run on this alert'),
});

const profileOut = z.object({
  id: z.string(),
  name: z.string(),
  version: z.number().int(),
  document: z.record(z.string(), jsonValue),
  attachments: z.array(z.object({ kind: z.enum(attachmentKinds), target: z.string() })),
  updatedAt: z.number().int(),
  updatedBy: z.string(),
});
const profileView = (p: SecurityProfile) => ({
  ...p,
  document: p.document as unknown as Record<string, unknown>,
});

const idParams = z.object({ id: z.string().max(64) });
const ALERT_EVENTS = [
  'alert.raised',
  'alert.acknowledged',
  'alert.assigned',
  'alert.noted',
  'alert.resolved',
  'response.executed',
  'response.failed',
];

/** Alerts (list, filter, lifecycle, responses, live stream), security profiles, device metrics and /metrics. */
export function monitorRoutes(deps: MonitorRoutesDeps) {
  const { monitor } = deps;
  const view = (a: Alert) => ({ ...a, responses: monitor.availableResponses(a) });

  /** A user limited to device groups sees and handles only alerts about devices of those groups. */
  async function visibleAlert(request: FastifyRequest, id: string): Promise<Alert> {
    const alert = await monitor.alerts.get(id);
    const scope = requestScope(request);
    if (scope.groups === null) return alert;
    const group = alert.deviceId ? await monitor.deviceGroup(alert.deviceId) : undefined;
    if (group === undefined || !scope.visible(group)) throw new BulwarkError('not_found', `no alert ${id}`);
    return alert;
  }

  return function register(root: FastifyInstance) {
    const app = root.withTypeProvider<ZodTypeProvider>();
    const tags = ['alerts'];

    app.get(
      '/api/v1/alerts',
      {
        config: { access: 'alerts:read' },
        schema: {
          tags,
          summary: 'Alerts, newest first, filtered',
          querystring: z.object({
            status: z
              .string()
              .max(64)
              .optional()
              .describe('comma-separated: open, acknowledged, resolved (default: open,acknowledged)'),
            severity: z.enum(severities).optional(),
            minSeverity: z.enum(severities).optional(),
            detector: z.string().max(64).optional(),
            device: z.string().max(64).optional(),
            subject: z.string().max(128).optional(),
            limit: z.coerce.number().int().min(1).max(1000).default(100),
            before: z.coerce.number().int().optional().describe('paging: alerts last seen before this time'),
          }),
          response: { 200: z.object({ alerts: z.array(alertOut) }) },
        },
      },
      async (request) => {
        const q = request.query;
        const status = (q.status ?? 'open,acknowledged').split(',').map((s) => s.trim());
        const bad = status.find((s) => !(alertStatuses as readonly string[]).includes(s));
        if (bad)
          throw new BulwarkError(
            'validation_failed',
            `status must be open, acknowledged or resolved, not ${bad}`,
          );
        const alerts = await monitor.alerts.list({
          status: status as Alert['status'][],
          severity: q.severity,
          minSeverity: q.minSeverity,
          detector: q.detector,
          deviceId: q.device,
          subject: q.subject,
          limit: q.limit,
          before: q.before,
          groups: requestScope(request).groups,
        });
        return { alerts: alerts.map(view) };
      },
    );

    app.get(
      '/api/v1/alerts/stream',
      {
        config: { access: 'alerts:read' },
        schema: {
          tags,
          summary: 'Alert transitions and responses as Server-Sent Events; resumes after Last-Event-ID',
        },
      },
      (request, reply) => streamEvents(request, reply, { ...deps, types: ALERT_EVENTS }),
    );

    app.get(
      '/api/v1/alerts/:id',
      {
        config: { access: 'alerts:read' },
        schema: { tags, params: idParams, response: { 200: alertOut } },
      },
      async (request) => view(await visibleAlert(request, request.params.id)),
    );

    // The lifecycle: each checks the alert is the user's to see, then applies one change as the user.
    const lifecycle = [
      [
        'acknowledge',
        z.object({}).strict(),
        (id: string, actor: string) => monitor.alerts.acknowledge(id, actor),
      ],
      [
        'resolve',
        z.object({ resolution: z.string().min(1).max(1000) }).strict(),
        (id: string, actor: string, body: { resolution: string }) =>
          monitor.alerts.resolve(id, actor, body.resolution),
      ],
      [
        'assign',
        z.object({ assignee: z.string().min(1).max(64).nullable() }).strict(),
        (id: string, actor: string, body: { assignee: string | null }) =>
          monitor.alerts.assign(id, body.assignee, actor),
      ],
      [
        'notes',
        z.object({ text: z.string().min(1).max(2000) }).strict(),
        (id: string, actor: string, body: { text: string }) => monitor.alerts.note(id, body.text, actor),
      ],
    ] as const;
    for (const [action, body, apply] of lifecycle)
      app.post(
        `/api/v1/alerts/:id/${action}`,
        {
          config: { access: 'alerts:write' },
          schema: {
            tags,
            params: idParams,
            ...(action === 'acknowledge' ? {} : { body }),
            response: { 200: alertOut },
          },
        },
        async (request) => {
          await visibleAlert(request, request.params.id);
          const change = apply as (id: string, actor: string, body: unknown) => Promise<Alert>;
          return view(await change(request.params.id, requestScope(request).actor, request.body));
        },
      );

    app.post(
      '/api/v1/alerts/:id/respond',
      {
        config: { access: 'alerts:write' },
        schema: {
          tags,
          summary: 'Run a response now (quarantine, revoke, ban_address, disable_user, notify)',
          description: 'Each action also needs its own permission (e.g. devices:quarantine for quarantine).',
          params: idParams,
          body: z.object({ action: z.enum(responseActions) }).strict(),
          response: { 200: alertOut },
        },
      },
      async (request) => {
        const alert = await visibleAlert(request, request.params.id);
        const principal = request.principal;
        const needed = responsePermissions[request.body.action];
        if (!principal || !can(principal.role, needed))
          throw new BulwarkError('forbidden', `${request.body.action} needs the ${needed} permission`);
        return view(await monitor.respond(alert.id, request.body.action, requestScope(request).actor));
      },
    );

    const ptags = ['security profiles'];
    app.get(
      '/api/v1/security-profiles',
      {
        config: { access: 'alerts:read' },
        schema: { tags: ptags, response: { 200: z.object({ profiles: z.array(profileOut) }) } },
      },
      async () => ({ profiles: (await monitor.profiles.list()).map(profileView) }),
    );
    app.get(
      '/api/v1/security-profiles/:name',
      {
        config: { access: 'alerts:read' },
        schema: {
          tags: ptags,
          params: z.object({ name: z.string().max(64) }),
          response: { 200: profileOut },
        },
      },
      async (request) => profileView(await monitor.profiles.get(request.params.name)),
    );
    app.put(
      '/api/v1/security-profiles/:name',
      {
        config: { access: 'monitor:write' },
        schema: {
          tags: ptags,
          summary: 'Create or replace a security profile (behaviours, built-in detectors, responses)',
          params: z.object({ name: z.string().max(64) }),
          body: z.record(z.string(), jsonValue),
          response: { 200: profileOut },
        },
      },
      async (request) =>
        profileView(await monitor.profiles.put(request.params.name, request.body, fleetActor(request))),
    );
    app.delete(
      '/api/v1/security-profiles/:name',
      {
        config: { access: 'monitor:write' },
        schema: { tags: ptags, params: z.object({ name: z.string().max(64) }) },
      },
      async (request, reply) => {
        await monitor.profiles.remove(request.params.name, fleetActor(request));
        return reply.status(204).send();
      },
    );
    const attachment = z
      .object({ kind: z.enum(attachmentKinds), target: z.string().max(64).default('*') })
      .strict();
    for (const [method, detach] of [
      ['POST', false],
      ['DELETE', true],
    ] as const)
      app.route({
        method,
        url: '/api/v1/security-profiles/:name/attachments',
        config: { access: 'monitor:write' },
        schema: {
          tags: ptags,
          summary: detach
            ? 'Detach a profile'
            : 'Attach a profile to all devices, a group, a zone or a device',
          params: z.object({ name: z.string().max(64) }),
          body: attachment,
          response: { 200: profileOut },
        },
        handler: async (request) =>
          profileView(
            await monitor.profiles.attach(
              request.params.name,
              request.body.kind,
              request.body.target,
              fleetActor(request),
              detach,
            ),
          ),
      });

    app.get(
      '/api/v1/devices/:id/metrics',
      {
        config: { access: 'devices:read' },
        schema: {
          tags: ['devices'],
          summary:
            "A device's measured figures: totals, rolling windows, its behaviours now, what it was seen doing",
          params: idParams,
        },
      },
      async (request) => {
        const info = await monitor.deviceGroup(request.params.id);
        if (info === undefined || !requestScope(request).visible(info))
          throw new BulwarkError('not_found', `no device ${request.params.id}`);
        const described = monitor.engine.describe(request.params.id);
        return described ?? { totals: null, behaviours: [], openDetectors: [] };
      },
    );

    app.get(
      '/metrics',
      {
        config: { access: 'metrics:read' },
        schema: { tags: ['observability'], summary: 'Prometheus metrics (text exposition format)' },
      },
      async (_request, reply) => {
        const { contentType, body } = await deps.metrics();
        return reply.type(contentType).send(body);
      },
    );
  };
}
