import type { AttestationStanding } from '@bulwark/protocol';

/**
 * What a policy's variables can refer to: the principal (a device, or an app), its certificate, and its
 * connection. For an app, `deviceId` is empty and the `device.*` variables have no value.
 */
export interface PolicyContext {
  /** Who is deciding: a device (the default) or an app. */
  principal?: 'device' | 'app';
  /** The app, for an app principal: `${app.name}`, `${app.instance}`, and its declared purpose. */
  app?: { name: string; instance: string | null; purpose: string | null };
  deviceId: string;
  group: string | null;
  zone: string | null;
  attributes: Readonly<Record<string, string>>;
  cert: { cn: string; [field: string]: string };
  state: 'active' | 'quarantined';
  sourceAddress: string | null;
  /**
   * The device's attestation standing when its access is compiled (CONNECT, recompile), for statements with
   * an `attestation` condition; absent means `none` (no bound key, and every app). Read once per compile,
   * never per message.
   */
  attestation?: AttestationStanding;
}

// A variable's value is inserted only if it is one plain topic level: ASCII letters, digits, `_ . -`, not `.`
// or `..`. Anything else (`+`, `#`, `/`, `$`, NUL, unicode look-alikes such as U+FF0F) drops the statement,
// so a value can never widen a resource (the AWS IoT and EMQX variable traps).
const SAFE_VALUE = /^[A-Za-z0-9_.-]{1,64}$/;
const VARIABLE = /\$\{([a-z]+(?:\.[A-Za-z0-9_-]+){1,2})\}/g;

export function lookup(name: string, ctx: PolicyContext): string | null | undefined {
  if (name === 'app.name') return ctx.app?.name;
  if (name === 'app.instance') return ctx.app?.instance;
  if (ctx.principal === 'app' && name.startsWith('device.')) return undefined;
  if (name === 'device.id') return ctx.deviceId;
  if (name === 'device.group') return ctx.group;
  if (name === 'device.zone') return ctx.zone;
  if (name.startsWith('device.attr.')) return ctx.attributes[name.slice('device.attr.'.length)];
  if (name === 'cert.cn') return ctx.cert.cn;
  return undefined;
}

export const knownVariable = (name: string) =>
  ['device.id', 'device.group', 'device.zone', 'cert.cn', 'app.name', 'app.instance'].includes(name) ||
  /^device\.attr\.[A-Za-z0-9_-]{1,64}$/.test(name);

export function variablesIn(resource: string): string[] {
  return [...resource.matchAll(VARIABLE)].map((m) => m[1] as string);
}

/** The resource with its variables filled in, or a reason why the statement cannot apply to this principal. */
export function substitute(
  resource: string,
  ctx: PolicyContext,
): { ok: true; value: string } | { ok: false; reason: string } {
  let failure: string | undefined;
  const value = resource.replace(VARIABLE, (_all, name: string) => {
    const v = lookup(name, ctx);
    if (v === undefined || v === null || v === '')
      failure ??= `\${${name}} has no value for this ${ctx.principal ?? 'device'}`;
    else if (!SAFE_VALUE.test(v) || v === '.' || v === '..')
      failure ??= `\${${name}} is not a plain topic level (${JSON.stringify(v).slice(0, 40)})`;
    return v ?? '';
  });
  if (failure) return { ok: false, reason: failure };
  if (value.includes('${')) return { ok: false, reason: `unknown variable in ${resource}` };
  return { ok: true, value };
}
