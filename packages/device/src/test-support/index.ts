export { startFakeBroker } from './fake-mqtt-broker.ts';
export type { BrokerConnect, BrokerPublish, BrokerSubscribe, FakeBroker } from './fake-mqtt-broker.ts';
export { startFakeEstServer } from './fake-est-server.ts';
export type { FakeEstServer } from './fake-est-server.ts';
export { sendProblem, startHttpsServer } from './https-test-server.ts';
export type { Handler, HttpsTestServer, RecordedRequest } from './https-test-server.ts';
export { createTestCa, issueLocalhostCert } from './test-pki.ts';
export type { IssueParams, TestCa } from './test-pki.ts';
