import { BlockList, isIP } from 'node:net';
import { z } from 'zod';
import { attestationStandings } from '@bulwark/protocol';
import { isValidFilter } from './topic-filter.ts';
import { knownVariable, variablesIn } from './variables.ts';

export const policyActions = ['mqtt:connect', 'mqtt:publish', 'mqtt:subscribe', 'mqtt:receive'] as const;
export type PolicyAction = (typeof policyActions)[number];
export const POLICY_VERSION = '2026-11';

export const cidrSchema = z
  .string()
  .max(64)
  .refine((v) => {
    const [address, bits] = v.split('/');
    const family = isIP(address ?? '');
    if (!family) return false;
    if (bits === undefined) return true;
    const n = Number(bits);
    return Number.isInteger(n) && n >= 0 && n <= (family === 4 ? 32 : 128);
  }, 'must be an IP address or CIDR such as 10.1.0.0/16');

const hhmm = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'must be HH:MM (UTC)');

const resource = z
  .string()
  .min(1)
  .max(512)
  .superRefine((value, ctx) => {
    for (const name of variablesIn(value))
      if (!knownVariable(name)) ctx.addIssue({ code: 'custom', message: `unknown variable \${${name}}` });
    const shape = value.replace(/\$\{[^}]*\}/g, 'x');
    if (shape.includes('${')) ctx.addIssue({ code: 'custom', message: 'unterminated variable' });
    else if (!isValidFilter(shape))
      ctx.addIssue({ code: 'custom', message: `"${value}" is not a valid MQTT topic filter` });
    // A variable must be a whole level: "devices/x${device.id}" could be widened by a crafted value.
    if (/[^/]\$\{|\}[^/]/.test(value))
      ctx.addIssue({ code: 'custom', message: 'a variable must fill a whole topic level' });
  });

/**
 * The attestation standings a statement may require (issue 17): the device's TPM verdict (`affirming`,
 * `warning`, `contraindicated`), `overdue` (no good verdict within attestation.maxAge) or `none` (no bound
 * key; every app). A device held by attestation (contraindicated, overdue) gets only the quarantine policy,
 * so a statement for those standings never applies to it; the useful ones are affirming, warning and none.
 */
const attestationCondition = z
  .array(
    z.enum(attestationStandings, {
      error: (issue) =>
        `unknown attestation standing ${JSON.stringify(issue.input)}: must be one of ${attestationStandings.join(', ')}`,
    }),
  )
  .min(1, `must name at least one attestation standing (${attestationStandings.join(', ')})`)
  .max(attestationStandings.length);

const scopeNames = z
  .array(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'must be a group, zone or device name'))
  .min(1)
  .max(256);

/**
 * Which devices' topics a statement reaches: it applies to a topic `devices/{id}/…` only when that device is
 * in one of the listed groups, zones or ids (several kinds: all must hold), and to no other topic.
 */
export const targetsSchema = z
  .object({ groups: scopeNames.optional(), zones: scopeNames.optional(), devices: scopeNames.optional() })
  .strict()
  .refine(
    (t) => t.groups !== undefined || t.zones !== undefined || t.devices !== undefined,
    'targets must name groups, zones or devices',
  );
export type Targets = z.infer<typeof targetsSchema>;

export const statementSchema = z
  .object({
    sid: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'sid must be 1-64 characters of A-Z a-z 0-9 _ . -'),
    effect: z.enum(['allow', 'deny']),
    actions: z.array(z.enum(policyActions)).min(1).max(4),
    resources: z.array(resource).min(1).max(256).default(['#']),
    conditions: z
      .object({
        sourceAddress: z.array(cidrSchema).min(1).max(256).optional(),
        deviceState: z
          .array(z.enum(['active', 'quarantined']))
          .min(1)
          .optional(),
        timeWindow: z.object({ from: hhmm, to: hhmm }).strict().optional(),
        certificate: z.record(z.string().regex(/^[A-Za-z]{1,16}$/), z.string().max(256)).optional(),
        attestation: attestationCondition.optional(),
        targets: targetsSchema.optional(),
      })
      .strict()
      .optional(),
  })
  .strict();
export type Statement = z.infer<typeof statementSchema>;

export const policyDocumentSchema = z
  .object({
    version: z.literal(POLICY_VERSION),
    statements: z.array(statementSchema).min(1).max(10_000),
  })
  .strict()
  .superRefine((doc, ctx) => {
    const seen = new Set<string>();
    doc.statements.forEach((s, i) => {
      if (seen.has(s.sid))
        ctx.addIssue({ code: 'custom', path: ['statements', i, 'sid'], message: `duplicate sid "${s.sid}"` });
      seen.add(s.sid);
    });
  });
export type PolicyDocument = z.infer<typeof policyDocumentSchema>;

function sidAt(input: unknown, index: number): string {
  const sid = (input as { statements?: { sid?: unknown }[] } | null)?.statements?.[index]?.sid;
  return typeof sid === 'string' ? ` (${sid.slice(0, 64)})` : '';
}

/** Parses and validates a document; the error names the statement and field that is wrong. */
export function parsePolicyDocument(
  input: unknown,
): { ok: true; document: PolicyDocument } | { ok: false; problems: string[] } {
  const result = policyDocumentSchema.safeParse(input);
  if (result.success) return { ok: true, document: result.data };
  return {
    ok: false,
    problems: result.error.issues.map((issue) => {
      const [first, index, ...rest] = issue.path;
      const where =
        first === 'statements' && typeof index === 'number'
          ? `statement ${index + 1}${sidAt(input, index)}${rest.length ? ` ${rest.join('.')}` : ''}`
          : issue.path.join('.') || 'document';
      return `${where}: ${issue.message}`;
    }),
  };
}

/**
 * Warnings shown when a policy is saved: it would lock out every device it applies to, or it grants `#`
 * (every device's topics) to devices.
 */
export function lintPolicy(
  doc: PolicyDocument,
): { code: 'locks_out_devices' | 'grants_everything'; statement: string; message: string }[] {
  const warnings: ReturnType<typeof lintPolicy> = [];
  for (const s of doc.statements) {
    if (s.effect === 'deny' && s.actions.includes('mqtt:connect') && !s.conditions) {
      warnings.push({
        code: 'locks_out_devices',
        statement: s.sid,
        message: `statement ${s.sid} denies mqtt:connect unconditionally: every device it applies to is locked out`,
      });
    }
    // A statement with targets reaches only the listed devices' topics, whatever its resources say.
    if (s.effect === 'allow' && !s.conditions?.targets && s.actions.some((a) => a !== 'mqtt:connect')) {
      for (const r of s.resources) {
        if (/^[+#]/.test(r) || /^devices\/[+#]/.test(r) || /^zones\/[+#]/.test(r)) {
          warnings.push({
            code: 'grants_everything',
            statement: s.sid,
            message: `statement ${s.sid} grants "${r}": it reaches other devices' or zones' topics`,
          });
        }
      }
    }
  }
  return warnings;
}

export function addressIn(cidrs: readonly string[], address: string | null): boolean {
  if (!address) return false;
  const list = new BlockList();
  for (const c of cidrs) {
    const [a = '', bits] = c.split('/');
    const type = isIP(a) === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(a, type);
    else list.addSubnet(a, Number(bits), type);
  }
  const plain = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
  return list.check(plain, isIP(plain) === 6 ? 'ipv6' : 'ipv4');
}
