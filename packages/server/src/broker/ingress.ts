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
  /** A payload that passed the route's schema; the device id is the session's, never read from the topic. */
  accept(deviceId: string, payload: IngressPayload<N>): void | Promise<void>;
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

interface CompiledRoute {
  name: IngressName;
  suffix: string;
  route: IngressRoute;
  handler: IngressHandler<IngressName>;
}

const SLASH = 47;

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
    compiled.push({ name, suffix: ingressSuffix(route), route, handler });
  }
  const fail = (err: unknown, deviceId: string, name: IngressName) => options.onError(err, deviceId, name);

  function deliver(entry: CompiledRoute, deviceId: string, payload: Buffer | string): void {
    const parsed = parseIngress(entry.route, payload);
    try {
      if (!parsed.ok) {
        entry.handler.reject?.(deviceId, parsed.problem);
        return;
      }
      // The schema of this route validated it: its value is this route's payload type.
      const done = entry.handler.accept(deviceId, parsed.value as never);
      if (done) done.catch((err: unknown) => fail(err, deviceId, entry.name));
    } catch (err) {
      fail(err, deviceId, entry.name);
    }
  }

  return {
    dispatch(deviceId, topic, payload) {
      for (const entry of compiled) {
        if (!isDeviceTopic(topic, deviceId, entry.suffix)) continue;
        deliver(entry, deviceId, payload);
        return;
      }
    },
  };
}
