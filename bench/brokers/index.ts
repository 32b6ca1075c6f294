// node-broker.ts runs as a child process; the harness only needs its types.
export type {
  DetectionEvidence,
  FirewallEvent,
  MonitorSetup,
  NodeBrokerApi,
  NodeBrokerKind,
} from './node-broker.ts';
