import type {} from '@fastify/cookie';
import type { FastifyReply } from 'fastify';

export const SESSION_COOKIE = '__Host-bulwark_session';
const attributes = { httpOnly: true, secure: true, sameSite: 'strict', path: '/' } as const;

/** HttpOnly, Secure, SameSite=Strict, host-only (`__Host-` prefix): never readable by scripts or other sites. */
export function setSessionCookie(reply: FastifyReply, id: string, expiresAt: number): void {
  void reply.setCookie(SESSION_COOKIE, id, { ...attributes, expires: new Date(expiresAt) });
}

export function clearSessionCookie(reply: FastifyReply): void {
  void reply.clearCookie(SESSION_COOKIE, attributes);
}
