import type { FastifyInstance } from 'fastify';
import { api } from '@bulwark/protocol';
import type {} from '../http/index.ts'; // app.defineRoute
import { sessionPrincipal, startSession } from './auth.routes.ts';
import type { WebauthnService } from './webauthn.ts';

const contracts = api.users;

/** Passkeys: registration, the second sign-in step, and the user's own list (schemas in protocol api.users). */
export function webauthnRoutes(webauthn: WebauthnService) {
  return function register(app: FastifyInstance) {
    app.defineRoute(contracts.passkeyRegistrationOptions, {
      handler: ({ principal }) => webauthn.registrationOptions(sessionPrincipal(principal)),
    });

    app.defineRoute(contracts.passkeyRegister, {
      async handler({ request, reply, body, principal }) {
        const result = await webauthn.verifyRegistration(sessionPrincipal(principal), body, request.ip);
        return {
          credential: result.credential,
          recoveryCodes: result.recoveryCodes,
          session: result.session && startSession(reply, result.session),
        };
      },
    });

    app.defineRoute(contracts.passkeyAuthenticationOptions, {
      handler: ({ principal }) => webauthn.authenticationOptions(sessionPrincipal(principal)),
    });

    app.defineRoute(contracts.passkeyAuthenticate, {
      handler: async ({ request, reply, body, principal }) =>
        startSession(
          reply,
          await webauthn.verifyAuthentication(sessionPrincipal(principal), body.response, request.ip),
        ),
    });

    app.defineRoute(contracts.listPasskeys, { handler: ({ principal }) => webauthn.list(principal) });

    app.defineRoute(contracts.removePasskey, {
      async handler({ params, principal }) {
        await webauthn.remove(principal, params.id);
      },
    });
  };
}
