import { z } from 'zod';
import { contract, noContent } from './contract.ts';

/** Roles, least privilege first to last (the server's authz defines what each holds). */
export const roles = ['admin', 'security-officer', 'operator', 'auditor', 'viewer'] as const;
/** second_factor: send a code next; enrolment: enrol a factor first; active: signed in. */
export const sessionStates = ['second_factor', 'enrolment', 'active'] as const;

const tags = ['auth'] as const;
const userTags = ['users'] as const;

export const session = z.object({
  state: z
    .enum(sessionStates)
    .describe('second_factor: send a code next; enrolment: enrol a factor first; active: signed in'),
  csrfToken: z.string().describe('Send as X-CSRF-Token with every cookie-authenticated write'),
  expiresAt: z.number().int(),
});

const twoFactor = z.object({
  totp: z.boolean(),
  webauthn: z.number().int(),
  recoveryCodesLeft: z.number().int(),
});

export const user = z.object({
  username: z.string(),
  role: z.enum(roles),
  groups: z.array(z.string()).nullable(),
  twoFactor,
  twoFactorRequired: z.boolean(),
  setupPending: z.boolean(),
  disabled: z.boolean(),
  createdAt: z.number().int(),
});

const setup = z.object({ setupSecret: z.string(), setupExpiresAt: z.number().int() });

export const apiToken = z.object({
  id: z.string(),
  name: z.string(),
  role: z.string(),
  createdAt: z.number().int(),
  expiresAt: z.number().int(),
  lastUsedAt: z.number().int().nullable(),
  lastUsedAddress: z.string().nullable(),
  revoked: z.boolean(),
});

