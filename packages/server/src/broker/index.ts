export {
  createBroker,
  type Broker,
  type BrokerDeps,
  type BrokerTls,
  type ConnectDecision,
} from './broker.ts';
