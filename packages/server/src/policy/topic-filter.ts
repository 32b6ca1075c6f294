/**
 * MQTT topic filter algebra (MQTT 3.1.1 §4.7): `+` matches one level, `#` the rest (and the parent level),
 * and a filter starting with a wildcard never matches a topic starting with `$` [MQTT-4.7.2-1].
 */

/** A topic name a client may publish to: non-empty, no wildcards, no NUL [MQTT-4.7.3-1], [MQTT-3.3.2-2]. */
export function isValidTopic(topic: string): boolean {
  return (
    topic.length > 0 &&
    topic.length <= 65535 &&
    !topic.includes('+') &&
    !topic.includes('#') &&
    !topic.includes('\u0000')
  );
}

/** A well-formed filter: `#` only last and alone in its level, `+` alone in its level [MQTT-4.7.1-2], [MQTT-4.7.1-3]. */
export function isValidFilter(filter: string): boolean {
  if (filter.length === 0 || filter.length > 65535 || filter.includes('\u0000')) return false;
  const levels = filter.split('/');
  return levels.every((level, i) => {
    if (level.includes('#')) return level === '#' && i === levels.length - 1;
    if (level.includes('+')) return level === '+';
    return true;
  });
}

/**
 * Do a filter's levels match a topic's levels (both already split on `/`)? For matchers that split once and
 * match many times; the `$` rule is the caller's (see {@link matches}).
 */
export function levelsMatch(filter: readonly string[], topic: readonly string[]): boolean {
  for (let i = 0; i < filter.length; i++) {
    const level = filter[i];
    if (level === '#') return true;
    if (i >= topic.length) return false;
    if (level !== '+' && level !== topic[i]) return false;
  }
  return filter.length === topic.length;
}

/** Does `filter` match the topic name `topic`? */
export function matches(filter: string, topic: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
  return levelsMatch(filter.split('/'), topic.split('/'));
}

/** Is every topic matched by `specific` also matched by `general`? (Subscription no broader than the right.) */
export function covers(general: string, specific: string): boolean {
  // A filter starting with a wildcard matches no `$` topic, so it cannot cover one [MQTT-4.7.2-1].
  if (specific.startsWith('$') && /^[+#]/.test(general)) return false;
  const g = general.split('/');
  const s = specific.split('/');
  for (let i = 0; i < s.length; i++) {
    const gl = g[i];
    const sl = s[i];
    if (gl === undefined) return false;
    if (gl === '#') return true;
    if (sl === '#') return false; // specific reaches further than general allows
    if (gl === '+') continue; // any single level, including a '+' in specific
    if (sl === '+' || gl !== sl) return false;
  }
  // specific ended: general must end too, or continue with a '#' (which also matches the parent level)
  return g.length === s.length || (g.length === s.length + 1 && g[s.length] === '#');
}

/** Is there a topic matched by both filters? (A deny that overlaps a subscription.) */
export function intersects(a: string, b: string): boolean {
  if ((a.startsWith('$') && /^[+#]/.test(b)) || (b.startsWith('$') && /^[+#]/.test(a))) return false;
  const x = a.split('/');
  const y = b.split('/');
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const xl = x[i];
    const yl = y[i];
    if (xl === '#' || yl === '#') return true;
    if (xl === undefined || yl === undefined) return false;
    if (xl !== '+' && yl !== '+' && xl !== yl) return false;
  }
  return true;
}
