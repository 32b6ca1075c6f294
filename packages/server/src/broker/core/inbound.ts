/**
 * What a connected client sends: PUBLISH and the QoS 1/2 flows (§4.3), SUBSCRIBE and UNSUBSCRIBE (§3.8,
 * §3.10), PINGREQ and DISCONNECT. Each handler gets its packet already parsed and the connection checked.
 */
import { isUtf8 } from 'node:buffer';
import type {
  IDisconnectPacket,
  IPublishPacket,
  ISubscribePacket,
  ISubscription,
  IUnsubscribePacket,
} from 'mqtt-packet';
import { duplicateProperty } from './codec.ts';
import type { CoreConnection } from './connection.ts';
import type { CoreContext } from './context.ts';
import { acknowledge } from './durability.ts';
import { deliverTo, drain, routeMessage } from './outbound.ts';
import { RC } from './reason-codes.ts';
import { forget, journalOf } from './session-store.ts';
import {
  filterMatches,
  isSharedFilter,
  parseSharedFilter,
  validTopicFilter,
  validTopicName,
} from './topic-trie.ts';
import type {
  CoreMessage,
  CorePublish,
  MessageProperties,
  QoS,
  SessionState,
  Subscription,
} from './types.ts';

/**
 * The properties a PUBLISH passes on to subscribers (topic alias and subscription ids are per hop); the
 * codec's `userPropertyList` goes along, so user properties go out in the order they came [MQTT-3.3.2-18].
 */
function messageProperties(props: IPublishPacket['properties']): MessageProperties | undefined {
  if (!props) return undefined;
  const rest: MessageProperties = { ...props };
  delete (rest as IPublishPacket['properties'] & object).topicAlias;
  delete (rest as IPublishPacket['properties'] & object).subscriptionIdentifier;
  return Object.keys(rest).length > 0 ? rest : undefined;
}

/** The topic of a PUBLISH, its topic alias applied (§3.3.2.3.4), or a reason code to disconnect with. */
function resolveTopic(
  ctx: CoreContext<unknown>,
  conn: CoreConnection<unknown>,
  packet: IPublishPacket,
): string | number {
  const alias = packet.properties?.topicAlias;
  if (alias === undefined) return packet.topic;
  // [MQTT-3.3.2-8, 3.3.2-9]: 0, or above the Topic Alias Maximum the server sent, is invalid.
  if (alias === 0 || alias > ctx.limits.topicAliasMaximum) return RC.topicAliasInvalid;
  const aliases = (conn.aliases ??= new Map<number, string>());
  if (packet.topic === '') return aliases.get(alias) ?? RC.protocolError; // an alias never set
  aliases.set(alias, packet.topic); // per connection only [MQTT-3.3.2-7]
  return packet.topic;
}

/**
 * The protocol checks of a PUBLISH: its topic (alias applied), or a violation to end the connection with.
 */
function checkPublish<S>(
  ctx: CoreContext<S>,
  conn: CoreConnection<S>,
  packet: IPublishPacket,
): string | { code: number; reason: string } {
  if (conn.protocolVersion === 5) {
    if (duplicateProperty(packet.properties))
      return { code: RC.protocolError, reason: 'duplicate PUBLISH property' };
    // [MQTT-3.3.4-6]: a client does not send subscription identifiers.
    if (packet.properties?.subscriptionIdentifier !== undefined)
      return { code: RC.protocolError, reason: 'PUBLISH from a client with a subscription identifier' };
  }
  const topic = resolveTopic(ctx, conn, packet);
  if (typeof topic === 'number') return { code: topic, reason: 'invalid topic alias' };
  // [MQTT-3.3.2-1, 3.3.2-2]: a topic name without wildcards.
  if (!validTopicName(topic))
    return { code: RC.topicNameInvalid, reason: `invalid topic name '${topic.slice(0, 100)}'` };
  // [MQTT-2.2.1-3]: a client's QoS 1 and 2 PUBLISHes carry a non-zero packet id.
  if (packet.qos > 0 && !packet.messageId)
    return { code: RC.protocolError, reason: 'PUBLISH without a packet identifier' };
  return topic;
}

