import { bench, describe } from 'vitest';
import { compileDeviceAccess } from './index.ts';

// The broker's per-message decision: compiled once per connection, a string comparison per message.
const access = compileDeviceAccess({ deviceId: 'pump-0042', group: 'pumps' });
const topics = [
  'devices/pump-0042/telemetry',
  'devices/pump-0043/telemetry',
  '$SYS/broker/load',
  'devices/pump-0042/a/b/c',
];
let i = 0;

describe('policy decision', () => {
  bench('publish decision (own subtree rule)', () => {
    access.publish(topics[i++ & 3] ?? '');
  });
  bench('delivery check (authorizeForward)', () => {
    access.receive(topics[i++ & 3] ?? '');
  });
});
