import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { api, BulwarkError } from '@bulwark/protocol';
import type {} from '../http/index.ts'; // app.defineRoute
import { fleetWide, requestScope } from '../authz/index.ts';
import type { BaselineError, BaselineService } from './baseline.service.ts';

/** What the routes call: the baseline service's use cases. */
export type BaselineRoutesService = Pick<
  BaselineService,
  'current' | 'validate' | 'diff' | 'apply' | 'history'
>;

const contracts = api.baseline;

/** The baseline is the organisation's: a user limited to device groups may not change it. */
function applyingActor(request: FastifyRequest): string {
  const { scope, actor } = requestScope(request);
  if (!fleetWide(scope))
    throw new BulwarkError(
      'forbidden',
      'the baseline applies to the whole fleet: users limited to device groups may not change it',
    );
  return actor;
}

function errorsOf(err: unknown): BaselineError[] | undefined {
  if (!(err instanceof BulwarkError) || err.code !== 'validation_failed') return undefined;
  const errors = err.details?.errors;
  return Array.isArray(errors) ? errors.filter(isBaselineError) : undefined;
}

function isBaselineError(value: unknown): value is BaselineError {
  return typeof value === 'object' && value !== null && 'path' in value && 'message' in value;
}

/**
 * An invalid document: the RFC 9457 problem every error is (code `validation_failed`), with the list of
 * errors as an extension member, so a client can point at each line.
 */
async function withErrorList<T>(request: FastifyRequest, reply: FastifyReply, work: () => Promise<T>) {
  try {
    return await work();
  } catch (err) {
    const errors = errorsOf(err);
    if (!errors || !(err instanceof BulwarkError)) throw err;
    return reply.status(400).type('application/problem+json').send({
      type: 'urn:bulwark:problem:validation_failed',
      title: 'Validation failed',
      status: 400,
      detail: err.message,
      code: err.code,
      instance: request.url,
      errors,
    });
  }
}

/** `/api/v1/baseline`: read, validate, diff and apply the organisation baseline, and its history. */
export function baselineRoutes(baseline: BaselineRoutesService) {
  return function register(app: FastifyInstance) {
    app.defineRoute(contracts.getBaseline, {
      handler: () => baseline.current(),
    });
    app.defineRoute(contracts.applyBaseline, {
      handler: ({ request, reply, body }) =>
        withErrorList(request, reply, () => baseline.apply(body.document, applyingActor(request))),
    });
    app.defineRoute(contracts.validateBaseline, {
      handler({ body }) {
        const result = baseline.validate(body.document);
        return result.ok
          ? { valid: true, name: result.baseline.name, errors: [] }
          : { valid: false, name: null, errors: result.errors };
      },
    });
    app.defineRoute(contracts.diffBaseline, {
      handler: ({ request, reply, body }) =>
        withErrorList(request, reply, async () => ({ changes: await baseline.diff(body.document) })),
    });
    app.defineRoute(contracts.baselineHistory, {
      handler: async ({ query }) => ({ versions: await baseline.history({ limit: query.limit }) }),
    });
  };
}
