import {
  DEVICE_TOPIC_ROOT,
  deviceIngress,
  ingressSuffix,
  type IngressName,
  type IngressPayload,
  type IngressRoute,
} from '@bulwark/protocol';

/** What the platform does with one kind of device message. */
export interface IngressHandler<N extends IngressName> {
  /**
   * A payload that passed the route's schema; the device id is the session's, never read from the topic.
   * `level` is what the route's `+` level matched (the command name of `commandResult`), undefined for a
   * route without one.
   */
  accept(deviceId: string, payload: IngressPayload<N>, level: string | undefined): void | Promise<void>;
  /**
   * A payload that did not (too large, not JSON, or the schema's first three issues); without this it is
   * dropped: it changes nothing.
   */
  reject?(deviceId: string, problem: string): void;
}

/** Handlers by route name; a route without one is not parsed at all. */
export type IngressHandlers = { [N in IngressName]?: IngressHandler<N> };

export interface IngressRouter {
  /** A message an authenticated device published (after the publish pipeline let it through). */
  dispatch(deviceId: string, topic: string, payload: Buffer | string): void;
}

/** A route's suffix with a `+` level split around it: `commands/+/result` is `commands/` and `/result`. */
export interface WildcardSuffix {
  before: string;
  after: string;
}

interface CompiledRoute {
  name: IngressName;
  /** The fixed suffix, or undefined when the route has a `+` level (then `wildcard`). */
  suffix: string | undefined;
  wildcard: WildcardSuffix | undefined;
  route: IngressRoute;
  handler: IngressHandler<IngressName>;
}

const SLASH = 47;

/** A route's suffix, fixed or with one `+` level (a whole level); anything else is a programming error. */
export function splitSuffix(suffix: string): { suffix: string } | { wildcard: WildcardSuffix } {
  const levels = suffix.split('/');
  const plus = levels.indexOf('+');
  if (levels.some((l, i) => l.includes('#') || (l.includes('+') && i !== plus)) || levels.includes(''))
    throw new Error(`ingress suffix ${suffix}: at most one + level, no # and no empty level`);
  if (plus < 0) return { suffix };
  const before = levels.slice(0, plus).join('/');
  const after = levels.slice(plus + 1).join('/');
  return { wildcard: { before: before && `${before}/`, after: after && `/${after}` } };
}

/** Is `topic` exactly `devices/{deviceId}/{suffix}`? Compared in place: nothing is allocated per message. */
export function isDeviceTopic(topic: string, deviceId: string, suffix: string): boolean {
  const root = DEVICE_TOPIC_ROOT.length;
  return (
    topic.length === root + deviceId.length + suffix.length + 2 &&
    topic.endsWith(suffix) &&
    topic.startsWith(DEVICE_TOPIC_ROOT) &&
    topic.charCodeAt(root) === SLASH &&
    topic.startsWith(deviceId, root + 1) &&
    topic.charCodeAt(root + 1 + deviceId.length) === SLASH
  );
}

/**
 * Is `topic` `devices/{deviceId}/{before}{level}{after}` with `level` one non-empty topic level? Returns where
 * `level` starts, or -1. Compared in place like isDeviceTopic: nothing is allocated per message.
 */
export function wildcardLevelAt(topic: string, deviceId: string, pattern: WildcardSuffix): number {
  const root = DEVICE_TOPIC_ROOT.length;
  const start = root + deviceId.length + 2 + pattern.before.length;
  const end = topic.length - pattern.after.length;
  if (end <= start) return -1;
  const framed =
    topic.endsWith(pattern.after) &&
    topic.startsWith(DEVICE_TOPIC_ROOT) &&
    topic.charCodeAt(root) === SLASH &&
    topic.startsWith(deviceId, root + 1) &&
    topic.charCodeAt(root + 1 + deviceId.length) === SLASH &&
    topic.startsWith(pattern.before, root + 2 + deviceId.length);
  if (!framed) return -1;
  const slash = topic.indexOf('/', start);
  return slash < 0 || slash >= end ? start : -1;
}

