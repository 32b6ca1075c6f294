import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { api, BulwarkError } from '@bulwark/protocol';
import { defineRoute } from '../http/index.ts';
import { staticFiles, type StaticFile, type StaticFiles } from './static-files.ts';

/**
 * Every console answer carries this policy: scripts, styles, fonts and fetches from this origin only, images
 * also as data: URLs, no inline script or style, no framing, no `<base>`, forms post here only. The build
 * emits external files only (no inline script or style in index.html), so nothing needs 'unsafe-inline'.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** The build's file names change with their content, so a browser may keep each for a year. */
const IMMUTABLE = 'public, max-age=31536000, immutable';

/** First path segments that are never the console's: their unknown paths stay 404 problem+json. */
const NOT_CONSOLE = new Set(['api', '.well-known', 'pki', 'tuf', 'metrics', 'health', 'ready', 'assets']);

function secureHeaders(reply: FastifyReply): FastifyReply {
  return reply
    .header('Content-Security-Policy', CONSOLE_CSP)
    .header('X-Content-Type-Options', 'nosniff')
    .header('Referrer-Policy', 'no-referrer')
    .header('Cross-Origin-Opener-Policy', 'same-origin')
    .header('Cross-Origin-Resource-Policy', 'same-origin')
    .header('X-Frame-Options', 'DENY');
}

const notBuilt = (dir: string) =>
  new BulwarkError(
    'unavailable',
    `the web console is not built (no ${dir}/index.html): run \`npm run build\` (npm install does it), then reload`,
  );

function sendPage(reply: FastifyReply, page: StaticFile): FastifyReply {
  // The page names the current hashed files: revalidated every time, so a rebuild is picked up on reload.
  return secureHeaders(reply).header('Cache-Control', 'no-cache').type(page.contentType).send(page.body);
}

/** A navigation to a client-side route (`/devices`, `/alerts`…): a GET from a browser that wants HTML. */
export function isConsoleNavigation(request: FastifyRequest): boolean {
  if (request.method !== 'GET' && request.method !== 'HEAD') return false;
  if (!(request.headers.accept ?? '').includes('text/html')) return false;
  const first = request.url.split(/[/?#]/)[1] ?? '';
  return request.url.length <= 2048 && !NOT_CONSOLE.has(first);
}

export interface ConsoleOptions {
  /** The console build (packages/console/dist). */
  dir: string;
}

export interface ConsoleRoutes {
  /** The Fastify plugin: `GET /` and `GET /assets/*`. */
  register: (app: FastifyInstance) => void;
  /**
   * For the listener's not-found handler: answers a browser's navigation to a client-side route with the console
   * page (true), or leaves every other unknown path to the 404 problem (false).
   */
  fallback: (request: FastifyRequest, reply: FastifyReply) => Promise<boolean>;
}

async function page(files: StaticFiles): Promise<StaticFile> {
  const index = await files.index();
  if (!index) throw notBuilt(files.root);
  return index;
}

/** The web console on the main listener: its page at `/` and at client-side routes, its files under /assets/. */
export function consoleRoutes(options: ConsoleOptions): ConsoleRoutes {
  const files = staticFiles(options.dir);
  return {
    register(app) {
      defineRoute(app, api.meta.consolePage, {
        handler: async ({ reply }) => {
          secureHeaders(reply);
          return sendPage(reply, await page(files));
        },
      });
      defineRoute(app, api.meta.consoleAsset, {
        handler: async ({ request, reply }) => {
          secureHeaders(reply);
          const requested = (request.params as { '*'?: string })['*'] ?? '';
          const file = await files.file(`assets/${requested}`);
          if (!file) throw new BulwarkError('not_found', `no console file ${request.url}`);
          return reply.header('Cache-Control', IMMUTABLE).type(file.contentType).send(file.body);
        },
      });
    },
    async fallback(request, reply) {
      if (!isConsoleNavigation(request)) return false;
      void secureHeaders(reply).header('Vary', 'Accept');
      void sendPage(reply, await page(files));
      return true;
    },
  };
}
