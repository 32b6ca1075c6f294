import { describe, expect, it } from 'vitest';
import {
  filterMatches,
  parseSharedFilter,
  TopicTrie,
  validTopicFilter,
  validTopicName,
  type TrieEntry,
} from './topic-trie.ts';

type Entry = TrieEntry<string>;

function matches(trie: TopicTrie<string, Entry>, topic: string): string[] {
  const out: string[] = [];
  trie.match(
    topic,
    (e) => out.push(`${e.owner}:${e.filter}`),
    (g) => out.push(`share:${g.key}:${g.members.map((m) => m.owner).join(',')}`),
  );
  return out.sort();
}

describe('TopicTrie', () => {
  const filters = ['a/b', 'a/+', 'a/#', '#', '+/b', '+', 'a/b/c', '$SYS/#', '$SYS/+/x', 'a//b', '+/+'];

  it('matches like filterMatches for every filter and topic, §4.7.1.2 and [MQTT-4.7.2-1] included', () => {
    const trie = new TopicTrie<string, Entry>();
    for (const filter of filters) trie.add({ owner: 'o', filter });
    const topics = ['a', 'a/b', 'a/b/c', 'b', 'x/b', '$SYS', '$SYS/a', '$SYS/a/x', 'a//b', '/', '/b', 'a/'];
    for (const topic of topics) {
      const expected = filters
        .filter((f) => filterMatches(f, topic))
        .map((f) => `o:${f}`)
        .sort();
      expect(matches(trie, topic), topic).toEqual(expected);
    }
    expect(matches(trie, '$SYS/a')).toEqual(['o:$SYS/#']);
    expect(matches(trie, 'a')).toContain('o:a/#'); // the parent level
  });

  it('adds, replaces and removes per owner; prunes; share groups per key', () => {
    const trie = new TopicTrie<string, Entry>();
    expect(trie.add({ owner: 'x', filter: 's/+' })).toBe(true);
    expect(trie.add({ owner: 'x', filter: 's/+' })).toBe(false);
    trie.add({ owner: 'y', filter: 's/+' });
    trie.add({ owner: 'x', filter: 's/t', share: 'g' });
    trie.add({ owner: 'y', filter: 's/t', share: 'g' });
    expect(trie.size).toBe(4);
    expect(matches(trie, 's/t')).toEqual(['share:g:x,y', 'x:s/+', 'y:s/+']);
    expect(trie.remove('x', 's/+')).toBe(true);
    expect(trie.remove('x', 's/+')).toBe(false);
    expect(trie.remove('x', 's/t', 'g')).toBe(true);
    expect(matches(trie, 's/t')).toEqual(['share:g:y', 'y:s/+']);
    trie.remove('y', 's/+');
    trie.remove('y', 's/t', 'g');
    expect(trie.size).toBe(0);
    expect(matches(trie, 's/t')).toEqual([]);
  });

  it('walks deep topics without recursion', () => {
    const trie = new TopicTrie<string, Entry>();
    const deep = Array.from({ length: 50_000 }, () => 'l').join('/');
    trie.add({ owner: 'o', filter: deep });
    trie.add({ owner: 'o', filter: '#' });
    expect(matches(trie, deep)).toHaveLength(2);
  });
});

describe('topic validation', () => {
  it('[MQTT-4.7.1-1, 4.7.1-2, 4.7.3-1, 4.7.3-2, 4.8.2-1, 4.8.2-2]', () => {
    expect(['a/#', '#', '+', 'a/+/b', '/'].every(validTopicFilter)).toBe(true);
    expect(['', 'a/#/b', 'a#', 'a+', 'a/b+', 'a\u0000'].some(validTopicFilter)).toBe(false);
    expect(validTopicName('a/b')).toBe(true);
    expect(['', 'a/+', 'a/#', 'a\u0000'].some(validTopicName)).toBe(false);
    expect(parseSharedFilter('$share/g/a/+')).toEqual({ group: 'g', filter: 'a/+' });
    expect(parseSharedFilter('$share/g')).toBeUndefined();
    expect(parseSharedFilter('$share/g+/a')).toBeUndefined();
    expect(parseSharedFilter('$share//a')).toBeUndefined();
  });
});
