import {
  parsePolicyDocument,
  POLICY_VERSION,
  statementSchema,
  type PolicyAction,
  type PolicyDocument,
  type Statement,
  type Targets,
} from './document.ts';

/**
 * Grants: the short form of an app's policy statements, one line each, as `bulwark app add --grant` takes them:
 *
 * ```text
 * subscribe devices/+/telemetry group:pumps
 * publish devices/+/commands/# zone:plant-a
 * pubsub apps/dashboard/shared/# device:pump-1 device:pump-2
 * ```
 *
 * `subscribe` allows subscribe and receive, `publish` allows publish, `pubsub` all three. Scopes limit the
 * grant to the topics of the devices in them (statement condition `targets`): several of one kind are
 * alternatives, different kinds must all hold.
 */

const verbs = {
  subscribe: ['mqtt:subscribe', 'mqtt:receive'],
  publish: ['mqtt:publish'],
  pubsub: ['mqtt:publish', 'mqtt:subscribe', 'mqtt:receive'],
} as const satisfies Record<string, readonly PolicyAction[]>;
type Verb = keyof typeof verbs;

const scopeKinds = { group: 'groups', zone: 'zones', device: 'devices' } as const;
type ScopeKind = keyof typeof scopeKinds;

const isVerb = (word: string): word is Verb => Object.hasOwn(verbs, word);
const isScopeKind = (word: string): word is ScopeKind => Object.hasOwn(scopeKinds, word);

/** The policy holding an app's grants (`app.<name>`), attached to the app. */
export const appPolicyName = (app: string) => `app.${app}`;

export type GrantResult = { ok: true; statement: Statement } | { ok: false; problem: string };

function parseScopes(
  words: readonly string[],
): { ok: true; targets?: Targets } | { ok: false; problem: string } {
  const targets: { groups?: string[]; zones?: string[]; devices?: string[] } = {};
  for (const word of words) {
    const colon = word.indexOf(':');
    const kind = colon < 0 ? '' : word.slice(0, colon);
    const name = word.slice(colon + 1);
    if (!isScopeKind(kind) || name === '')
      return { ok: false, problem: `"${word}" is not a scope (expected group:NAME, zone:NAME or device:ID)` };
    const key = scopeKinds[kind];
    const list = (targets[key] ??= []);
    if (!list.includes(name)) list.push(name);
  }
  return words.length === 0 ? { ok: true } : { ok: true, targets };
}

/** The first problem of a statement built from a grant, naming the part of the grant that is wrong. */
function statementProblem(input: unknown): string | undefined {
  const result = statementSchema.safeParse(input);
  if (result.success) return undefined;
  const issue = result.error.issues[0];
  if (!issue) return 'invalid grant';
  const [first, , third] = issue.path;
  if (first === 'resources') return `topic filter: ${issue.message}`;
  if (first === 'sid') return issue.message;
  if (first === 'conditions' && typeof third === 'string')
    return `${third.replace(/s$/, '')} scope: ${issue.message}`;
  return issue.message;
}

/**
 * Parses one grant into a policy statement (`sid` names it in the app's policy; `grant-1` by default).
 * The problem of a bad grant names the bad part: `"grop:pumps" is not a scope (…)`.
 */
export function parseGrant(text: string, sid = 'grant-1'): GrantResult {
  const [verb = '', filter, ...scopeWords] = text.trim().split(/\s+/);
  if (verb === '')
    return {
      ok: false,
      problem: 'empty grant: expected "<subscribe|publish|pubsub> <filter> [group:G] [zone:Z] [device:D]…"',
    };
  if (!isVerb(verb))
    return {
      ok: false,
      problem: `"${verb}" is not an action: a grant starts with subscribe, publish or pubsub`,
    };
  if (filter === undefined)
    return { ok: false, problem: `${verb} of what? a topic filter follows "${verb}"` };
  const scopes = parseScopes(scopeWords);
  if (!scopes.ok) return scopes;
  const statement: Statement = {
    sid,
    effect: 'allow',
    actions: [...verbs[verb]],
    resources: [filter],
    ...(scopes.targets ? { conditions: { targets: scopes.targets } } : {}),
  };
  const problem = statementProblem(statement);
  return problem ? { ok: false, problem } : { ok: true, statement };
}

/** A statement written back as a grant; undefined when it is not one (a deny, connect, other conditions…). */
export function formatGrant(statement: Statement): string | undefined {
  const { effect, actions, resources, conditions } = statement;
  if (effect !== 'allow' || resources.length !== 1) return undefined;
  const { targets, ...others } = conditions ?? {};
  if (Object.values(others).some((v) => v !== undefined)) return undefined;
  const verb = (Object.keys(verbs) as Verb[]).find(
    (v) => verbs[v].length === actions.length && verbs[v].every((a) => actions.includes(a)),
  );
  if (!verb) return undefined;
  return [verb, resources[0], ...(targets ? [formatTargets(targets)] : [])].join(' ');
}

/** A statement's targets as grants write them: `group:pumps zone:plant-a device:pump-1`. */
export function formatTargets(targets: Targets): string {
  return (Object.keys(scopeKinds) as ScopeKind[])
    .flatMap((kind) => (targets[scopeKinds[kind]] ?? []).map((name) => `${kind}:${name}`))
    .join(' ');
}

/**
 * An app's grants as one policy document (statements `grant-1`, `grant-2`… in order). An empty list is
 * refused: an app with no grants has no grants policy at all (its caller deletes it).
 */
export function grantsToPolicy(
  grants: readonly string[],
): { ok: true; document: PolicyDocument } | { ok: false; problems: string[] } {
  if (grants.length === 0) return { ok: false, problems: ['no grants'] };
  const statements: Statement[] = [];
  const problems: string[] = [];
  grants.forEach((text, i) => {
    const parsed = parseGrant(text, `grant-${i + 1}`);
    if (parsed.ok) statements.push(parsed.statement);
    else problems.push(`grant ${i + 1} ("${text.trim().slice(0, 80)}"): ${parsed.problem}`);
  });
  if (problems.length > 0) return { ok: false, problems };
  const checked = parsePolicyDocument({ version: POLICY_VERSION, statements });
  return checked.ok ? checked : { ok: false, problems: checked.problems };
}
