import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { principalOf, sessionOut, startSession } from './auth.routes.ts';
import type { WebauthnService } from './webauthn.ts';
import { principalIn } from './request-principal.ts';

/** Credential ids are at most 1023 bytes (WebAuthn L3 §5.1.4.1): 1364 base64url characters. */
const credentialId = z
  .string()
  .min(1)
  .max(1364)
  .regex(/^[A-Za-z0-9_-]+$/, 'must be base64url');
const base64url = (max: number) =>
  z
    .string()
    .max(max)
    .regex(/^[A-Za-z0-9_-]*$/, 'must be base64url');
const transports = z.array(z.string().max(32)).max(10);
const clientExtensionResults = z
  .object({
    appid: z.boolean().optional(),
    credProps: z.object({ rk: z.boolean().optional() }).optional(),
    hmacCreateSecret: z.boolean().optional(),
  })
  .default({});

/** What `PublicKeyCredential.toJSON()` (or @simplewebauthn/browser) gives for a new passkey. */
const registrationResponse = z.object({
  id: credentialId,
  rawId: credentialId,
  type: z.literal('public-key'),
  response: z.object({
    clientDataJSON: base64url(8192),
    attestationObject: base64url(65_536),
    authenticatorData: base64url(65_536).optional(),
    transports: transports.optional(),
    publicKeyAlgorithm: z.number().int().optional(),
    publicKey: base64url(8192).optional(),
  }),
  authenticatorAttachment: z.enum(['platform', 'cross-platform']).optional(),
  clientExtensionResults,
});

/** What `PublicKeyCredential.toJSON()` gives for an assertion. */
const authenticationResponse = z.object({
  id: credentialId,
  rawId: credentialId,
  type: z.literal('public-key'),
  response: z.object({
    clientDataJSON: base64url(8192),
    authenticatorData: base64url(8192),
    signature: base64url(2048),
    userHandle: base64url(256).optional(),
  }),
  authenticatorAttachment: z.enum(['platform', 'cross-platform']).optional(),
  clientExtensionResults,
});

const userVerification = z.enum(['discouraged', 'preferred', 'required']);
const descriptor = z.object({
  id: z.string(),
  type: z.string().describe('public-key'),
  transports: z.array(z.string()).optional(),
});

const creationOptions = z
  .object({
    rp: z.object({ name: z.string(), id: z.string().optional() }),
    user: z.object({
      id: z.string().describe('The user handle (base64url): the account id, not the name'),
      name: z.string(),
      displayName: z.string(),
    }),
    challenge: z.string(),
    pubKeyCredParams: z.array(z.object({ alg: z.number().int(), type: z.literal('public-key') })),
    timeout: z.number().int().optional(),
    excludeCredentials: z.array(descriptor).optional(),
    authenticatorSelection: z
      .object({
        authenticatorAttachment: z.enum(['platform', 'cross-platform']).optional(),
        requireResidentKey: z.boolean().optional(),
        residentKey: z.enum(['discouraged', 'preferred', 'required']).optional(),
        userVerification: userVerification.optional(),
      })
      .optional(),
    hints: z.array(z.string()).optional(),
    attestation: z.enum(['none', 'indirect', 'direct', 'enterprise']).optional(),
    extensions: z.object({ credProps: z.boolean().optional() }).optional(),
  })
  .describe(
    'PublicKeyCredentialCreationOptionsJSON: pass to PublicKeyCredential.parseCreationOptionsFromJSON()',
  );

const requestOptions = z
  .object({
    challenge: z.string(),
    timeout: z.number().int().optional(),
    rpId: z.string().optional(),
    allowCredentials: z.array(descriptor).optional(),
    userVerification: userVerification.optional(),
  })
  .describe(
    'PublicKeyCredentialRequestOptionsJSON: pass to PublicKeyCredential.parseRequestOptionsFromJSON()',
  );

const credentialOut = z.object({
  id: z.string(),
  name: z.string(),
  transports: z.array(z.string()),
  createdAt: z.number().int(),
  lastUsedAt: z.number().int().nullable(),
});

/** Passkeys: registration, the second sign-in step, and the user's own list. */
export function webauthnRoutes(webauthn: WebauthnService) {
  return function register(root: FastifyInstance) {
    const app = root.withTypeProvider<ZodTypeProvider>();
    const tags = ['auth'];

    app.post(
      '/api/v1/auth/webauthn/register/options',
      {
        config: { access: 'factor-enrolment' },
        schema: {
          tags,
          summary: 'Start passkey registration: options for navigator.credentials.create()',
          response: { 200: creationOptions },
        },
      },
      async (request) => webauthn.registrationOptions(principalOf(request)),
    );

    app.post(
      '/api/v1/auth/webauthn/register/verify',
      {
        config: { access: 'factor-enrolment' },
        schema: {
          tags,
          summary:
            'Register the passkey; a session still enrolling becomes active, and a first factor brings 10 recovery codes (shown once)',
          body: z.object({
            response: registrationResponse,
            name: z
              .string()
              .trim()
              .min(1)
              .max(64)
              .regex(/^[^\p{C}]+$/u, 'must be printable text')
              .default('Passkey')
              .describe('A name to tell your passkeys apart'),
          }),
          response: {
            200: z.object({
              credential: credentialOut,
              recoveryCodes: z.array(z.string()).optional(),
              session: sessionOut.optional(),
            }),
          },
        },
      },
      async (request, reply) => {
        const result = await webauthn.verifyRegistration(principalOf(request), request.body, request.ip);
        return {
          credential: result.credential,
          recoveryCodes: result.recoveryCodes,
          session: result.session && startSession(reply, result.session),
        };
      },
    );

    app.post(
      '/api/v1/auth/webauthn/authenticate/options',
      {
        config: { access: 'second-factor' },
        schema: {
          tags,
          summary: 'Second step (or step-up) with a passkey: options for navigator.credentials.get()',
          response: { 200: requestOptions },
        },
      },
      async (request) => webauthn.authenticationOptions(principalOf(request)),
    );

    app.post(
      '/api/v1/auth/webauthn/authenticate/verify',
      {
        config: { access: 'second-factor' },
        schema: {
          tags,
          summary: 'Second step (or step-up) with a passkey: the assertion (the session id is rotated)',
          body: z.object({ response: authenticationResponse }),
          response: { 200: sessionOut },
        },
      },
      async (request, reply) =>
        startSession(
          reply,
          await webauthn.verifyAuthentication(principalOf(request), request.body.response, request.ip),
        ),
    );

    app.get(
      '/api/v1/auth/webauthn/credentials',
      {
        config: { access: 'session' },
        schema: {
          tags,
          summary: 'Your passkeys (never their keys)',
          response: { 200: z.array(credentialOut) },
        },
      },
      async (request) => webauthn.list(principalIn(request)),
    );

    app.delete(
      '/api/v1/auth/webauthn/credentials/:id',
      {
        config: { access: 'fresh-session' },
        schema: {
          tags,
          summary:
            'Remove one of your passkeys (not the last second factor of a role that requires one); needs a recent second factor',
          params: z.object({ id: credentialId }),
        },
      },
      async (request, reply) => {
        await webauthn.remove(principalIn(request), request.params.id);
        return reply.status(204).send();
      },
    );
  };
}
