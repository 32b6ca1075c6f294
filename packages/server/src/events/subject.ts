/**
 * Who an event is about (`subject`) and who caused it (`actor`), as strings in the audit log and as tagged
 * values in code. Only this file formats or parses them: `subjectOf.device(id)` writes `device:<id>`,
 * `parseSubject` reads it back, `deviceIdOf` answers the common question.
 */

/** Kinds of things an event can be about, each written `<kind>:<id>`. */
export const subjectKinds = [
  'device',
  'user',
  'app',
  /** A data subject (a person, privacy/): its id is personal data, sealed in the audit log. */
  'person',
  /** A data-subject request (privacy/). */
  'request',
  /** A data schema (privacy/). */
  'data_schema',
  /** Compliance (compliance/): a run, a check, a manual attestation, a waiver. */
  'compliance_run',
  'check',
  'attestation',
  'waiver',
  /** A physical site (attestation/): its owner and who may access it. */
  'site',
  /** Risk (risk/): a register risk, an asset, a TARA, an offline feed. */
  'risk',
  'asset',
  'tara',
  'feed',
  /** A bulk device action awaiting or after a second person's approval (operations/). */
  'operation',
  'address',
  'advisory',
  'alert',
  'certificate',
  'channel',
  'conduit',
  'firmware',
  'policy',
  'profile',
  'rollout',
  'serial',
  'tuf',
  'zone',
] as const;
export type SubjectKind = (typeof subjectKinds)[number];

/** Subjects without an id: the platform's own parts. */
export const singletonSubjects = ['config', 'pki', 'advisories', 'baseline'] as const;
export type SingletonSubject = (typeof singletonSubjects)[number];

export type Subject = { kind: SubjectKind; id: string } | { kind: SingletonSubject; id?: undefined };

/** A subject as the audit log stores it. */
export type SubjectString = `${SubjectKind}:${string}` | SingletonSubject;

const kindSet: ReadonlySet<string> = new Set(subjectKinds);
const singletonSet: ReadonlySet<string> = new Set(singletonSubjects);

function formatter<K extends SubjectKind>(kind: K) {
  return (id: string): `${K}:${string}` => `${kind}:${id}`;
}

/** `subjectOf.device('pump-1')` is `device:pump-1`. */
export const subjectOf = Object.fromEntries(subjectKinds.map((k) => [k, formatter(k)])) as {
  [K in SubjectKind]: (id: string) => `${K}:${string}`;
};

/** The tagged subject of a stored string; undefined for none or a string of no known kind. */
export function parseSubject(value: string | null | undefined): Subject | undefined {
  if (!value) return undefined;
  if (singletonSet.has(value)) return { kind: value as SingletonSubject };
  const colon = value.indexOf(':');
  if (colon <= 0) return undefined;
  const kind = value.slice(0, colon);
  const id = value.slice(colon + 1);
  if (!kindSet.has(kind) || id === '') return undefined;
  return { kind: kind as SubjectKind, id };
}

/** The id of a subject of this kind, or undefined (another kind, none). */
export function subjectIdOf(value: string | null | undefined, kind: SubjectKind): string | undefined {
  const subject = parseSubject(value);
  return subject?.kind === kind ? subject.id : undefined;
}

/** The device an event is about (`device:<id>`), if any. */
export function deviceIdOf(value: string | null | undefined): string | undefined {
  return subjectIdOf(value, 'device');
}

/** Actors without an id. */
export const namedActors = ['system', 'cli'] as const;

export type Actor =
  | { kind: (typeof namedActors)[number] }
  | { kind: 'device' | 'user' | 'app'; id: string }
  | { kind: 'anonymous'; address: string }
  /** A name recorded as it was given (responses and tests name themselves). */
  | { kind: 'other'; name: string };

/** `actorOf.anonymous('10.0.0.1')` is `anonymous@10.0.0.1`; devices, users and apps as subjects. */
export const actorOf = {
  device: subjectOf.device,
  user: subjectOf.user,
  app: subjectOf.app,
  anonymous: (address: string): `anonymous@${string}` => `anonymous@${address}`,
};

/** The tagged actor of a stored string. */
export function parseActor(value: string): Actor {
  if (value === 'system' || value === 'cli') return { kind: value };
  if (value.startsWith('anonymous@')) return { kind: 'anonymous', address: value.slice('anonymous@'.length) };
  const subject = parseSubject(value);
  if (subject && (subject.kind === 'device' || subject.kind === 'user' || subject.kind === 'app'))
    return { kind: subject.kind, id: subject.id };
  return { kind: 'other', name: value };
}

/**
 * What a module holding data about people or devices answers for the rest (compliance and privacy): every
 * record it keeps about one data subject, and their erasure. Erasure removes or anonymises the records; it
 * never edits the audit log (its entries stay verifiable; privacy erases their data by other means).
 */
export interface SubjectData {
  /** The module's name in an export (`devices`, `users`, …). */
  readonly module: string;
  /** Every record the module keeps about the subject, as plain JSON (empty when none). */
  exportSubject(subject: Subject): Promise<Record<string, unknown>[]>;
  /** Erases (or anonymises) them; resolves with how many records changed. */
  eraseSubject(subject: Subject, actor: string): Promise<{ erased: number }>;
}

/** What a module states about itself for the compliance checks: plain values read through its door. */
export interface ModuleFacts<F> {
  facts(): Promise<F>;
}
