import { BlockList, isIP } from 'node:net';
import { normalizeSerial } from '../pki/index.ts';
import { subjectOf } from '../events/index.ts';
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

type IdentityBan = { reason: string; expiresAt: number | null };

/** One node's firewall state; the functions below read and change it. */
interface FirewallState {
  limits: FirewallLimits;
  clock: () => number;
  onBan: (ban: AutomaticBan) => void;
  connectBuckets: Map<string, TokenBucket>;
  open: Map<string, number>;
  refusals: Map<string, Window>;
  flaps: Map<string, Window>;
  takeovers: Map<string, Window & { addresses: string[] }>;
  /** Automatic bans decided here and not yet back from the store: `kind:value`. */
  pending: Map<string, { reason: string; until: number }>;
  devices: Map<string, { messages: TokenBucket; bytes: TokenBucket; throttles: Window }>;
  addressBans: { block: BlockList; reason: string; expiresAt: number | null }[];
  identityBans: Map<string, IdentityBan>;
}

const plain = (address: string) =>
  address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;

/** Counts one more in the key's window (a new window once the old one is over); returns the count. */
function bump(map: Map<string, Window>, key: string, window: { ms: number; t: number }): number {
  const { ms, t } = window;
  let w = map.get(key);
  if (!w || t - w.start > ms) {
    w = { start: t, count: 0 };
    map.set(key, w);
    if (map.size > 100_000) for (const [k, v] of map) if (t - v.start > ms) map.delete(k);
  }
  return ++w.count;
}

/** Is this identity (`device:id`, `certificate:serial`) banned right now? The reason, or undefined. */
function identityBan(s: FirewallState, key: string): string | undefined {
  const t = s.clock();
  const stored = s.identityBans.get(key);
  if (stored && (stored.expiresAt === null || stored.expiresAt > t)) return stored.reason;
  const p = s.pending.get(key);
  if (p && p.until > t) return p.reason;
  if (p) s.pending.delete(key);
  return undefined;
}

function impose(s: FirewallState, ban: AutomaticBan): AutomaticBan {
  s.pending.set(`${ban.kind}:${ban.value}`, { reason: ban.reason, until: ban.until });
  s.onBan(ban);
  return ban;
}

/** Is this address banned right now (a stored ban that has not expired)? */
function addressBan(s: FirewallState, address: string): string | undefined {
  const t = s.clock();
  const a = plain(address);
  if (!isIP(a)) return undefined;
  const type = isIP(a) === 6 ? 'ipv6' : 'ipv4';
  return s.addressBans.find((r) => (r.expiresAt === null || r.expiresAt > t) && r.block.check(a, type))
    ?.reason;
}

/** Replaces the stored ban list (addresses/CIDRs, devices, certificates); each is checked against its expiry. */
function setBans(s: FirewallState, bans: readonly Ban[]): void {
  const reasons: FirewallState['addressBans'] = [];
  const identities = new Map<string, IdentityBan>();
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
  s.addressBans = reasons;
  s.identityBans = identities;
  // An automatic ban back from the store is enforced from there (and lifted there).
  for (const key of s.pending.keys()) if (identities.has(key)) s.pending.delete(key);
}

/**
 * At TCP accept, before any TLS work: refuses a banned address, one over its connection rate, or one at
 * its concurrent-connection cap. Returns the reason to refuse, or undefined (and counts the connection).
 * These limits bound what unauthenticated handshakes from one address cost; they ban nothing, so a valid
 * device behind a shared address gets its turn as soon as the rate allows.
 */
function admitConnection(s: FirewallState, address: string): string | undefined {
  const { limits } = s;
  const t = s.clock();
  const a = plain(address);
  const banned = addressBan(s, a);
  if (banned) return `address banned: ${banned}`;
  let bucket = s.connectBuckets.get(a);
  if (!bucket) {
    bucket = new TokenBucket(limits.connectRate, limits.connectBurst, t);
    s.connectBuckets.set(a, bucket);
    if (s.connectBuckets.size > 100_000) s.connectBuckets.clear();
  }
  if (bucket.take(1, t) > 0) return 'connection rate exceeded';
  const n = s.open.get(a) ?? 0;
  if (n >= limits.maxConnectionsPerAddress) return 'too many concurrent connections from this address';
  s.open.set(a, n + 1);
  return undefined;
}

function connectionClosed(s: FirewallState, address: string): void {
  const a = plain(address);
  const n = (s.open.get(a) ?? 1) - 1;
  if (n <= 0) s.open.delete(a);
  else s.open.set(a, n);
}

/**
 * A CONNECT refused for a verified certificate (wrong client id, revoked, denied by policy, …): enough of
 * them within the window ban that certificate, not the address it came from.
 */
function recordRefusal(s: FirewallState, serial: string): AutomaticBan | undefined {
  const { limits } = s;
  const t = s.clock();
  const value = normalizeSerial(serial);
  if (!value || identityBan(s, subjectOf.certificate(value))) return undefined;
  if (bump(s.refusals, value, { ms: limits.failureWindowMs, t }) < limits.failureThreshold) return undefined;
  s.refusals.delete(value);
  return impose(s, {
    kind: 'certificate',
    value,
    rule: 'refused_connects',
    reason: `${limits.failureThreshold} refused connects within ${Math.round(limits.failureWindowMs / 1000)} s`,
    until: t + limits.banDurationMs,
  });
}

type DeviceAdmission = { ok: true } | { ok: false; reason: string; banned: true; ban?: AutomaticBan };

/**
 * At CONNECT of an identified device: device and certificate bans, and connect churn (flapping), which
 * bans the device for a while. Never its address.
 */
