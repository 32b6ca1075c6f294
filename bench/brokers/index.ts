// node-broker.ts runs as a child process; the harness only needs its types.
export type { NodeBrokerApi, NodeBrokerKind } from './node-broker.ts';
