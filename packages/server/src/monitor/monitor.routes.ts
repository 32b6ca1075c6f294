import type { FastifyInstance, FastifyRequest } from 'fastify';
import { api, BulwarkError } from '@bulwark/protocol';
import { streamEvents, type AuditEntry, type AuditLog, type EventBus } from '../events/index.ts';
import type {} from '../http/index.ts'; // app.defineRoute
import { can, createAuthz, fleetActor, requestScope, requestVisibility } from '../authz/index.ts';
import { alertStatuses, cursorText, parseCursor, type Alert } from './alert.service.ts';
import type { Monitor } from './monitor.service.ts';
import { responsePermissions } from './monitor.service.ts';
import type { SecurityProfile } from './profile.ts';

export interface MonitorRoutesDeps {
  monitor: Monitor;
  log: Pick<AuditLog, 'readAfter'>;
  bus: Pick<EventBus, 'subscribe'>;
  visible(request: FastifyRequest, entry: AuditEntry): boolean | Promise<boolean>;
  /** Prometheus exposition (text format) for GET /metrics. */
  metrics(): Promise<{ contentType: string; body: string }>;
}

const contracts = api.monitor;

const profileView = (p: SecurityProfile) => ({
  ...p,
  document: p.document as unknown as Record<string, unknown>,
});

const ALERT_EVENTS = [
  'alert.raised',
  'alert.acknowledged',
  'alert.assigned',
  'alert.noted',
  'alert.resolved',
  'response.executed',
  'response.failed',
];

function alertStatusesOf(text: string | undefined): Alert['status'][] {
  const wanted = (text ?? 'open,acknowledged').split(',').map((s) => s.trim());
  return wanted.map((s) => {
    const found = alertStatuses.find((known) => known === s);
    if (!found)
      throw new BulwarkError('validation_failed', `status must be open, acknowledged or resolved, not ${s}`);
    return found;
  });
}

function alertRoutes(app: FastifyInstance, deps: MonitorRoutesDeps): void {
  const { monitor } = deps;
  const view = (a: Alert) => ({ ...a, responses: monitor.availableResponses(a) });

  // authz's check, over the monitor's device groups (not cached: a moved device is seen moved at once).
  const alertVisibility = requestVisibility(
    createAuthz({ groupOf: (id) => monitor.deviceGroup(id), now: Date.now, cacheMs: 0 }),
  );
  /** A user limited to device groups sees and handles only alerts about devices of those groups. */
  async function visibleAlert(request: FastifyRequest, id: string): Promise<Alert> {
    const alert = await monitor.alerts.get(id);
    await alertVisibility.mustSee(request, { alert }, `no alert ${id}`);
    return alert;
  }

  app.defineRoute(contracts.listAlerts, {
    async handler({ request, query }) {
      const page = await monitor.alerts.page({
        status: alertStatusesOf(query.status),
        severity: query.severity,
        minSeverity: query.minSeverity,
        detector: query.detector,
        deviceId: query.device,
        subject: query.subject,
        assignee: query.assignee,
        limit: query.limit,
        before: query.before,
        after: query.cursor === undefined ? undefined : parseCursor(query.cursor),
        groups: requestScope(request).groups,
      });
      return { alerts: page.alerts.map(view), ...(page.next ? { next: cursorText(page.next) } : {}) };
    },
  });

  app.defineRoute(contracts.alertStream, {
    async handler({ request, reply }) {
      await streamEvents(request, reply, { ...deps, types: ALERT_EVENTS });
      return reply;
    },
  });

  app.defineRoute(contracts.getAlert, {
    handler: async ({ request, params }) => view(await visibleAlert(request, params.id)),
  });

  // The lifecycle: each checks the alert is the user's to see, then applies one change as the user.
  const change = async (request: FastifyRequest, id: string, apply: (actor: string) => Promise<Alert>) => {
    await visibleAlert(request, id);
    return view(await apply(requestScope(request).actor));
  };
  app.defineRoute(contracts.acknowledge, {
    handler: ({ request, params }) =>
      change(request, params.id, (actor) => monitor.alerts.acknowledge(params.id, actor)),
  });
  app.defineRoute(contracts.resolve, {
    handler: ({ request, params, body }) =>
      change(request, params.id, (actor) => monitor.alerts.resolve(params.id, actor, body.resolution)),
  });
  app.defineRoute(contracts.assign, {
    handler: ({ request, params, body }) =>
      change(request, params.id, (actor) => monitor.alerts.assign(params.id, body.assignee, actor)),
  });
  app.defineRoute(contracts.note, {
    handler: ({ request, params, body }) =>
      change(request, params.id, (actor) => monitor.alerts.note(params.id, body.text, actor)),
  });

  app.defineRoute(contracts.respond, {
    async handler({ request, params, body, principal }) {
      const alert = await visibleAlert(request, params.id);
      const needed = responsePermissions[body.action];
      if (!can(principal.role, needed))
        throw new BulwarkError('forbidden', `${body.action} needs the ${needed} permission`);
      return view(await monitor.respond(alert.id, body.action, requestScope(request).actor));
    },
  });
}

function profileRoutes(app: FastifyInstance, monitor: Monitor): void {
  app.defineRoute(contracts.listProfiles, {
    handler: async () => ({ profiles: (await monitor.profiles.list()).map(profileView) }),
  });
  app.defineRoute(contracts.getProfile, {
    handler: async ({ params }) => profileView(await monitor.profiles.get(params.name)),
  });
  app.defineRoute(contracts.putProfile, {
    handler: async ({ request, params, body }) =>
      profileView(await monitor.profiles.put(params.name, body, fleetActor(request))),
  });
  app.defineRoute(contracts.deleteProfile, {
    async handler({ request, params }) {
      await monitor.profiles.remove(params.name, fleetActor(request));
    },
  });
  for (const [c, detach] of [
    [contracts.attachProfile, false],
    [contracts.detachProfile, true],
  ] as const)
    app.defineRoute(c, {
      handler: async ({ request, params, body }) =>
        profileView(
          await monitor.profiles.attach(
            params.name,
            { kind: body.kind, target: body.target, detach },
            fleetActor(request),
          ),
        ),
    });
}

function metricsRoutes(app: FastifyInstance, deps: MonitorRoutesDeps): void {
  const { monitor } = deps;
  app.defineRoute(contracts.deviceMetricsOf, {
    async handler({ request, params }) {
      const info = await monitor.deviceGroup(params.id);
      if (info === undefined || !requestScope(request).visible(info))
        throw new BulwarkError('not_found', `no device ${params.id}`);
      const described = monitor.engine.describe(params.id);
      return described ?? { totals: null, behaviours: [], openDetectors: [] };
    },
  });

  app.defineRoute(contracts.prometheus, {
    async handler({ reply }) {
      const { contentType, body } = await deps.metrics();
      return reply.type(contentType).send(body);
    },
  });
}

/** Alerts (list, filter, lifecycle, responses, live stream), security profiles, device metrics and /metrics. */
export function monitorRoutes(deps: MonitorRoutesDeps) {
  return function register(app: FastifyInstance) {
    alertRoutes(app, deps);
    profileRoutes(app, deps.monitor);
    metricsRoutes(app, deps);
  };
}