/** Credential ids are at most 1023 bytes (WebAuthn L3 §5.1.4.1): 1364 base64url characters. */
export const credentialId = z
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
export const registrationResponse = z.object({
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
export const authenticationResponse = z.object({
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

export const creationOptions = z
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

export const requestOptions = z
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

export const passkey = z.object({
  id: z.string(),
  name: z.string(),
  transports: z.array(z.string()),
  createdAt: z.number().int(),
  lastUsedAt: z.number().int().nullable(),
});

export const setupAccount = contract({
  method: 'POST',
  path: '/api/v1/auth/setup',
  summary: 'First sign-in: exchange the one-time setup secret for a password',
  tags,
  access: 'public',
  body: z.object({
    username: z.string().max(64),
    setupSecret: z.string().max(128),
    password: z.string().max(256),
  }),
  response: { 200: session },
});

export const signIn = contract({
  method: 'POST',
  path: '/api/v1/auth/sign-in',
  summary: 'Password step of sign-in',
  tags,
  access: 'public',
  body: z.object({ username: z.string().max(64), password: z.string().max(256) }),
  response: { 200: session },
});

export const secondFactor = contract({
  method: 'POST',
  path: '/api/v1/auth/second-factor',
  summary:
    'Second step of sign-in, or step-up in a signed-in session: a TOTP code or a recovery code (the session id is rotated)',
  tags,
  access: 'second-factor',
  body: z.union([
    z.object({ code: z.string().max(16) }).strict(),
    z.object({ recoveryCode: z.string().max(32) }).strict(),
  ]),
  response: { 200: session },
});

export const currentSession = contract({
  method: 'GET',
  path: '/api/v1/auth/session',
  summary: 'Who is signed in, and how',
  tags,
  access: 'signed-in',
  response: {
    200: z.object({
      username: z.string(),
      role: z.enum(roles),
      groups: z.array(z.string()).nullable(),
      via: z.enum(['session', 'token']),
      state: z.enum(sessionStates),
      csrfToken: z.string().optional(),
      twoFactorRequired: z.boolean(),
      twoFactor,
      idleTimeoutMs: z
        .number()
        .int()
        .optional()
        .describe(
          'a session ends after this long without a call (auth.sessionIdle); every call as the session restarts it. Absent for an API token',
        ),
      permissions: z
        .array(z.string())
        .describe(
          "what the role allows (a token's own role): a client shows only the actions these permit; the server checks each call",
        ),
    }),
  },
});

export const signOut = contract({
  method: 'POST',
  path: '/api/v1/auth/sign-out',
  summary:
    'Sign out (everywhere: end every session of this user; needs a session with a recent second factor)',
  tags,
  access: 'signed-in',
  body: z.object({ everywhere: z.boolean().default(false) }).default({ everywhere: false }),
  response: { 200: z.object({ sessionsEnded: z.number().int() }) },
});

export const beginTotp = contract({
  method: 'POST',
  path: '/api/v1/auth/totp',
  summary: 'Start TOTP enrolment: secret, otpauth URI and QR code',
  tags,
  access: 'factor-enrolment',
  response: { 200: z.object({ secret: z.string(), otpauthUri: z.string(), qrSvg: z.string() }) },
});

export const confirmTotp = contract({
  method: 'POST',
  path: '/api/v1/auth/totp/confirm',
  summary: 'Confirm TOTP with a first code; returns 10 single-use recovery codes (shown once)',
  tags,
  access: 'factor-enrolment',
  body: z.object({ code: z.string().max(16) }),
  response: { 200: z.object({ recoveryCodes: z.array(z.string()), session: session.optional() }) },
});

export const recoveryCodes = contract({
  method: 'POST',
  path: '/api/v1/auth/recovery-codes',
  summary:
    'Replace the recovery codes with 10 new ones (shown once); needs a second factor verified within auth.stepUpWindow',
  tags,
  access: 'fresh-session',
  response: { 200: z.object({ recoveryCodes: z.array(z.string()) }) },
});

export const listTokens = contract({
  method: 'GET',
  path: '/api/v1/auth/tokens',
  summary: 'Your API tokens (never the secrets)',
  tags,
  access: 'session',
  response: { 200: z.array(apiToken) },
});

export const createToken = contract({
  method: 'POST',
  path: '/api/v1/auth/tokens',
  summary: 'Create an API token (shown once) with a role no larger than yours; needs a recent second factor',
  tags,
  access: 'fresh-session',
  body: z.object({
    name: z.string().max(64),
    role: z.enum(roles).optional(),
    expiresIn: z.string().max(16).default('30d').describe('a duration: 12h, 30d, 365d'),
  }),
  response: {
    201: z.object({
      id: z.string(),
      name: z.string(),
      role: z.string(),
      token: z.string(),
      expiresAt: z.number().int(),
    }),
  },
});

export const revokeToken = contract({
  method: 'DELETE',
  path: '/api/v1/auth/tokens/:id',
  summary: 'Revoke one of your API tokens; needs a recent second factor',
  tags,
  access: 'fresh-session',
  params: z.object({ id: z.string().max(64) }),
  response: { 204: noContent },
});

export const passkeyRegistrationOptions = contract({
  method: 'POST',
  path: '/api/v1/auth/webauthn/register/options',
  summary: 'Start passkey registration: options for navigator.credentials.create()',
  tags,
  access: 'factor-enrolment',
  response: { 200: creationOptions },
});

export const passkeyRegister = contract({
  method: 'POST',
  path: '/api/v1/auth/webauthn/register/verify',
  summary:
    'Register the passkey; a session still enrolling becomes active, and a first factor brings 10 recovery codes (shown once)',
  tags,
  access: 'factor-enrolment',
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
      credential: passkey,
      recoveryCodes: z.array(z.string()).optional(),
      session: session.optional(),
    }),
  },
});

export const passkeyAuthenticationOptions = contract({
  method: 'POST',
  path: '/api/v1/auth/webauthn/authenticate/options',
  summary: 'Second step (or step-up) with a passkey: options for navigator.credentials.get()',
  tags,
  access: 'second-factor',
  response: { 200: requestOptions },
});

export const passkeyAuthenticate = contract({
  method: 'POST',
  path: '/api/v1/auth/webauthn/authenticate/verify',
  summary: 'Second step (or step-up) with a passkey: the assertion (the session id is rotated)',
  tags,
  access: 'second-factor',
  body: z.object({ response: authenticationResponse }),
  response: { 200: session },
});

export const listPasskeys = contract({
  method: 'GET',
  path: '/api/v1/auth/webauthn/credentials',
  summary: 'Your passkeys (never their keys)',
  tags,
  access: 'session',
  response: { 200: z.array(passkey) },
});

export const removePasskey = contract({
  method: 'DELETE',
  path: '/api/v1/auth/webauthn/credentials/:id',
  summary:
    'Remove one of your passkeys (not the last second factor of a role that requires one); needs a recent second factor',
  tags,
  access: 'fresh-session',
  params: z.object({ id: credentialId }),
  response: { 204: noContent },
});

const usernameParams = z.object({ username: z.string().max(64) });
const groupsIn = z.array(z.string().max(64)).max(100).nullable().optional();

export const listUsers = contract({
  method: 'GET',
  path: '/api/v1/users',
  summary: 'List users with their 2FA coverage',
  tags: userTags,
  access: 'users:read',
  response: { 200: z.array(user) },
});

export const getUser = contract({
  method: 'GET',
  path: '/api/v1/users/:username',
  summary: 'One user with their 2FA coverage',
  tags: userTags,
  access: 'users:read',
  params: usernameParams,
  response: { 200: user },
});

export const createUser = contract({
  method: 'POST',
  path: '/api/v1/users',
  summary: 'Create a user; returns a one-time setup secret to exchange at first sign-in',
  tags: userTags,
  access: 'users:write',
  body: z.object({ username: z.string().max(64), role: z.enum(roles), groups: groupsIn }),
  response: { 201: setup.extend({ user }) },
});

export const updateUser = contract({
  method: 'PATCH',
  path: '/api/v1/users/:username',
  summary: "Change a user's role, device groups or disabled state (ends the user's sessions)",
  tags: userTags,
  access: 'users:write',
  params: usernameParams,
  body: z.object({
    role: z.enum(roles).optional(),
    groups: groupsIn,
    disabled: z.boolean().optional(),
  }),
  response: { 200: user },
});

export const resetUser = contract({
  method: 'POST',
  path: '/api/v1/users/:username/reset',
  summary: 'Reset password and factors; returns a new setup secret',
  tags: userTags,
  access: 'users:write',
  params: usernameParams,
  response: { 200: setup },
});