type Parsed = { ok: true; value: unknown } | { ok: false; problem: string };

/** Size, JSON and schema, in that order; the problem texts are the ones `device.metrics_rejected` records. */
export function parseIngress(route: IngressRoute, payload: Buffer | string): Parsed {
  const bytes = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
  if (route.maxBytes !== undefined && bytes > route.maxBytes)
    return { ok: false, problem: `report larger than ${route.maxBytes} bytes` };
  let json: unknown;
  try {
    json = JSON.parse(typeof payload === 'string' ? payload : payload.toString('utf8'));
  } catch {
    return { ok: false, problem: 'report is not JSON' };
  }
  const parsed = route.schema.safeParse(json);
  if (parsed.success) return { ok: true, value: parsed.data };
  const problem = parsed.error.issues
    .slice(0, 3)
    .map((i) => `${i.path.join('.') || 'report'}: ${i.message}`)
    .join('; ');
  return { ok: false, problem };
}

/**
 * The one typed router for device messages the platform consumes (routes and schemas from
 * `@bulwark/protocol`'s `deviceIngress`): each payload is parsed and validated once, and its handler gets the
 * typed value. Topics outside the routes cost a few string comparisons and nothing else.
 *
 * @example
 * ```ts
 * const ingress = createIngressRouter({
 *   handlers: {
 *     metrics: {
 *       accept: (deviceId, report) => monitor.handleReport(deviceId, report),
 *       reject: (deviceId, problem) => monitor.rejectReport(deviceId, problem),
 *     },
 *   },
 *   onError: (err, deviceId) => logger.error({ err, deviceId }, 'device message failed'),
 * });
 * const broker = await createBroker({ ...deps, ingress });
 * ```
 */
export function createIngressRouter(options: {
  handlers: IngressHandlers;
  /** A handler threw or its promise failed. */
  onError(err: unknown, deviceId: string, route: IngressName): void;
}): IngressRouter {
  const compiled: CompiledRoute[] = [];
  for (const name of Object.keys(deviceIngress) as IngressName[]) {
    const handler: IngressHandler<IngressName> | undefined = options.handlers[name];
    if (!handler) continue;
    const route: IngressRoute = deviceIngress[name];
    const split = splitSuffix(ingressSuffix(route));
    compiled.push({
      name,
      suffix: 'suffix' in split ? split.suffix : undefined,
      wildcard: 'wildcard' in split ? split.wildcard : undefined,
      route,
      handler,
    });
  }
  const fail = (err: unknown, deviceId: string, name: IngressName) => options.onError(err, deviceId, name);

  function deliver(
    entry: CompiledRoute,
    deviceId: string,
    message: { payload: Buffer | string; level: string | undefined },
  ): void {
    const { payload, level } = message;
    const parsed = parseIngress(entry.route, payload);
    try {
      if (!parsed.ok) {
        entry.handler.reject?.(deviceId, parsed.problem);
        return;
      }
      // The schema of this route validated it: its value is this route's payload type.
      const done = entry.handler.accept(deviceId, parsed.value as never, level);
      if (done) done.catch((err: unknown) => fail(err, deviceId, entry.name));
    } catch (err) {
      fail(err, deviceId, entry.name);
    }
  }

  return {
    dispatch(deviceId, topic, payload) {
      for (const entry of compiled) {
        if (entry.suffix !== undefined) {
          if (!isDeviceTopic(topic, deviceId, entry.suffix)) continue;
          deliver(entry, deviceId, { payload, level: undefined });
          return;
        }
        if (!entry.wildcard) continue;
        const start = wildcardLevelAt(topic, deviceId, entry.wildcard);
        if (start < 0) continue;
        const level = topic.slice(start, topic.length - entry.wildcard.after.length);
        deliver(entry, deviceId, { payload, level });
        return;
      }
    },
  };
}