export function handlePublish<S>(ctx: CoreContext<S>, conn: CoreConnection<S>, packet: IPublishPacket): void {
  const v5 = conn.protocolVersion === 5;
  const state = conn.state as SessionState;
  const { qos } = packet;
  const topic = checkPublish(ctx, conn, packet);
  if (typeof topic !== 'string') return conn.violate(topic.code, topic.reason);
  const packetId = packet.messageId ?? 0;
  // [MQTT-4.3.3-9]: a QoS 2 PUBLISH whose PUBREL has not come yet is not delivered again; PUBREC again.
  // Its PUBREC waits like the first one (mark 0: for all the journal recorded), since the first PUBLISH's
  // routing may not be durable yet: the publisher would send PUBREL and forget a message not yet safe.
  if (qos === 2 && state.received?.has(packetId))
    return acknowledge(ctx, conn, { packet: { cmd: 'pubrec', messageId: packetId }, mark: 0 });
  // [MQTT-3.3.4-7], §3.3.4: more QoS 1 and 2 PUBLISHes unacknowledged than the server's Receive Maximum.
  if (v5 && qos > 0 && (state.received?.size ?? 0) + conn.pendingQos1 >= ctx.limits.receiveMaximum)
    return conn.violate(RC.receiveMaximumExceeded, 'receive maximum exceeded');
  const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
  const properties = v5 ? messageProperties(packet.properties) : undefined;
  // §3.3.2.3.2: a payload announced as UTF-8 that is not (the server may check; Bulwark does).
  if (properties?.payloadFormatIndicator === true && !isUtf8(payload)) {
    if (qos === 0) return conn.violate(RC.payloadFormatInvalid, 'payload is not UTF-8');
    const refused = { cmd: qos === 1 ? ('puback' as const) : ('pubrec' as const), messageId: packetId };
    return acknowledge(ctx, conn, {
      packet: { ...refused, reasonCode: RC.payloadFormatInvalid },
      mark: undefined,
    });
  }
  const publish: CorePublish = { topic, payload, qos, retain: packet.retain, properties };
  if (qos === 1) conn.pendingQos1 += 1;
  let finished = false;
  let held = false;
  const done = (err: Error | null) => {
    if (finished) return;
    finished = true;
    if (qos === 1) conn.pendingQos1 -= 1;
    accepted(ctx, conn, { publish, packetId, err });
    if (held) conn.release();
  };
  try {
    ctx.hooks.publish(conn.session as S, publish, done);
  } catch (err) {
    // A hook that throws refuses the PUBLISH (and is reported), it never takes the connection's loop down.
    ctx.hooks.error?.(conn, err instanceof Error ? err : new Error(String(err)));
    done(err instanceof Error ? err : new Error('publish hook failed'));
  }
  if (!finished) {
    held = true;
    conn.hold();
  }
}

/** The publish hook answered: route and acknowledge, or refuse. */
function accepted<S>(
  ctx: CoreContext<S>,
  conn: CoreConnection<S>,
  outcome: { publish: CorePublish; packetId: number; err: Error | null },
): void {
  const { publish, packetId, err } = outcome;
  const v5 = conn.protocolVersion === 5;
  if (err) {
    // 3.1.1 has no way to refuse a PUBLISH: the connection is closed [MQTT-3.3.5-2]. MQTT 5 answers QoS 1
    // and 2 with reason code 0x87 (§3.4.2.1, §3.5.2.1) and keeps the connection; a QoS 0 PUBLISH has no
    // acknowledgement, so the connection ends with DISCONNECT 0x87 (§3.14.2.1).
    if (!v5 || publish.qos === 0) {
      conn.violate(RC.notAuthorized, `publish refused: ${err.message}`);
      return;
    }
    const packet = {
      cmd: publish.qos === 1 ? ('puback' as const) : ('pubrec' as const),
      messageId: packetId,
      reasonCode: RC.notAuthorized,
      ...(conn.problemInformation ? { properties: { reasonString: err.message } } : {}),
    };
    // Behind the acknowledgements still waiting for the journal, in order.
    acknowledge(ctx, conn, { packet, mark: undefined });
    return;
  }
  ctx.counters.messagesReceived += 1;
  const payload = Buffer.isBuffer(publish.payload) ? publish.payload : Buffer.from(publish.payload);
  const expiry = publish.properties?.messageExpiryInterval;
  const message: CoreMessage = {
    topic: publish.topic,
    payload,
    qos: publish.qos,
    retain: publish.retain,
    properties: publish.properties,
    expiresAt: expiry !== undefined ? ctx.now() + expiry * 1000 : undefined,
    // The session's key (the client id unless the embedder namespaces it), as No Local compares it.
    origin: (conn.state as SessionState).clientId,
  };
  // [MQTT-3.3.1-5]: a retained PUBLISH replaces the topic's retained message (an empty payload removes it).
  if (message.retain)
    ctx.hooks.retained.store?.(conn.session, {
      topic: message.topic,
      payload,
      qos: message.qos,
      properties: message.properties,
    });
  const mark = publish.qos > 0 ? ctx.journal?.recorded : undefined;
  routeMessage(ctx, message);
  ctx.bus.publish(message);
  if (conn.closed) return;
  // §4.3.2, §4.3.3: the acknowledgement once the message is accepted (PUBREC: the id is kept until PUBREL),
  // and durable in every persistent session it was routed to (durability.ts).
  if (publish.qos === 1) acknowledge(ctx, conn, { packet: { cmd: 'puback', messageId: packetId }, mark });
  else if (publish.qos === 2) {
    const state = conn.state as SessionState;
    (state.received ??= new Set()).add(packetId);
    // Journaled with the message: after a restart, the PUBLISH sent again is answered, not routed again.
    journalOf(ctx, state)?.session(state, true);
    acknowledge(ctx, conn, { packet: { cmd: 'pubrec', messageId: packetId }, mark });
  }
}

