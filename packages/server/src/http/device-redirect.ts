import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { api, BulwarkError } from '@bulwark/protocol';
import { defineRoute } from './define-route.ts';

/** A route that authenticates devices by their TLS client certificate, served on the device listener. */
export interface DeviceRoute {
  method: 'GET' | 'POST';
  url: string;
}

function requestedHost(request: FastifyRequest): string | undefined {
  return /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]{1,253})(?::\d{1,5})?$/.exec(request.host)?.[1];
}

/**
 * The main listener asks for no client certificate (browsers would prompt), so the routes that need the
 * device certificate (EST `simplereenroll`, the TUF repository) live on the mutual-TLS device listener and
 * answer here with 308 Permanent Redirect (RFC 9110 §15.4.9: method and body kept) to the same path and
 * query on the same host at that listener. Devices enrolled with the main URL keep working: the agent
 * follows this one redirect (so does `curl --location`).
 */
export function deviceListenerRedirects(routes: readonly DeviceRoute[], devicePort: () => number) {
  const redirect = async (request: FastifyRequest, reply: FastifyReply) => {
    const host = requestedHost(request);
    if (!host) throw new BulwarkError('bad_request', 'the Host header is not a host name or address');
    return reply.status(308).header('Location', `https://${host}:${devicePort()}${request.url}`).send();
  };
  return function register(app: FastifyInstance) {
    // Answered in onRequest, before any body is read or parsed (a CSR's content type is the device listener's).
    for (const route of routes)
      defineRoute(app, api.meta.deviceListenerRedirect(route.method, route.url), {
        onRequest: redirect,
        handler: ({ request, reply }) => redirect(request, reply),
      });
  };
}
