import { BlockList, isIP } from 'node:net';
import { TokenBucket } from './token-bucket.ts';

export interface FirewallLimits {
  /** New connections per second per source address, and the burst allowed. */
  connectRate: number;
  connectBurst: number;
  /** Concurrent connections per source address. */
  maxConnectionsPerAddress: number;
  /** Failed handshakes or refused CONNECTs from one address before it is banned for `banDuration`. */
  failureThreshold: number;
  failureWindowMs: number;
  banDurationMs: number;
  /** Connects per device (or address) within the window that count as flapping: a temporary ban. */
  flapThreshold: number;
  flapWindowMs: number;
  /** Per device: messages per second with burst, bytes per second with burst. */
  publishRate: number;
  publishBurst: number;
  byteRate: number;
  byteBurst: number;
  /** Over quota: throttle; this many throttles within a minute disconnect the device. */
  throttlesBeforeDisconnect: number;
  maxPayloadBytes: number;
  maxSubscriptions: number;
  maxTopicLength: number;
  maxTopicLevels: number;
}

export const defaultLimits: FirewallLimits = {
  connectRate: 20,
  connectBurst: 50,
  maxConnectionsPerAddress: 200,
  failureThreshold: 10,
  failureWindowMs: 60_000,
  banDurationMs: 10 * 60_000,
  flapThreshold: 20,
  flapWindowMs: 60_000,
  publishRate: 100,
  publishBurst: 200,
  byteRate: 1_000_000,
  byteBurst: 2_000_000,
  throttlesBeforeDisconnect: 5,
  maxPayloadBytes: 256 * 1024,
  maxSubscriptions: 100,
  maxTopicLength: 256,
  maxTopicLevels: 16,
};

export interface Ban {
  kind: 'address' | 'device';
  /** An address or CIDR, or a device id. */
  value: string;
  reason: string;
  expiresAt: number | null;
}

export type PublishVerdict =
  | { ok: true }
  | { ok: false; action: 'throttle'; waitMs: number; reason: string }
  | { ok: false; action: 'disconnect'; reason: string };

interface Window {
  start: number;
  count: number;
}

/**
 * The broker's firewall state for one node: per-address connection limits, failure back-off and bans,
 * flapping detection, per-device publish quotas and shape limits. Pure in-memory logic with an injected
 * clock; persistent bans come from the store (see firewall.service) and are loaded with `setBans`.
 */
