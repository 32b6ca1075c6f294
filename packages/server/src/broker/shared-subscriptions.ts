/**
 * Shared subscriptions, `$share/{group}/{filter}` (MQTT 5 §4.8.2, offered on MQTT 3.1.1 as most brokers do):
 * the members of one share group split the messages matching the filter, each message going to one live
 * member (round robin). The groups and the choice live here; the adapter subscribes each group once to the
 * filter and delivers to the member chosen.
 */

const SHARE_PREFIX = '$share/';

/** A shared subscription's parts. */
export interface ShareFilter {
  group: string;
  filter: string;
}

/**
 * The group and inner filter of `$share/{group}/{filter}`, or undefined for any other filter. A group name is
 * one non-empty level without wildcards, and the inner filter is not empty [MQTT-4.8.2-1, 4.8.2-2].
 */
export function parseShare(topic: string): ShareFilter | undefined {
  if (!topic.startsWith(SHARE_PREFIX)) return undefined;
  const rest = topic.slice(SHARE_PREFIX.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) return undefined;
  const group = rest.slice(0, slash);
  const filter = rest.slice(slash + 1);
  if (group.includes('+') || group.includes('#') || filter === '') return undefined;
  return { group, filter };
}

/** Whether a filter is a shared subscription (even a malformed one, which is then refused). */
export const isShareFilter = (topic: string): boolean => topic.startsWith(SHARE_PREFIX);

/** One share group on one filter: its members in join order and where the round robin stands. */
export interface ShareGroup<C> {
  readonly group: string;
  readonly filter: string;
  readonly members: { client: C; qos: 0 | 1 | 2 }[];
  next: number;
}

/**
 * The key of a share group: its owner (the principal, `app:<name>` or `device:<id>`) and its
 * `$share/{group}/{filter}` topic. Only the instances of one app share a group: another app, or a device,
 * using the same group name has a group of its own and never takes their messages.
 */
const groupKey = (owner: string, topic: string): string => `${owner}\n${topic}`;

/** The share groups of the broker, by owner and `$share/{group}/{filter}` topic. */
export function createShareGroups<C extends object>() {
  const groups = new Map<string, ShareGroup<C>>();
  // Each client's groups: topic → group key.
  const ofClient = new WeakMap<C, Map<string, string>>();

  return {
    /**
     * Adds the client to its owner's group (again: its QoS is updated); `created` when the group is new.
     * `owner` is the principal the client is (`app:<name>` for every instance of an app).
     */
    join(
      client: C,
      topic: string,
      share: ShareFilter & { qos: 0 | 1 | 2; owner: string },
    ): { group: ShareGroup<C>; created: boolean } {
      const key = groupKey(share.owner, topic);
      let group = groups.get(key);
      const created = group === undefined;
      if (!group) {
        group = { group: share.group, filter: share.filter, members: [], next: 0 };
        groups.set(key, group);
      }
      const member = group.members.find((m) => m.client === client);
      if (member) member.qos = share.qos;
      else group.members.push({ client, qos: share.qos });
      const topics = ofClient.get(client) ?? new Map<string, string>();
      topics.set(topic, key);
      ofClient.set(client, topics);
      return { group, created };
    },
    /** Removes the client from the group; the group when it was the last member (to unsubscribe it). */
    leave(client: C, topic: string): ShareGroup<C> | undefined {
      const topics = ofClient.get(client);
      const key = topics?.get(topic);
      if (key === undefined) return undefined;
      topics?.delete(topic);
      const group = groups.get(key);
      if (!group) return undefined;
      const i = group.members.findIndex((m) => m.client === client);
      if (i < 0) return undefined;
      group.members.splice(i, 1);
      if (group.next > i) group.next -= 1;
      if (group.members.length > 0) return undefined;
      groups.delete(key);
      return group;
    },
    /** The groups the client was in, left (on disconnect); those left empty are returned. */
    leaveAll(client: C): ShareGroup<C>[] {
      const emptied: ShareGroup<C>[] = [];
      for (const topic of [...(ofClient.get(client)?.keys() ?? [])]) {
        const group = this.leave(client, topic);
        if (group) emptied.push(group);
      }
      ofClient.delete(client);
      return emptied;
    },
    /** The next member (round robin) that `eligible` accepts, or undefined when none does. */
    pick(
      group: ShareGroup<C>,
      eligible: (client: C) => boolean,
    ): ShareGroup<C>['members'][number] | undefined {
      const n = group.members.length;
      for (let k = 0; k < n; k++) {
        const i = (group.next + k) % n;
        const member = group.members[i];
        if (member && eligible(member.client)) {
          group.next = (i + 1) % n;
          return member;
        }
      }
      return undefined;
    },
    get size() {
      return groups.size;
    },
  };
}

export type ShareGroups<C extends object> = ReturnType<typeof createShareGroups<C>>;
