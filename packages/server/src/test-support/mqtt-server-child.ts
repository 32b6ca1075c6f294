// A real server in its own process, for tests that kill it (broker/session-crash.e2e.test.ts): started on a
// data directory (and a PostgreSQL URL, or '' for SQLite) with ephemeral ports; prints `mqtt <port>` once it
// listens. Publish quotas are raised: the tests load the broker as fast as a client can. Arguments: data dir,
// database URL or ''.
import { startTestServer } from './server.ts';

const [dataDir = '', databaseUrl = ''] = process.argv.slice(2);
const s = await startTestServer(
  {
    'firewall.publishRate': 1_000_000,
    'firewall.publishBurst': 1_000_000,
    ...(databaseUrl ? { 'database.url': databaseUrl } : {}),
  },
  { dataDir },
);
process.stdout.write(`mqtt ${s.server.mqttPort}\n`);
process.once('SIGTERM', () => void s.stop({ keepData: true }).then(() => process.exit(0)));