function admitDevice(s: FirewallState, deviceId: string, serial?: string): DeviceAdmission {
  const { limits } = s;
  const t = s.clock();
  const device = identityBan(s, subjectOf.device(deviceId));
  if (device) return { ok: false, banned: true, reason: `device banned: ${device}` };
  const certificate = serial ? identityBan(s, subjectOf.certificate(normalizeSerial(serial))) : undefined;
  if (certificate) return { ok: false, banned: true, reason: `certificate banned: ${certificate}` };
  if (bump(s.flaps, deviceId, { ms: limits.flapWindowMs, t }) > limits.flapThreshold) {
    s.flaps.delete(deviceId);
    const ban = impose(s, {
      kind: 'device',
      value: deviceId,
      rule: 'flapping',
      reason: `flapping: more than ${limits.flapThreshold} connects within ${Math.round(limits.flapWindowMs / 1000)} s`,
      until: t + limits.banDurationMs,
    });
    return { ok: false, banned: true, reason: `device banned: ${ban.reason}`, ban };
  }
  return { ok: true };
}

/**
 * A new session of this device replaced one that was still open ([MQTT-3.1.4-2]). A device that restarts
 * does this once; two agents with one identity do it again and again, from one address or several.
 */
function recordTakeover(
  s: FirewallState,
  deviceId: string,
  address: string,
): { ban: AutomaticBan; takeovers: number; addresses: string[] } | undefined {
  const { limits, takeovers } = s;
  const t = s.clock();
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
  const ban = impose(s, {
    kind: 'device',
    value: deviceId,
    rule: 'cloned_identity',
    reason: `cloned identity: ${w.count} sessions taken over by the same identity within ${Math.round(limits.takeoverWindowMs / 1000)} s`,
    until: t + limits.banDurationMs,
  });
  return { ban, takeovers: w.count, addresses: w.addresses };
}

/** A ban was lifted: the identity starts afresh (its counters would otherwise ban it again at once). */
function forget(s: FirewallState, kind: BanKind, value: string): void {
  const v = kind === 'certificate' ? normalizeSerial(value) : value;
  s.pending.delete(`${kind}:${v}`);
  if (kind === 'certificate') s.refusals.delete(v);
  if (kind === 'device') {
    s.flaps.delete(v);
    s.takeovers.delete(v);
  }
}

/** The shape limits of one PUBLISH: a violation disconnects. */
function shapeProblem(limits: FirewallLimits, topic: string, bytes: number): string | undefined {
  if (bytes > limits.maxPayloadBytes) return `payload of ${bytes} bytes exceeds ${limits.maxPayloadBytes}`;
  if (topic.length > limits.maxTopicLength) return `topic longer than ${limits.maxTopicLength} characters`;
  if (topic.split('/').length > limits.maxTopicLevels)
    return `topic deeper than ${limits.maxTopicLevels} levels`;
  return undefined;
}

/** Per-device quota and shape check for one PUBLISH. */
function checkPublish(
  s: FirewallState,
  publish: { deviceId: string; topic: string; bytes: number },
): PublishVerdict {
  const { limits } = s;
  const { deviceId, topic, bytes } = publish;
  const shape = shapeProblem(limits, topic, bytes);
  if (shape) return { ok: false, action: 'disconnect', reason: shape };
  const t = s.clock();
  let d = s.devices.get(deviceId);
  if (!d) {
    d = {
      messages: new TokenBucket(limits.publishRate, limits.publishBurst, t),
      bytes: new TokenBucket(limits.byteRate, limits.byteBurst, t),
      throttles: { start: t, count: 0 },
    };
    s.devices.set(deviceId, d);
  }
  const wait = Math.max(d.messages.take(1, t), d.bytes.take(bytes, t));
  if (wait === 0) return { ok: true };
  if (t - d.throttles.start > 60_000) d.throttles = { start: t, count: 0 };
  d.throttles.count += 1;
  if (d.throttles.count > limits.throttlesBeforeDisconnect)
    return { ok: false, action: 'disconnect', reason: 'publish quota exceeded repeatedly' };
  return { ok: false, action: 'throttle', waitMs: Math.min(wait, 5000), reason: 'publish quota exceeded' };
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
  const s: FirewallState = {
    limits,
    clock,
    onBan,
    connectBuckets: new Map(),
    open: new Map(),
    refusals: new Map(),
    flaps: new Map(),
    takeovers: new Map(),
    pending: new Map(),
    devices: new Map(),
    addressBans: [],
    identityBans: new Map(),
  };
  return {
    limits,
    setBans: (bans: readonly Ban[]) => setBans(s, bans),
    addressBan: (address: string) => addressBan(s, address),
    /** The reason this certificate (serial, any form) is banned, or undefined. */
    certificateBan: (serial: string) => identityBan(s, subjectOf.certificate(normalizeSerial(serial))),
    admitConnection: (address: string) => admitConnection(s, address),
    connectionClosed: (address: string) => connectionClosed(s, address),
    recordRefusal: (serial: string) => recordRefusal(s, serial),
    admitDevice: (deviceId: string, serial?: string) => admitDevice(s, deviceId, serial),
    recordTakeover: (deviceId: string, address: string) => recordTakeover(s, deviceId, address),
    forget: (kind: BanKind, value: string) => forget(s, kind, value),
    checkPublish: (deviceId: string, topic: string, bytes: number) =>
      checkPublish(s, { deviceId, topic, bytes }),
    checkSubscriptionCount: (count: number): string | undefined =>
      count > limits.maxSubscriptions ? `more than ${limits.maxSubscriptions} subscriptions` : undefined,
    forgetDevice: (deviceId: string) => {
      s.devices.delete(deviceId);
    },
  };
}

export type Firewall = ReturnType<typeof createFirewall>;
