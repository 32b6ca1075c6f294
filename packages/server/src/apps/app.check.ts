import { parseAppClientId, type ErrorCode } from '@bulwark/protocol';
import type { AppContext } from './app.context.ts';
import * as store from './app.store.ts';
import { APP_TOKEN_PREFIX, authenticateToken } from './app.tokens.ts';

/** What the broker's identify stage asks for every app connection. */
export interface AppCheckRequest {
  clientId: string;
  remoteAddress: string;
  /** From the PKI's connection check of an app certificate (`kind: 'app'`). */
  certificate?: { serial: string; app: string; notAfter?: number | undefined } | undefined;
  /** From the CONNECT (user name, password) when the client sent no certificate. */
  password?: { username: string; password: Buffer } | undefined;
}

/** The app instance a connection was identified as. */
export interface IdentifiedApp {
  app: string;
  instance: string | null;
  clientId: string;
  zone: string | null;
  purpose: string | null;
  /** The certificate's serial, or `token:<tokenId>`. */
  serial: string;
  tokenId: string | null;
  /** When the credential ends (the token's expiry, or the certificate's notAfter); null: never. The broker ends the session then. */
  expiresAt: number | null;
}

export type AppDecision = ({ ok: true } & IdentifiedApp) | { ok: false; code: ErrorCode; reason: string };

type Refusal = Extract<AppDecision, { ok: false }>;
const refuse = (code: ErrorCode, reason: string): Refusal => ({ ok: false, code, reason });

/**
 * A client id as shown in a refusal reason (which lands in `mqtt.connect_refused`): never when it could carry
 * a credential, i.e. it holds an app token's prefix or the password that came with it.
 */
function shownClientId(request: AppCheckRequest, max: number): string {
  const clientId = request.clientId;
  const password = request.password?.password.toString('utf8') ?? '';
  const secretLike =
    clientId.toLowerCase().includes(APP_TOKEN_PREFIX) ||
    (password.length >= 4 && clientId.includes(password));
  return secretLike ? '(not shown: it looks like a credential)' : `"${clientId.slice(0, max)}"`;
}

/**
 * The credential must name the app of the client id; undefined when it does. The MQTT user name is never
 * echoed: a client that swaps user name and password would otherwise store its token in the audit log.
 */
function credentialProblem(request: AppCheckRequest, app: string): Refusal | undefined {
  if (request.certificate) {
    if (request.certificate.app === app) return undefined;
    return refuse(
      'forbidden',
      `the certificate was issued to app ${request.certificate.app}, not to app ${app} of client id ${shownClientId(request, 128)}`,
    );
  }
  if (request.password) {
    if (request.password.username === app) return undefined;
    return refuse(
      'forbidden',
      `the user name is not app ${app} of client id ${shownClientId(request, 128)} (the user name is not shown)`,
    );
  }
  return refuse('unauthenticated', 'no app credentials: a client certificate, or user name and token');
}

/**
 * The apps check (docs/apps.md "Credentials"): the client id is `NAME` or `NAME/<instance>` of the app the
 * credential belongs to; the app exists and is active; a token is right, unexpired and unrevoked.
 */
export async function checkApp(ctx: AppContext, request: AppCheckRequest): Promise<AppDecision> {
  const id = parseAppClientId(request.clientId);
  // [MQTT-3.1.3-9]: an identifier the server does not accept is answered with 0x02.
  if (!id)
    return refuse(
      'validation_failed',
      `client id ${shownClientId(request, 128)} is not an app's (NAME or NAME/<instance>)`,
    );
  const problem = credentialProblem(request, id.app);
  if (problem) return problem;
  const app = await store.getApp(ctx.db, id.app);
  if (!app) return refuse('not_found', `unknown app ${id.app}`);
  if (app.status !== 'active') return refuse('forbidden', `app ${id.app} is revoked`);
  // A device added after the app under its name owns the bare client id: the app connects as NAME/<instance>.
  if (id.instance === null && (await ctx.devices.find(id.app)))
    return refuse(
      'validation_failed',
      `client id ${id.app} is also a device's: connect as ${id.app}/<instance>`,
    );
  let serial: string;
  let tokenId: string | null = null;
  let expiresAt: number | null = request.certificate?.notAfter ?? null;
  if (request.certificate) serial = request.certificate.serial;
  else {
    const password = request.password?.password ?? Buffer.alloc(0);
    const token = await authenticateToken(ctx, {
      app: id.app,
      password,
      remoteAddress: request.remoteAddress,
    });
    if (!token.ok) return refuse('unauthenticated', token.reason);
    tokenId = token.tokenId;
    expiresAt = token.expiresAt;
    serial = `token:${token.tokenId}`;
  }
  return {
    ok: true,
    app: app.name,
    instance: id.instance,
    clientId: request.clientId,
    zone: app.zone,
    purpose: app.purpose,
    serial,
    tokenId,
    expiresAt,
  };
}
