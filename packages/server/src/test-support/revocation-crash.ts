// The process the revocation crash test kills (pki/revocation.crash.e2e.test.ts): opens the platform on a
// data directory (and a PostgreSQL URL, or '' for SQLite), revokes one device, and ends itself with
// SIGKILL at the named step of the change and its events (see events/event-bus.ts `atomicSteps`).
// Arguments: data dir, database URL or '', device id, step.
import { testConfig } from '../config/index.ts';
import type { AtomicStep } from '../events/index.ts';
import { createLogger } from '../logger.ts';
import { createPlatform } from '../platform.ts';

const [dataDir = '', databaseUrl = '', deviceId = '', crashAt = ''] = process.argv.slice(2);
let armed = false;
const platform = await createPlatform(
  testConfig({ dataDir, logLevel: 'silent', ...(databaseUrl ? { 'database.url': databaseUrl } : {}) }),
  {
    logger: createLogger('silent'),
    createDataDir: false,
    onAtomicStep: (step: AtomicStep) => {
      if (armed && step === crashAt) process.kill(process.pid, 'SIGKILL');
    },
  },
);
const pki = await platform.pki();
armed = true;
await pki.revokeDevice(deviceId, 'cli', 'keyCompromise');
process.stdout.write('revoked\n');
await platform.close();
