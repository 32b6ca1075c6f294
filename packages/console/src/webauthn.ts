import {
  browserSupportsWebAuthn,
  startAuthentication,
  startRegistration,
  WebAuthnError,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialHint,
} from '@simplewebauthn/browser';
import type { z } from 'zod';
import { api } from '@bulwark/protocol';
import { call } from './api.ts';

type CreationOptions = z.output<typeof api.users.creationOptions>;
type Ticket = z.output<(typeof api.users.passkeyAuthenticate.response)[200]>;
type Registered = z.output<(typeof api.users.passkeyRegister.response)[200]>;

const hints: readonly PublicKeyCredentialHint[] = ['hybrid', 'security-key', 'client-device'];
const isHint = (h: string): h is PublicKeyCredentialHint => (hints as readonly string[]).includes(h);

/** The contract's creation options as the library takes them (hints it does not know are left out). */
function creationOptionsJSON(options: CreationOptions): PublicKeyCredentialCreationOptionsJSON {
  return { ...options, hints: options.hints?.filter(isHint) };
}

/** Whether this browser can use passkeys at all (WebAuthn needs a secure context: https, or localhost). */
export const passkeysSupported = (): boolean => browserSupportsWebAuthn();

/**
 * Registers a passkey for the signed-in user: options from the server, `navigator.credentials.create()`, then
 * the server verifies and stores it (the first factor of an account brings recovery codes).
 */
export async function registerPasskey(name: string): Promise<Registered> {
  const options = await call(api.users.passkeyRegistrationOptions);
  const response = await startRegistration({ optionsJSON: creationOptionsJSON(options) });
  return call(api.users.passkeyRegister, { body: { response, name } });
}

/**
 * Proves the second factor with a passkey (the second sign-in step, or step-up): options naming the user's
 * passkeys, `navigator.credentials.get()`, and the server's answer, a session with a new id.
 */
export async function verifyWithPasskey(): Promise<Ticket> {
  const options = await call(api.users.passkeyAuthenticationOptions);
  const response = await startAuthentication({ optionsJSON: options });
  return call(api.users.passkeyAuthenticate, { body: { response } });
}

/** What a person should read when the browser's passkey prompt failed, or undefined when it was not the browser. */
export function passkeyPromptError(error: unknown): string | undefined {
  // The library passes the browser's NotAllowedError on as its cause: cancelled, timed out or refused.
  const cause = error instanceof WebAuthnError ? error.cause : error;
  if (cause instanceof DOMException && cause.name === 'NotAllowedError')
    return 'The passkey prompt was closed or timed out. Try again.';
  if (error instanceof WebAuthnError) {
    if (error.code === 'ERROR_AUTHENTICATOR_PREVIOUSLY_REGISTERED')
      return 'This authenticator already holds a passkey for your account.';
    if (error.code === 'ERROR_INVALID_DOMAIN' || error.code === 'ERROR_INVALID_RP_ID')
      return `Passkeys do not work at this address (${window.location.host}): open the console at the address the server is configured for (auth.webauthnRpId).`;
    return `The passkey did not work: ${error.message}`;
  }
  return undefined;
}
