/**
 * Bulwark's own MQTT 3.1.1 and 5.0 broker core (issue 19): a standalone engine behind hooks. See README.md.
 */
export {
  createBrokerCore,
  type BrokerCore,
  type BrokerCoreOptions,
  type CoreStats,
  type ServerMessage,
} from './broker-core.ts';
export { createLocalBus, InProcessHub, type ClusterBus, type ClusterHandlers } from './cluster-bus.ts';
export { RC, V3_CONNACK, v3ConnackOf } from './reason-codes.ts';
export { createMemorySessionStore } from './session-store.ts';
export { filterMatches, validTopicFilter, validTopicName } from './topic-trie.ts';
export type {
  AuthStep,
  AuthVerdict,
  ConnectVerdict,
  Connection,
  CoreDelivery,
  CoreHooks,
  CoreLimits,
  CoreMessage,
  CorePublish,
  CoreRetained,
  DisconnectInfo,
  Inflight,
  MessageProperties,
  Pending,
  PersistedSession,
  QoS,
  SessionJournal,
  SessionState,
  SessionStore,
  Subscription,
} from './types.ts';
