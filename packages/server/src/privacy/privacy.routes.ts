import type { FastifyInstance, FastifyRequest } from 'fastify';
import { api, BulwarkError } from '@bulwark/protocol';
import type {} from '../http/index.ts'; // app.defineRoute
import { fleetWide, requestScope } from '../authz/index.ts';
import type { PrivacyService } from './privacy.service.ts';

/** What the routes call: the privacy service's use cases (H3/H4), nothing else. */
export type PrivacyRoutesService = Pick<
  PrivacyService,
  | 'listSchemas'
  | 'getSchema'
  | 'putSchema'
  | 'removeSchema'
  | 'testSchema'
  | 'listSubjects'
  | 'getSubject'
  | 'addSubject'
  | 'updateSubject'
  | 'liftRestriction'
  | 'setConsent'
  | 'listRequests'
  | 'getRequest'
  | 'createRequest'
  | 'runRequest'
  | 'completeRequest'
  | 'record'
  | 'recordHtml'
  | 'exportTelemetry'
  | 'decrypt'
>;

const contracts = api.privacy;

/**
 * Privacy data spans the fleet (people are not in device groups): a user limited to device groups may not
 * read or change it. The actor for events otherwise.
 */
function privacyActor(request: FastifyRequest): string {
  const { scope, actor } = requestScope(request);
  if (!fleetWide(scope))
    throw new BulwarkError(
      'forbidden',
      'privacy data spans the fleet: users limited to device groups have no access',
    );
  return actor;
}

/** Reads: the same check, then the work. */
function fleet<T>(request: FastifyRequest, work: () => T): T {
  privacyActor(request);
  return work();
}

function schemaRoutes(app: FastifyInstance, privacy: PrivacyRoutesService): void {
  app.defineRoute(contracts.listSchemas, {
    handler: ({ request }) => fleet(request, () => privacy.listSchemas()),
  });
  app.defineRoute(contracts.showSchema, {
    handler: ({ request, params }) => fleet(request, () => privacy.getSchema(params.name)),
  });
  app.defineRoute(contracts.putSchema, {
    handler({ request, params, body }) {
      const actor = privacyActor(request);
      if (body.name !== undefined && body.name !== params.name)
        throw new BulwarkError(
          'validation_failed',
          `name: the document names "${body.name}", the path "${params.name}"`,
        );
      return privacy.putSchema({ ...body, name: params.name }, actor);
    },
  });
  app.defineRoute(contracts.removeSchema, {
    handler: ({ request, params }) => privacy.removeSchema(params.name, privacyActor(request)),
  });
  app.defineRoute(contracts.testSchema, {
    handler: ({ request, body }) => fleet(request, () => privacy.testSchema(body)),
  });
}

function subjectRoutes(app: FastifyInstance, privacy: PrivacyRoutesService): void {
  app.defineRoute(contracts.listSubjects, {
    handler: ({ request, query }) =>
      fleet(request, async () => {
        const subjects = await privacy.listSubjects(query);
        // A full page may have a next one: its cursor is the last id (keyset, as every list).
        return { subjects, next: subjects.length === query.limit ? (subjects.at(-1)?.id ?? null) : null };
      }),
  });
  app.defineRoute(contracts.showSubject, {
    handler: ({ request, params }) => fleet(request, () => privacy.getSubject(params.id)),
  });
  app.defineRoute(contracts.addSubject, {
    async handler({ request, body }) {
      await privacy.addSubject(body, privacyActor(request));
      return privacy.getSubject(body.id);
    },
  });
  app.defineRoute(contracts.updateSubject, {
    async handler({ request, params, body }) {
      const actor = privacyActor(request);
      const { restricted, ...links } = body;
      await privacy.updateSubject(params.id, links, actor);
      if (restricted === false) await privacy.liftRestriction(params.id, actor);
      return privacy.getSubject(params.id);
    },
  });
  app.defineRoute(contracts.setConsent, {
    async handler({ request, params, body }) {
      await privacy.setConsent(params.id, body, privacyActor(request));
      return privacy.getSubject(params.id);
    },
  });
}

function requestRoutes(app: FastifyInstance, privacy: PrivacyRoutesService): void {
  app.defineRoute(contracts.listRequests, {
    handler: ({ request, query }) => fleet(request, () => privacy.listRequests(query)),
  });
  app.defineRoute(contracts.showRequest, {
    handler: ({ request, params }) => fleet(request, () => privacy.getRequest(params.id)),
  });
  app.defineRoute(contracts.createRequest, {
    handler: ({ request, body }) => privacy.createRequest(body, privacyActor(request)),
  });
  app.defineRoute(contracts.runRequest, {
    handler: ({ request, params }) => privacy.runRequest(params.id, privacyActor(request)),
  });
  app.defineRoute(contracts.completeRequest, {
    handler: ({ request, params, body }) => privacy.completeRequest(params.id, body, privacyActor(request)),
  });
}

function recordRoutes(app: FastifyInstance, privacy: PrivacyRoutesService): void {
  app.defineRoute(contracts.record, {
    async handler({ request, query, reply }) {
      privacyActor(request);
      if (query.format === 'json') return privacy.record();
      // The same record as a page to print or file (Art. 30(3): in writing, including in electronic form).
      return reply.type('text/html; charset=utf-8').send(await privacy.recordHtml());
    },
  });
  app.defineRoute(contracts.telemetryExport, {
    handler: ({ request, body }) => privacy.exportTelemetry(body, privacyActor(request)),
  });
  app.defineRoute(contracts.decrypt, {
    handler: ({ request, body }) => privacy.decrypt(body, privacyActor(request)),
  });
}

/**
 * `/api/v1/privacy`: data schemas, data subjects and consent, data-subject requests, the record of processing
 * activities, de-identified telemetry exports and decryption (contracts in protocol's api/privacy.ts).
 */
export function privacyRoutes(privacy: PrivacyRoutesService) {
  return function register(app: FastifyInstance) {
    schemaRoutes(app, privacy);
    subjectRoutes(app, privacy);
    requestRoutes(app, privacy);
    recordRoutes(app, privacy);
  };
}
