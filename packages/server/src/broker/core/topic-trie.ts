/**
 * Subscriptions as a topic trie: matching a topic walks its levels once (O(topic depth) plus the matches),
 * with an explicit stack instead of recursion (a topic may have thousands of levels). Shared subscriptions
 * (`$share/{group}/{filter}`, MQTT 5 §4.8.2) sit at their inner filter's node, one group per name.
 */

/** A subscription as the trie keeps it; `owner` is whatever the core identifies a session by. */
export interface TrieEntry<O> {
  readonly owner: O;
  /** The inner filter (for a shared subscription, without `$share/{group}/`). */
  readonly filter: string;
  /** The share group's key, for a shared subscription. */
  readonly share?: string | undefined;
}

/** The members of one share group and where its round robin stands. */
export interface ShareGroup<E> {
  readonly key: string;
  readonly members: E[];
  next: number;
}

interface Node<O, E extends TrieEntry<O>> {
  children: Map<string, Node<O, E>> | undefined;
  entries: Map<O, E> | undefined;
  shares: Map<string, ShareGroup<E>> | undefined;
}

const newNode = <O, E extends TrieEntry<O>>(): Node<O, E> => ({
  children: undefined,
  entries: undefined,
  shares: undefined,
});

/** Whether a topic name is valid for PUBLISH: not empty, no wildcards, no U+0000 [MQTT-3.3.2-2, 4.7.3-1, 4.7.3-2]. */
export function validTopicName(topic: string): boolean {
  return topic.length > 0 && !topic.includes('+') && !topic.includes('#') && !topic.includes('\u0000');
}

/**
 * Whether a topic filter is valid [MQTT-4.7.1-1, 4.7.1-2, 4.7.3-1, 4.7.3-2]: not empty, `#` only alone as the last
 * level, `+` only as a whole level, no U+0000.
 */
export function validTopicFilter(filter: string): boolean {
  if (filter.length === 0 || filter.includes('\u0000')) return false;
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i] ?? '';
    if (level === '#') {
      if (i !== levels.length - 1) return false;
    } else if (level === '+') continue;
    else if (level.includes('#') || level.includes('+')) return false;
  }
  return true;
}

/** `$share/{group}/{filter}`: its group and filter, or undefined when malformed [MQTT-4.8.2-1, 4.8.2-2]. */
export function parseSharedFilter(filter: string): { group: string; filter: string } | undefined {
  const rest = filter.slice('$share/'.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) return undefined;
  const group = rest.slice(0, slash);
  const inner = rest.slice(slash + 1);
  if (/[+#]/.test(group) || !validTopicFilter(inner)) return undefined;
  return { group, filter: inner };
}

export const isSharedFilter = (filter: string): boolean => filter.startsWith('$share/');

export class TopicTrie<O, E extends TrieEntry<O>> {
  private readonly root: Node<O, E> = newNode();
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Adds or replaces the owner's entry at the filter (or its share group); true when it is new. */
  add(entry: E): boolean {
    let node = this.root;
    for (const level of entry.filter.split('/')) {
      node.children ??= new Map();
      let child = node.children.get(level);
      if (!child) {
        child = newNode();
        node.children.set(level, child);
      }
      node = child;
    }
    if (entry.share !== undefined) {
      node.shares ??= new Map();
      let group = node.shares.get(entry.share);
      if (!group) {
        group = { key: entry.share, members: [], next: 0 };
        node.shares.set(entry.share, group);
      }
      const at = group.members.findIndex((m) => m.owner === entry.owner);
      if (at >= 0) {
        group.members[at] = entry;
        return false;
      }
      group.members.push(entry);
      this.count += 1;
      return true;
    }
    node.entries ??= new Map();
    const isNew = !node.entries.has(entry.owner);
    node.entries.set(entry.owner, entry);
    if (isNew) this.count += 1;
    return isNew;
  }

  /** Removes the owner's entry at the filter (or from its share group); true when there was one. */
  remove(owner: O, filter: string, share?: string): boolean {
    const path: [Node<O, E>, string][] = [];
    let node = this.root;
    for (const level of filter.split('/')) {
      const child = node.children?.get(level);
      if (!child) return false;
      path.push([node, level]);
      node = child;
    }
    let removed = false;
    if (share !== undefined) {
      const group = node.shares?.get(share);
      const at = group ? group.members.findIndex((m) => m.owner === owner) : -1;
      if (group && at >= 0) {
        group.members.splice(at, 1);
        if (group.next > at) group.next -= 1;
        if (group.members.length === 0) node.shares?.delete(share);
        removed = true;
      }
    } else removed = node.entries?.delete(owner) ?? false;
    if (!removed) return false;
    this.count -= 1;
    // Prune empty nodes back towards the root.
    for (let i = path.length - 1; i >= 0; i--) {
      const [parent, level] = path[i] as [Node<O, E>, string];
      const child = parent.children?.get(level);
      if (!child || child.children?.size || child.entries?.size || child.shares?.size) break;
      parent.children?.delete(level);
    }
    return true;
  }

  /**
   * Calls `visit` for every plain entry whose filter matches the topic and `visitShare` for every matching
   * share group. `+` is one level, `#` the rest including the parent level (§4.7.1.2); a wildcard at the
   * first level never matches a topic starting with `$` [MQTT-4.7.2-1].
   */
  match(topic: string, visit: (entry: E) => void, visitShare: (group: ShareGroup<E>) => void): void {
    const levels = topic.split('/');
    const dollar = topic.startsWith('$');
    const emit = (node: Node<O, E>) => {
      if (node.entries) for (const entry of node.entries.values()) visit(entry);
      if (node.shares) for (const group of node.shares.values()) visitShare(group);
    };
    const stack: [Node<O, E>, number][] = [[this.root, 0]];
    for (let item = stack.pop(); item; item = stack.pop()) {
      const [node, depth] = item;
      const wildOk = depth > 0 || !dollar;
      if (depth === levels.length) {
        emit(node);
        const hash = wildOk ? node.children?.get('#') : undefined;
        if (hash) emit(hash);
        continue;
      }
      const children = node.children;
      if (!children) continue;
      if (wildOk) {
        const hash = children.get('#');
        if (hash) emit(hash);
        const plus = children.get('+');
        if (plus) stack.push([plus, depth + 1]);
      }
      const exact = children.get(levels[depth] ?? '');
      if (exact) stack.push([exact, depth + 1]);
    }
  }
}

/** Whether one filter matches one topic (the trie's rules, for a handful of filters, e.g. retained lookups). */
export function filterMatches(filter: string, topic: string): boolean {
  if (filter === topic) return true;
  // [MQTT-4.7.2-1]
  if ((filter.startsWith('+') || filter.startsWith('#')) && topic.startsWith('$')) return false;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    if (level === '#') return i === f.length - 1;
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}
