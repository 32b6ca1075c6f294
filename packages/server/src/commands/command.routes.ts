import type { FastifyInstance } from 'fastify';
import { api, BulwarkError } from '@bulwark/protocol';
import type {} from '../http/index.ts'; // app.defineRoute
import { requestScope } from '../authz/index.ts';
import { DEFAULT_TIMEOUT_MS } from './command.rules.ts';
import type { CommandService } from './command.service.ts';

export interface CommandRoutesDeps {
  commands: Pick<CommandService, 'send'>;
  /** The devices door's `find`: a user limited to device groups commands only those (others answer 404). */
  groupOf(deviceId: string): Promise<string | null | undefined>;
}

/** `POST /api/v1/devices/:id/commands`: sends and waits; every outcome answers 200 with its status. */
export function commandRoutes(deps: CommandRoutesDeps) {
  return function register(app: FastifyInstance) {
    app.defineRoute(api.devices.command, {
      async handler({ request, params, body }) {
        const { actor, visible } = requestScope(request);
        const group = await deps.groupOf(params.id);
        if (group === undefined || !visible(group))
          throw new BulwarkError('not_found', `device ${params.id} does not exist`);
        return deps.commands.send({
          deviceId: params.id,
          name: body.name,
          data: body.data,
          timeoutMs: body.timeoutMs ?? body.timeout ?? DEFAULT_TIMEOUT_MS,
          actor,
        });
      },
    });
  };
}
