export {
  createBroker,
  defaultBrokerLimits,
  type Broker,
  type BrokerDeps,
  type BrokerLimits,
  type BrokerTls,
  type AppDeliveryStats,
  type ConnectDecision,
} from './broker.ts';
export { createRetainedStore, type RetainedStore, type RetainedLimits } from './retained.ts';
export { createSqlSessionJournal, type SqlSessionJournal } from './mqtt-sessions.ts';
/** Whether a topic filter matches a topic name ([MQTT-4.7.1-2], [MQTT-4.7.2-1]), as the broker routes. */
export { filterMatches } from './core/index.ts';
export {
  createIngressRouter,
  type IngressHandler,
  type IngressHandlers,
  type IngressRouter,
} from './ingress.ts';
export {
  CONTINUE,
  type BrokerSession,
  type Principal,
  type BrokerTransforms,
  type ConnectContext,
  type ConnectOutcome,
  type ConnectRefusal,
  type ConnectStage,
  type DeliverPacket,
  type DeliverStage,
  type PeerIdentity,
  type PublishPacket,
  type PublishStage,
  type PublishVerdict,
  type SubscribeRequest,
  type SubscribeStage,
} from './stages.ts';
export {
  describePlainListener,
  describeTlsListener,
  type CertificateFallback,
  type ListenerFacts,
  type TlsListener,
} from './listener.facts.ts';
