import { createWebauthnContext, type WebauthnServiceDeps } from './webauthn.context.ts';
import { authenticationUseCases } from './webauthn.authenticate.ts';
import { credentialUseCases } from './webauthn.credentials.ts';
import { registrationUseCases } from './webauthn.register.ts';

export type { WebauthnServiceDeps, WebauthnCredentialInfo } from './webauthn.context.ts';

/** `https://<rpId>:<port>` (and the port-less form browsers send for 443), then the configured extra origins. */
export function webauthnOrigins(rpId: string, httpsPort: number, extra: readonly string[]): string[] {
  const own =
    httpsPort === 443 ? [`https://${rpId}`, `https://${rpId}:443`] : [`https://${rpId}:${httpsPort}`];
  return [...new Set([...own, ...extra])];
}

/**
 * Passkeys (WebAuthn Level 3) as a second factor beside TOTP: registration from a session allowed to enrol
 * factors, assertion as the second sign-in step, listing and removal. Challenges live on the session row and
 * are taken (cleared) by the first verification that reads them, whatever its outcome, so each works once.
 */
export function createWebauthnService(deps: WebauthnServiceDeps) {
  const ctx = createWebauthnContext(deps);
  return {
    ...registrationUseCases(ctx),
    ...authenticationUseCases(ctx),
    ...credentialUseCases(ctx),
  };
}

export type WebauthnService = ReturnType<typeof createWebauthnService>;