/**
 * A PUBREC for a QoS 2 message sent (§4.3.3): PUBREL (its phase journaled), or, with a reason code of 0x80 or
 * more, the end of the flow. True when the flow ended (a slot in the client's window is free).
 */
function handlePubrec<S>(
  ctx: CoreContext<S>,
  conn: CoreConnection<S>,
  packet: { id: number; reasonCode: number | undefined },
): boolean {
  const state = conn.state as SessionState;
  const { id } = packet;
  const entry = state.inflight?.get(id);
  if (!entry || entry.qos !== 2) {
    // §3.6.2.1: no such message in flight.
    const v5 = conn.protocolVersion === 5;
    conn.send({ cmd: 'pubrel', messageId: id, ...(v5 ? { reasonCode: RC.packetIdNotFound } : {}) });
    return false;
  }
  if ((packet.reasonCode ?? 0) >= 0x80) {
    state.inflight?.delete(id);
    forget(ctx, state, entry);
    return true;
  }
  entry.phase = 'pubrel';
  journalOf(ctx, state)?.inflight(state.clientId, entry.message, { packetId: id, phase: 'pubrel' });
  conn.send({ cmd: 'pubrel', messageId: id });
  return false;
}

/** PUBACK, PUBREC, PUBREL and PUBCOMP: the QoS 1 and 2 flows (§4.3.2, §4.3.3). */
export function handleAck<S>(
  ctx: CoreContext<S>,
  conn: CoreConnection<S>,
  packet: { cmd: 'puback' | 'pubrec' | 'pubrel' | 'pubcomp'; messageId?: number; reasonCode?: number },
): void {
  const state = conn.state as SessionState;
  const id = packet.messageId ?? 0;
  const v5 = conn.protocolVersion === 5;
  switch (packet.cmd) {
    case 'puback': {
      const entry = state.inflight?.get(id);
      if (entry?.qos === 1) {
        state.inflight?.delete(id);
        forget(ctx, state, entry);
      }
      break;
    }
    case 'pubrec':
      if (!handlePubrec(ctx, conn, { id, reasonCode: packet.reasonCode })) return;
      break;
    case 'pubcomp': {
      const entry = state.inflight?.get(id);
      if (entry?.phase === 'pubrel') {
        state.inflight?.delete(id);
        forget(ctx, state, entry);
      }
      break;
    }
    case 'pubrel': {
      const known = state.received?.delete(id) ?? false;
      if (known) journalOf(ctx, state)?.session(state, true);
      // §4.3.3: PUBCOMP, with 0x92 (packet identifier not found) on MQTT 5 when the id is unknown.
      conn.send({
        cmd: 'pubcomp',
        messageId: id,
        ...(v5 && !known ? { reasonCode: RC.packetIdNotFound } : {}),
      });
      return;
    }
  }
  // A slot in the client's window is free: what waits goes on.
  drain(ctx, state);
}

/** The key of a share group: the embedder's scope (shareScope) and the group name. */
function shareKey<S>(ctx: CoreContext<S>, session: S, group: string): string {
  return `${ctx.hooks.shareScope?.(session) ?? ''}\n${group}`;
}

