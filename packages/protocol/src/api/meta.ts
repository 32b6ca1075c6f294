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
