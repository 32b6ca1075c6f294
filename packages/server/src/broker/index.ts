export {
  createBroker,
  type Broker,
  type BrokerDeps,
  type BrokerTls,
  type ConnectDecision,
} from './broker.ts';
export { createRetainedStore, filterMatches, type RetainedStore, type RetainedLimits } from './retained.ts';