/** The subscribe hook's answer; a hook that throws refuses the filter. */
function askSubscribe<S>(
  ctx: CoreContext<S>,
  conn: CoreConnection<S>,
  request: { filter: string; held: number; topic: string },
): string | undefined {
  try {
    return ctx.hooks.subscribe(conn.session as S, request);
  } catch (err) {
    ctx.hooks.error?.(conn, err instanceof Error ? err : new Error(String(err)));
    return 'subscribe hook failed';
  }
}

/** One filter of a SUBSCRIBE: its SUBACK code, and the subscription when it was granted. */
function subscribeOne<S>(
  ctx: CoreContext<S>,
  conn: CoreConnection<S>,
  request: ISubscription & { id: number | undefined },
): { code: number; subscription?: Subscription; existed?: boolean } | { code: number; reason: string } {
  const v5 = conn.protocolVersion === 5;
  const state = conn.state as SessionState;
  const session = conn.session as S;
  const shared = isSharedFilter(request.topic);
  const share = shared ? parseSharedFilter(request.topic) : undefined;
  const filter = share ? share.filter : request.topic;
  // [MQTT-4.7.1-1, 4.7.1-2, 4.8.2-1, 4.8.2-2]: a malformed filter is refused (0x8F; 0x80 on 3.1.1).
  if ((shared && !share) || !validTopicFilter(filter)) {
    const reason = shared && !share ? 'malformed shared subscription' : 'invalid topic filter';
    ctx.hooks.filterRefused?.(session, { topic: request.topic, reason });
    return { code: v5 ? RC.topicFilterInvalid : 0x80 };
  }
  // [MQTT-3.8.3-4]: No Local on a shared subscription is a protocol error.
  if (share && v5 && request.nl === true)
    return { code: RC.protocolError, reason: 'no local on a shared subscription' };
  // §3.9.3: a refusal is 0x87 Not authorized on MQTT 5, 0x80 Failure on 3.1.1.
  const held = state.subscriptions?.size ?? 0;
  if (askSubscribe(ctx, conn, { filter, held, topic: request.topic }) !== undefined)
    return { code: v5 ? RC.notAuthorized : 0x80 };
  const existed = state.subscriptions?.has(request.topic) ?? false;
  const subscription: Subscription = {
    topic: request.topic,
    filter,
    share: share ? shareKey(ctx, session, share.group) : undefined,
    qos: request.qos,
    noLocal: v5 && request.nl === true,
    retainAsPublished: v5 && request.rap === true,
    retainHandling: v5 ? ((request.rh ?? 0) as 0 | 1 | 2) : 0,
    id: request.id,
  };
  // [MQTT-3.8.4-3]: a subscription to the same filter replaces the existing one.
  (state.subscriptions ??= new Map()).set(request.topic, subscription);
  ctx.trie.add({ owner: state, filter, share: subscription.share, subscription });
  return { code: request.qos, subscription, existed };
}

export function handleSubscribe<S>(
  ctx: CoreContext<S>,
  conn: CoreConnection<S>,
  packet: ISubscribePacket,
): void {
  const v5 = conn.protocolVersion === 5;
  const messageId = packet.messageId ?? 0;
  if (messageId === 0) return conn.violate(RC.protocolError, 'SUBSCRIBE without a packet identifier');
  // [MQTT-3.8.3-2] (3.1.1: 3.8.3-3): at least one filter (fuzzer-found: an empty SUBACK cannot be encoded).
  if (packet.subscriptions.length === 0) return conn.violate(RC.protocolError, 'SUBSCRIBE without a filter');
  const id = v5 ? packet.properties?.subscriptionIdentifier : undefined;
  if (v5 && duplicateProperty(packet.properties))
    return conn.violate(RC.protocolError, 'duplicate SUBSCRIBE property');
  // §3.8.2.1.2: a subscription identifier of 0 is a protocol error.
  if (id === 0) return conn.violate(RC.protocolError, 'subscription identifier 0');
  const granted: number[] = [];
  const wantRetained: Subscription[] = [];
  for (const request of packet.subscriptions) {
    const result = subscribeOne(ctx, conn, { ...request, id });
    if ('reason' in result) return conn.violate(result.code, result.reason);
    granted.push(result.code); // [MQTT-3.8.4-6]: the QoS granted, or the failure
    const sub = result.subscription;
    // [MQTT-3.3.1-9 … 3.3.1-11]: retain handling; never for a shared subscription (§4.8.2).
    if (
      sub &&
      sub.share === undefined &&
      (sub.retainHandling === 0 || (sub.retainHandling === 1 && !result.existed))
    )
      wantRetained.push(sub);
  }
  if (granted.some((code) => code < 0x80))
    journalOf(ctx, conn.state as SessionState)?.session(conn.state as SessionState, true);
  // [MQTT-3.8.4-1, 3.8.4-2]: SUBACK with the same packet id, one code per filter [MQTT-3.9.3-1].
  conn.send({ cmd: 'suback', messageId, granted });
  if (wantRetained.length > 0) sendRetained(ctx, conn.state as SessionState, wantRetained);
}

