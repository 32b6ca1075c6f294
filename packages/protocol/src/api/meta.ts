import { contract, raw, type HttpMethod } from './contract.ts';

export const openapi = contract({
  method: 'GET',
  path: '/api/v1/openapi.json',
  summary: 'This API as an OpenAPI 3.1 document, generated from the contracts',
  tags: ['meta'],
  access: 'public',
  response: { 200: raw('application/json', 'an OpenAPI 3.1 document') },
});

/**
 * A route served on the mutual-TLS device listener, answered on the main listener with 308 Permanent
 * Redirect (RFC 9110 §15.4.9: method and body kept) to the same path there.
 */
export function deviceListenerRedirect(method: HttpMethod, path: string) {
  return contract({
    method,
    path,
    summary: 'Served on the device listener (mutual TLS): 308 Permanent Redirect there',
    tags: ['devices'],
    access: 'public',
    response: { 308: { empty: true, description: 'Permanent Redirect to the device listener (Location)' } },
  });
}

/**
 * The web console's page (packages/console, built into its dist/ by `npm run build`): `/` and every client-side
 * route a browser navigates to (a GET that accepts text/html and is no API, EST, PKI or metrics path) answer
 * this one HTML file under a strict Content-Security-Policy.
 */
export const consolePage = contract({
  method: 'GET',
  path: '/',
  summary: 'The web console (HTML); 503 problem+json `unavailable` when it was not built (`npm run build`)',
  tags: ['console'],
  access: 'public',
  response: { 200: raw('text/html', 'the console page') },
});

/** The console's scripts, styles and images: content-hashed names, cached for a year. */
export const consoleAsset = contract({
  method: 'GET',
  path: '/assets/*',
  summary: "One of the console's built files (content-hashed name, immutable)",
  tags: ['console'],
  access: 'public',
  response: { 200: raw('application/octet-stream', 'a script, style sheet or image of the console', true) },
});
