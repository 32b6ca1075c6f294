import { isIP } from 'node:net';
import { DeviceMeter, HOT, slot } from './meter.ts';
import { builtinsSchema, type EffectiveProfile } from './profile.ts';
import type { RuleState } from './rules.ts';

/** What a device was seen doing, kept across restarts (novelty detectors). */
export interface NoveltyState {
  networks: string[];
  topics: string[];
  hours: number[];
  connections: number;
  messages: number;
  lastPublishAt: number;
  /** An operator resolved its silence alert: no new one until the device is heard from again. */
  silenceDismissed?: boolean | undefined;
}

/** Everything the engine and its detectors know about one device. */
export interface DeviceState {
  id: string;
  group: string | null;
  meter: DeviceMeter;
  profile: EffectiveProfile;
  rules: RuleState[];
  /** Live sessions by source address (two at once: a cloned identity). */
  sessions: Map<string, number>;
  disconnectedAt: number | null;
  lastTotals: Float64Array;
  baselineTotals: Float64Array;
  lastActivity: number;
  novelty: NoveltyState;
  dirty: boolean;
  lastThrottleAt: number;
  /** Detectors (and behaviours) with an open alert about the device. */
  alarms: Set<string>;
  /** Where the device last connected from. */
  lastAddress: string | null;
  /** Totals every 10 s for the last minute and every minute for the last hour (rolling windows for the API). */
  history: History | undefined;
}

export interface History {
  tens: Float64Array;
  minutes: Float64Array;
  tensAt: number[];
  minutesAt: number[];
  tenIndex: number;
  minuteIndex: number;
}

/** Until the service has resolved a device's profiles: built-in defaults, no behaviours. */
export const EMPTY_PROFILE: EffectiveProfile = {
  behaviours: [],
  builtins: builtinsSchema.parse({}),
  responses: [],
};

export const newNovelty = (): NoveltyState => ({
  networks: [],
  topics: [],
  hours: Array.from({ length: 24 }, () => 0),
  connections: 0,
  messages: 0,
  lastPublishAt: 0,
});

export function newDeviceState(id: string, at: number, trip: (meter: DeviceMeter) => void): DeviceState {
  return {
    id,
    group: null,
    meter: new DeviceMeter(id, trip),
    profile: EMPTY_PROFILE,
    rules: [],
    sessions: new Map(),
    disconnectedAt: null,
    lastTotals: new Float64Array(4),
    baselineTotals: new Float64Array(4),
    lastActivity: at,
    novelty: newNovelty(),
    dirty: false,
    lastThrottleAt: 0,
    alarms: new Set(),
    history: undefined,
    lastAddress: null,
  };
}

/** The four hot totals by name. */
export function totalsOf(t: Float64Array) {
  return {
    messagesSent: slot(t, HOT.messagesSent),
    bytesSent: slot(t, HOT.bytesSent),
    messagesReceived: slot(t, HOT.messagesReceived),
    bytesReceived: slot(t, HOT.bytesReceived),
  };
}

// One snapshot more than the longest window they serve needs (1 m, 1 h): with one fewer, the oldest
// snapshot is up to a step younger than the window and the figure falls short of it.
const TENS = 7;
const MINUTES = 61;
const WINDOWS: [string, number][] = [
  ['10s', 10_000],
  ['1m', 60_000],
  ['5m', 300_000],
  ['15m', 900_000],
  ['1h', 3_600_000],
];

export const newHistory = (): History => ({
  tens: new Float64Array(TENS * 4),
  minutes: new Float64Array(MINUTES * 4),
  tensAt: Array.from({ length: TENS }, () => 0),
  minutesAt: Array.from({ length: MINUTES }, () => 0),
  tenIndex: 0,
  minuteIndex: 0,
});

/** Keeps a snapshot of the totals when the last one of its ring is a step old. */
export function record(h: History, totals: Float64Array, at: number) {
  const lastTen = h.tensAt[(h.tenIndex + TENS - 1) % TENS] ?? 0;
  if (at - lastTen >= 10_000) {
    h.tens.set(totals, h.tenIndex * 4);
    h.tensAt[h.tenIndex] = at;
    h.tenIndex = (h.tenIndex + 1) % TENS;
  }
  const lastMinute = h.minutesAt[(h.minuteIndex + MINUTES - 1) % MINUTES] ?? 0;
  if (at - lastMinute >= 60_000) {
    h.minutes.set(totals, h.minuteIndex * 4);
    h.minutesAt[h.minuteIndex] = at;
    h.minuteIndex = (h.minuteIndex + 1) % MINUTES;
  }
}

/** The snapshot whose age is closest to `ms`: its ring and index, and when it was taken. */
function closest(h: History, at: number, ms: number) {
  const [ring, times] = ms <= 60_000 ? [h.tens, h.tensAt] : [h.minutes, h.minutesAt];
  let best: { ring: Float64Array; index: number; at: number } | undefined;
  let bestError = Infinity;
  times.forEach((t, i) => {
    const error = Math.abs(at - t - ms);
    if (t > 0 && t < at && error < bestError) {
      best = { ring, index: i, at: t };
      bestError = error;
    }
  });
  return best;
}

/**
 * Sums over each rolling window: now minus the snapshot whose age is closest to the window's length, so
 * the span (reported as spanMs) is within half a snapshot step of it (5 s for 10 s and 1 m, 30 s beyond).
 * Taking the oldest snapshot inside the window instead made "10s" cover anything from 1 to 11 s.
 */
export function windows(h: History | undefined, totals: Float64Array, at: number) {
  const out: Record<
    string,
    {
      spanMs: number;
      messagesSent: number;
      bytesSent: number;
      messagesReceived: number;
      bytesReceived: number;
    }
  > = {};
  for (const [name, ms] of WINDOWS) {
    const best = h ? closest(h, at, ms) : undefined;
    const base = (i: number) => (best ? slot(best.ring, best.index * 4 + i) : slot(totals, i));
    out[name] = {
      spanMs: at - (best?.at ?? at),
      messagesSent: slot(totals, 0) - base(0),
      bytesSent: slot(totals, 1) - base(1),
      messagesReceived: slot(totals, 2) - base(2),
      bytesReceived: slot(totals, 3) - base(3),
    };
  }
  return out;
}

/** The network a source address belongs to, for "new source network": /24 for IPv4, /48 for IPv6. */
export function networkOf(address: string): string {
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  if (isIP(a) === 4) return `${a.split('.').slice(0, 3).join('.')}.0/24`;
  if (isIP(a) === 6) {
    const [head = '', tail = ''] = a.split('::');
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const groups = a.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
    return `${groups.slice(0, 3).join(':')}::/48`;
  }
  return address;
}

/** Topic levels that vary per message (numbers, ids, hashes) are folded, so `new topic` means a new kind. */
export function topicShape(topic: string): string {
  return topic
    .split('/')
    .map((level) => (/^[0-9]+$/.test(level) || /^[0-9a-f-]{16,}$/i.test(level) ? '+' : level))
    .join('/');
}
