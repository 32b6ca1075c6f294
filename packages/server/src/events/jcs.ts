/**
 * RFC 8785 (JCS) canonical JSON for JSON values: object keys sorted by UTF-16 code units, no whitespace,
 * strings and numbers as ECMAScript serializes them (which is what JCS specifies). Undefined members
 * are left out, as in JSON. Written for the audit log's hot path; it agrees with the `canonicalize`
 * package on every JSON value (see jcs.test.ts).
 */
export function canonicalJson(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value))
      throw new TypeError('JSON has no NaN or Infinity');
    if (typeof value === 'bigint') throw new TypeError('JSON has no BigInt');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++)
      out += `${i ? ',' : ''}${canonicalJson(value[i] as unknown) ?? 'null'}`;
    return `${out}]`;
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).sort();
  let out = '{';
  let first = true;
  for (const key of keys) {
    const member = canonicalJson(record[key]);
    if (member === undefined) continue;
    out += `${first ? '' : ','}${JSON.stringify(key)}:${member}`;
    first = false;
  }
  return `${out}}`;
}
