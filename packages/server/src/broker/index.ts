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
export { createRetainedStore, filterMatches, type RetainedStore, type RetainedLimits } from './retained.ts';
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