/** The retained messages for new subscriptions, each through the deliver hook, retain flag set (§3.3.1.3; 3.1.1: [MQTT-3.3.1-8]). */
function sendRetained<S>(ctx: CoreContext<S>, state: SessionState, subscriptions: Subscription[]): void {
  const filters = subscriptions.map((s) => s.filter);
  const now = ctx.now();
  for (const retained of ctx.hooks.retained.lookup(filters)) {
    let qos = -1;
    let ids: number[] | undefined;
    for (const sub of subscriptions) {
      if (!filterMatches(sub.filter, retained.topic)) continue;
      if (sub.qos > qos) qos = sub.qos;
      if (sub.id !== undefined) (ids ??= []).push(sub.id);
    }
    if (qos < 0) continue;
    const expiry = retained.properties?.messageExpiryInterval;
    const message: CoreMessage = {
      topic: retained.topic,
      payload: retained.payload,
      qos: retained.qos,
      retain: true,
      properties: retained.properties,
      expiresAt: expiry !== undefined ? now + expiry * 1000 : undefined,
    };
    deliverTo(ctx, state, {
      message,
      qos: Math.min(qos, retained.qos) as QoS,
      retain: true,
      subscriptionIds: ids,
    });
  }
}

export function handleUnsubscribe<S>(
  ctx: CoreContext<S>,
  conn: CoreConnection<S>,
  packet: IUnsubscribePacket,
): void {
  const state = conn.state as SessionState;
  const messageId = packet.messageId ?? 0;
  if (messageId === 0) return conn.violate(RC.protocolError, 'UNSUBSCRIBE without a packet identifier');
  // [MQTT-3.10.3-2]: at least one filter.
  if (packet.unsubscriptions.length === 0)
    return conn.violate(RC.protocolError, 'UNSUBSCRIBE without a filter');
  const codes = packet.unsubscriptions.map((topic) => {
    const sub = state.subscriptions?.get(topic);
    if (!sub) return RC.noSubscriptionExisted;
    state.subscriptions?.delete(topic);
    ctx.trie.remove(state, sub.filter, sub.share);
    return RC.success;
  });
  if (codes.includes(RC.success)) journalOf(ctx, state)?.session(state, true);
  // [MQTT-3.10.4-4, 3.10.4-5]: UNSUBACK with the same packet id; reason codes on MQTT 5 (§3.11.3).
  conn.send(
    conn.protocolVersion === 5
      ? { cmd: 'unsuback', messageId, granted: codes }
      : { cmd: 'unsuback', messageId, granted: [] },
  );
}

/** DISCONNECT from the client (§3.14): its will is discarded on 0x00 [MQTT-3.14.4-3], kept on 0x04. */
export function handleDisconnect<S>(
  ctx: CoreContext<S>,
  conn: CoreConnection<S>,
  packet: IDisconnectPacket,
): void {
  const reasonCode = conn.protocolVersion === 5 ? (packet.reasonCode ?? 0) : 0;
  const expiry = conn.protocolVersion === 5 ? packet.properties?.sessionExpiryInterval : undefined;
  if (expiry !== undefined && conn.state) {
    // §3.14.2.2.2: a session that began with expiry 0 cannot be given one at DISCONNECT (protocol error).
    if (conn.connectExpiryZero && expiry > 0)
      return conn.violate(RC.protocolError, 'session expiry set at DISCONNECT');
    const capped = Math.min(expiry, ctx.limits.maxSessionExpirySec);
    conn.state.expirySec = capped === 0xffffffff ? Infinity : capped;
  }
  // [MQTT-3.1.2-10 (3.1.1), 3.14.4-3]: a normal DISCONNECT discards the will.
  if (reasonCode !== RC.disconnectWithWill) conn.will = undefined;
  conn.end(undefined, { reason: 'client disconnected', reasonCode });
}