export function createFirewall(limits: FirewallLimits = defaultLimits, clock: () => number = Date.now) {
  const connectBuckets = new Map<string, TokenBucket>();
  const open = new Map<string, number>();
  const failures = new Map<string, Window>();
  const flaps = new Map<string, Window>();
  const tempBans = new Map<string, { until: number; reason: string }>();
  const devices = new Map<string, { messages: TokenBucket; bytes: TokenBucket; throttles: Window }>();
  let addressBanReasons: { block: BlockList; reason: string; expiresAt: number | null }[] = [];
  let deviceBans = new Map<string, { reason: string; expiresAt: number | null }>();

  const plain = (address: string) =>
    address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;

  function bump(map: Map<string, Window>, key: string, windowMs: number, t: number): number {
    let w = map.get(key);
    if (!w || t - w.start > windowMs) {
      w = { start: t, count: 0 };
      map.set(key, w);
      if (map.size > 100_000) for (const [k, v] of map) if (t - v.start > windowMs) map.delete(k);
    }
    return ++w.count;
  }

  function tempBanned(key: string, t: number): string | undefined {
    const b = tempBans.get(key);
    if (!b) return undefined;
    if (b.until <= t) {
      tempBans.delete(key);
      return undefined;
    }
    return b.reason;
  }

  /** Is this address banned right now (a persistent ban that has not expired)? */
  function addressBan(address: string): string | undefined {
    const t = clock();
    const a = plain(address);
    if (!isIP(a)) return undefined;
    const type = isIP(a) === 6 ? 'ipv6' : 'ipv4';
    return addressBanReasons.find((r) => (r.expiresAt === null || r.expiresAt > t) && r.block.check(a, type))
      ?.reason;
  }

  return {
    limits,

    /** Replaces the persistent ban list (addresses/CIDRs and devices); each ban is checked against its expiry. */
    setBans(bans: readonly Ban[]) {
      const reasons: { block: BlockList; reason: string; expiresAt: number | null }[] = [];
      const devs = new Map<string, { reason: string; expiresAt: number | null }>();
      for (const b of bans) {
        if (b.kind === 'device') {
          devs.set(b.value, { reason: b.reason, expiresAt: b.expiresAt });
          continue;
        }
        const [a = '', bits] = b.value.split('/');
        const type = isIP(a) === 6 ? 'ipv6' : 'ipv4';
        const one = new BlockList();
        if (bits === undefined) one.addAddress(a, type);
        else one.addSubnet(a, Number(bits), type);
        reasons.push({ block: one, reason: b.reason, expiresAt: b.expiresAt });
      }
      addressBanReasons = reasons;
      deviceBans = devs;
    },

    addressBan,

    /**
     * At TCP accept, before any TLS work: refuses a banned address, one over its connection rate, or one at
     * its concurrent-connection cap. Returns the reason to refuse, or undefined (and counts the connection).
     */
    admitConnection(address: string): string | undefined {
      const t = clock();
      const a = plain(address);
      const banned = addressBan(a);
      if (banned) return `address banned: ${banned}`;
      const temp = tempBanned(`address:${a}`, t);
      if (temp) return `address temporarily banned: ${temp}`;
      let bucket = connectBuckets.get(a);
      if (!bucket) {
        bucket = new TokenBucket(limits.connectRate, limits.connectBurst, t);
        connectBuckets.set(a, bucket);
        if (connectBuckets.size > 100_000) connectBuckets.clear();
      }
      if (bucket.take(1, t) > 0) return 'connection rate exceeded';
      const n = open.get(a) ?? 0;
      if (n >= limits.maxConnectionsPerAddress) return 'too many concurrent connections from this address';
      open.set(a, n + 1);
      return undefined;
    },

    connectionClosed(address: string) {
      const a = plain(address);
      const n = (open.get(a) ?? 1) - 1;
      if (n <= 0) open.delete(a);
      else open.set(a, n);
    },

    /** A failed TLS handshake or a refused CONNECT; enough of them ban the address for a while. */
    recordFailure(address: string): { banned: boolean; until?: number } {
      const t = clock();
      const a = plain(address);
      if (bump(failures, a, limits.failureWindowMs, t) >= limits.failureThreshold) {
        failures.delete(a);
        const until = t + limits.banDurationMs;
        tempBans.set(`address:${a}`, { until, reason: 'repeated failed handshakes or refused connects' });
        return { banned: true, until };
      }
      return { banned: false };
    },

    /** At CONNECT of an identified device: bans, and connect/disconnect churn (flapping) by device and address. */
    admitDevice(
      deviceId: string,
      address: string,
    ): { ok: true } | { ok: false; reason: string; flapping?: boolean; until?: number } {
      const t = clock();
      const banned = deviceBans.get(deviceId);
      if (banned && (banned.expiresAt === null || banned.expiresAt > t))
        return { ok: false, reason: `device banned: ${banned.reason}` };
      const temp = tempBanned(`device:${deviceId}`, t);
      if (temp) return { ok: false, reason: `device temporarily banned: ${temp}` };
      if (bump(flaps, `device:${deviceId}`, limits.flapWindowMs, t) > limits.flapThreshold) {
        const until = t + limits.banDurationMs;
        tempBans.set(`device:${deviceId}`, { until, reason: 'flapping (connect/disconnect churn)' });
        tempBans.set(`address:${plain(address)}`, { until, reason: `flapping device ${deviceId}` });
        return { ok: false, reason: 'flapping: too many connects in a short time', flapping: true, until };
      }
      return { ok: true };
    },

    /** Per-device quota and shape check for one PUBLISH. */
    checkPublish(deviceId: string, topic: string, bytes: number): PublishVerdict {
      if (bytes > limits.maxPayloadBytes)
        return {
          ok: false,
          action: 'disconnect',
          reason: `payload of ${bytes} bytes exceeds ${limits.maxPayloadBytes}`,
        };
      if (topic.length > limits.maxTopicLength)
        return {
          ok: false,
          action: 'disconnect',
          reason: `topic longer than ${limits.maxTopicLength} characters`,
        };
      if (topic.split('/').length > limits.maxTopicLevels)
        return {
          ok: false,
          action: 'disconnect',
          reason: `topic deeper than ${limits.maxTopicLevels} levels`,
        };
      const t = clock();
      let d = devices.get(deviceId);
      if (!d) {
        d = {
          messages: new TokenBucket(limits.publishRate, limits.publishBurst, t),
          bytes: new TokenBucket(limits.byteRate, limits.byteBurst, t),
          throttles: { start: t, count: 0 },
        };
        devices.set(deviceId, d);
      }
      const wait = Math.max(d.messages.take(1, t), d.bytes.take(bytes, t));
      if (wait === 0) return { ok: true };
      if (t - d.throttles.start > 60_000) d.throttles = { start: t, count: 0 };
      d.throttles.count += 1;
      if (d.throttles.count > limits.throttlesBeforeDisconnect)
        return { ok: false, action: 'disconnect', reason: 'publish quota exceeded repeatedly' };
      return {
        ok: false,
        action: 'throttle',
        waitMs: Math.min(wait, 5000),
        reason: 'publish quota exceeded',
      };
    },

    checkSubscriptionCount(count: number): string | undefined {
      return count > limits.maxSubscriptions
        ? `more than ${limits.maxSubscriptions} subscriptions`
        : undefined;
    },

    forgetDevice(deviceId: string) {
      devices.delete(deviceId);
    },
  };
}

export type Firewall = ReturnType<typeof createFirewall>;
