import { BlockList, isIP } from 'node:net';
import { normalizeSerial } from '../pki/index.ts';
import { TokenBucket } from './token-bucket.ts';

export interface FirewallLimits {
  /** New connections per second per source address, and the burst allowed. */
  connectRate: number;
  connectBurst: number;
  /** Concurrent connections per source address. */
  maxConnectionsPerAddress: number;
  /**
   * Refused CONNECTs of one verified certificate within the window before that certificate is banned for
   * `banDurationMs`. Failures before authentication (handshakes) never ban anything: an address is shared.
   */
  failureThreshold: number;
  failureWindowMs: number;
  banDurationMs: number;
  /** Connects per device within the window that count as flapping: a temporary ban of the device. */
  flapThreshold: number;
  flapWindowMs: number;
  /**
   * Sessions of one device taken over by a new connection of the same identity within the window: two
   * agents running with one identity (a cloned device) take turns; the device is banned for a while.
   */
  takeoverThreshold: number;
  takeoverWindowMs: number;
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
  takeoverThreshold: 5,
  takeoverWindowMs: 60_000,
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

export const banKinds = ['address', 'device', 'certificate'] as const;
export type BanKind = (typeof banKinds)[number];

/** The rules that ban an identity by themselves (a ban's origin is `manual` or `automatic:<rule>`). */
export const banRules = ['refused_connects', 'flapping', 'cloned_identity'] as const;
export type BanRule = (typeof banRules)[number];

export interface Ban {
  kind: BanKind;
  /** An address or CIDR, a device id, or a certificate serial (lowercase hex). */
  value: string;
  reason: string;
  expiresAt: number | null;
}

/** A ban a rule decided on: in force on this node at once, and handed to `onBan` to be stored and shared. */
export interface AutomaticBan {
  kind: 'device' | 'certificate';
  value: string;
  rule: BanRule;
  reason: string;
  until: number;
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
 * The broker's firewall state for one node: per-address connection limits and bans, identity bans
 * (devices, certificates) with the rules that impose them (refused CONNECTs, flapping, cloned identity),
 * per-device publish quotas and shape limits. Pure in-memory logic with an injected clock; stored bans come
 * from the store (see firewall.service) through `setBans`, and a ban a rule decides on is handed to
 * `onBan` to be stored, so that every ban is listed, shared by all nodes and can be lifted.
 *
 * Principle 9 (shared addresses are normal): nothing that happens before authentication bans an address.
 * Its cost is bounded by the per-address rate and concurrency limits; failures after authentication are
 * charged to the identity that presented them.
 */
export function createFirewall(
  limits: FirewallLimits = defaultLimits,
  clock: () => number = Date.now,
  onBan: (ban: AutomaticBan) => void = () => undefined,
) {
  const connectBuckets = new Map<string, TokenBucket>();
  const open = new Map<string, number>();
  const refusals = new Map<string, Window>();
  const flaps = new Map<string, Window>();
  const takeovers = new Map<string, Window & { addresses: string[] }>();
  /** Automatic bans decided here and not yet back from the store: `kind:value`. */
  const pending = new Map<string, { reason: string; until: number }>();
  const devices = new Map<string, { messages: TokenBucket; bytes: TokenBucket; throttles: Window }>();
  let addressBanReasons: { block: BlockList; reason: string; expiresAt: number | null }[] = [];
  let identityBans = new Map<string, { reason: string; expiresAt: number | null }>();

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

  /** Is this identity (`device:id`, `certificate:serial`) banned right now? The reason, or undefined. */
  function identityBan(key: string): string | undefined {
    const t = clock();
    const stored = identityBans.get(key);
    if (stored && (stored.expiresAt === null || stored.expiresAt > t)) return stored.reason;
    const p = pending.get(key);
    if (p && p.until > t) return p.reason;
    if (p) pending.delete(key);
    return undefined;
  }

  function impose(ban: AutomaticBan): AutomaticBan {
    pending.set(`${ban.kind}:${ban.value}`, { reason: ban.reason, until: ban.until });
    onBan(ban);
    return ban;
  }

  /** Is this address banned right now (a stored ban that has not expired)? */
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

    /** Replaces the stored ban list (addresses/CIDRs, devices, certificates); each is checked against its expiry. */
    setBans(bans: readonly Ban[]) {
      const reasons: { block: BlockList; reason: string; expiresAt: number | null }[] = [];
      const identities = new Map<string, { reason: string; expiresAt: number | null }>();
      for (const b of bans) {
        if (b.kind !== 'address') {
          const value = b.kind === 'certificate' ? normalizeSerial(b.value) : b.value;
          identities.set(`${b.kind}:${value}`, { reason: b.reason, expiresAt: b.expiresAt });
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
      identityBans = identities;
      // An automatic ban back from the store is enforced from there (and lifted there).
      for (const key of pending.keys()) if (identities.has(key)) pending.delete(key);
    },

    addressBan,

    /** The reason this certificate (serial, any form) is banned, or undefined. */
    certificateBan(serial: string): string | undefined {
      return identityBan(`certificate:${normalizeSerial(serial)}`);
    },

    /**
     * At TCP accept, before any TLS work: refuses a banned address, one over its connection rate, or one at
     * its concurrent-connection cap. Returns the reason to refuse, or undefined (and counts the connection).
     * These limits bound what unauthenticated handshakes from one address cost; they ban nothing, so a valid
     * device behind a shared address gets its turn as soon as the rate allows.
     */
    admitConnection(address: string): string | undefined {
      const t = clock();
      const a = plain(address);
      const banned = addressBan(a);
      if (banned) return `address banned: ${banned}`;
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

    /**
     * A CONNECT refused for a verified certificate (wrong client id, revoked, denied by policy, …): enough of
     * them within the window ban that certificate, not the address it came from.
     */
    recordRefusal(serial: string): AutomaticBan | undefined {
      const t = clock();
      const value = normalizeSerial(serial);
      if (!value || identityBan(`certificate:${value}`)) return undefined;
      if (bump(refusals, value, limits.failureWindowMs, t) < limits.failureThreshold) return undefined;
      refusals.delete(value);
      return impose({
        kind: 'certificate',
        value,
        rule: 'refused_connects',
        reason: `${limits.failureThreshold} refused connects within ${Math.round(limits.failureWindowMs / 1000)} s`,
        until: t + limits.banDurationMs,
      });
    },

    /**
     * At CONNECT of an identified device: device and certificate bans, and connect churn (flapping), which
     * bans the device for a while. Never its address.
     */
    admitDevice(
      deviceId: string,
      serial?: string,
    ): { ok: true } | { ok: false; reason: string; banned: true; ban?: AutomaticBan } {
      const t = clock();
      const device = identityBan(`device:${deviceId}`);
      if (device) return { ok: false, banned: true, reason: `device banned: ${device}` };
      const certificate = serial ? identityBan(`certificate:${normalizeSerial(serial)}`) : undefined;
      if (certificate) return { ok: false, banned: true, reason: `certificate banned: ${certificate}` };
      if (bump(flaps, deviceId, limits.flapWindowMs, t) > limits.flapThreshold) {
        flaps.delete(deviceId);
        const ban = impose({
          kind: 'device',
          value: deviceId,
          rule: 'flapping',
          reason: `flapping: more than ${limits.flapThreshold} connects within ${Math.round(limits.flapWindowMs / 1000)} s`,
          until: t + limits.banDurationMs,
        });
        return { ok: false, banned: true, reason: `device banned: ${ban.reason}`, ban };
      }
      return { ok: true };
    },

    /**
     * A new session of this device replaced one that was still open ([MQTT-3.1.4-2]). A device that restarts
     * does this once; two agents with one identity do it again and again, from one address or several.
     */
    recordTakeover(
      deviceId: string,
      address: string,
    ): { ban: AutomaticBan; takeovers: number; addresses: string[] } | undefined {
      const t = clock();
      let w = takeovers.get(deviceId);
      if (!w || t - w.start > limits.takeoverWindowMs) {
        w = { start: t, count: 0, addresses: [] };
        takeovers.set(deviceId, w);
        if (takeovers.size > 100_000)
          for (const [k, v] of takeovers) if (t - v.start > limits.takeoverWindowMs) takeovers.delete(k);
      }
      w.count += 1;
      const a = plain(address);
      if (!w.addresses.includes(a) && w.addresses.length < 16) w.addresses.push(a);
      if (w.count < limits.takeoverThreshold) return undefined;
      takeovers.delete(deviceId);
      const ban = impose({
        kind: 'device',
        value: deviceId,
        rule: 'cloned_identity',
        reason: `cloned identity: ${w.count} sessions taken over by the same identity within ${Math.round(limits.takeoverWindowMs / 1000)} s`,
        until: t + limits.banDurationMs,
      });
      return { ban, takeovers: w.count, addresses: w.addresses };
    },

    /** A ban was lifted: the identity starts afresh (its counters would otherwise ban it again at once). */
    forget(kind: BanKind, value: string) {
      const v = kind === 'certificate' ? normalizeSerial(value) : value;
      pending.delete(`${kind}:${v}`);
      if (kind === 'certificate') refusals.delete(v);
      if (kind === 'device') {
        flaps.delete(v);
        takeovers.delete(v);
      }
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
