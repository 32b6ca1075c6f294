import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { canonicalize } from '@tufjs/canonical-json';
import { Updater } from 'tuf-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tufPaths } from '@bulwark/protocol';
import { createAbInstaller } from './ab-installer.ts';
import { createFirmwareUpdater } from './firmware-updater.ts';
import {
  createTestCa,
  issueLocalhostCert,
  startHttpsServer,
  type HttpsTestServer,
} from './test-support/index.ts';
import { MtlsFetcher } from './tuf-fetcher.ts';

/**
 * A TUF repository with a delegated targets role, built here from the TUF specification (§4 metadata formats,
 * Ed25519 keys, canonical JSON signatures) and served over mutual TLS, to check the device's TUF client (tuf-js)
 * on the TUF conformance suite's case: a client that cached a delegated role must verify it against the
 * delegator's *current* keys (TUF specification §5.6.3), so once the top-level targets role rotates the
 * delegated role's keys, the cached copy signed with the old key is refused until it is re-signed.
 */

interface TufKey {
  id: string;
  pub: { keytype: 'ed25519'; scheme: 'ed25519'; keyval: { public: string } };
  key: KeyObject;
}
function tufKey(): TufKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x ?? '', 'base64url').toString('hex');
  const pub = { keytype: 'ed25519' as const, scheme: 'ed25519' as const, keyval: { public: raw } };
  return { id: createHash('sha256').update(canonicalize(pub)).digest('hex'), pub, key: privateKey };
}
/** A signed metadata document (TUF specification §4.2: signatures over the canonical JSON of `signed`). */
function signed(body: Record<string, unknown>, keys: TufKey[]): Buffer {
  const signatures = keys.map((k) => ({
    keyid: k.id,
    sig: sign(null, Buffer.from(canonicalize(body)), k.key).toString('hex'),
  }));
  return Buffer.from(JSON.stringify({ signatures, signed: body }));
}
const inAYear = () => new Date(Date.now() + 365 * 86_400_000).toISOString().replace(/\.\d+Z$/, 'Z');
const metaOf = (version: number) => ({ version });

const TARGET = 'pump-fw/1.4.0/pump-fw-1.4.0.bin';

describe('device TUF client: a cached delegated role is verified against its current delegator', () => {
  const files = new Map<string, Buffer>();
  const keys = { root: tufKey(), timestamp: tufKey(), snapshot: tufKey(), targets: tufKey() };
  const vendorOld = tufKey();
  const vendorNew = tufKey();
  const image = randomBytes(4096);
  let server: HttpsTestServer;
  let tls: { ca: string; key: string; cert: string };
  let rootJson: string;
  const versions: Record<string, number> = {};
  const version = { snapshot: 0, timestamp: 0 };

  interface Delegation {
    name: string;
    key: TufKey;
    paths: string[];
  }
  /** A targets-type role: its own targets and its delegations (TUF specification §4.5), signed by `signer`. */
  function publishRole(
    name: string,
    signer: TufKey,
    content: { targets?: string[]; delegations?: Delegation[] } = {},
  ): void {
    versions[name] = (versions[name] ?? 0) + 1;
    const sha256 = createHash('sha256').update(image).digest('hex');
    const delegations = content.delegations ?? [];
    files.set(
      `${name}.json`,
      signed(
        {
          _type: 'targets',
          spec_version: '1.0.31',
          version: versions[name],
          expires: inAYear(),
          targets: Object.fromEntries(
            (content.targets ?? []).map((t) => [
              t,
              {
                length: image.length,
                hashes: { sha256 },
                custom: { version: t.split('/')[1], securityVersion: 2, hardwareIds: ['pump-v2'] },
              },
            ]),
          ),
          ...(delegations.length > 0
            ? {
                delegations: {
                  keys: Object.fromEntries(delegations.map((d) => [d.key.id, d.key.pub])),
                  roles: delegations.map((d) => ({
                    name: d.name,
                    keyids: [d.key.id],
                    threshold: 1,
                    terminating: false,
                    paths: d.paths,
                  })),
                },
              }
            : {}),
        },
        [signer],
      ),
    );
  }
  /** Top-level targets delegating the pump-fw images to "vendor" under `vendorKey`. */
  const publishTargets = (vendorKey: TufKey) =>
    publishRole('targets', keys.targets, {
      delegations: [{ name: 'vendor', key: vendorKey, paths: ['pump-fw/*/*'] }],
    });
  const publishVendor = (vendorKey: TufKey) => publishRole('vendor', vendorKey, { targets: [TARGET] });
  function publishSnapshot(): void {
    version.snapshot++;
    version.timestamp++;
    files.set(
      'snapshot.json',
      signed(
        {
          _type: 'snapshot',
          spec_version: '1.0.31',
          version: version.snapshot,
          expires: inAYear(),
          meta: Object.fromEntries(Object.entries(versions).map(([role, v]) => [`${role}.json`, metaOf(v)])),
        },
        [keys.snapshot],
      ),
    );
    files.set(
      'timestamp.json',
      signed(
        {
          _type: 'timestamp',
          spec_version: '1.0.31',
          version: version.timestamp,
          expires: inAYear(),
          meta: { 'snapshot.json': metaOf(version.snapshot) },
        },
        [keys.timestamp],
      ),
    );
  }

  beforeAll(async () => {
    const ca = await createTestCa();
    const serverCert = await issueLocalhostCert(ca);
    const device = await ca.issueKeyAndCert({ subject: 'CN=pump-17' });
    tls = { ca: ca.certPem, key: device.keyPem, cert: device.certPem };
    const role = (k: TufKey) => ({ keyids: [k.id], threshold: 1 });
    rootJson = signed(
      {
        _type: 'root',
        spec_version: '1.0.31',
        version: 1,
        expires: inAYear(),
        consistent_snapshot: false,
        keys: Object.fromEntries(Object.values(keys).map((k) => [k.id, k.pub])),
        roles: {
          root: role(keys.root),
          timestamp: role(keys.timestamp),
          snapshot: role(keys.snapshot),
          targets: role(keys.targets),
        },
      },
      [keys.root],
    ).toString();
    files.set('1.root.json', Buffer.from(rootJson));
    server = await startHttpsServer({
      ...serverCert,
      clientCa: ca.certPem,
      handler: (request, response) => {
        const deny = request.clientCertSerial === undefined; // the repository serves enrolled devices only
        const name = request.path.startsWith(tufPaths.metadata)
          ? request.path.slice(tufPaths.metadata.length)
          : request.path === `${tufPaths.targets}${TARGET}`
            ? 'image'
            : '';
        const body = name === 'image' ? image : files.get(name);
        response.statusCode = deny ? 401 : body ? 200 : 404;
        response.end(deny ? '' : body);
      },
    });
  });
  afterAll(async () => server?.close());

  const clientDirs = () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-tuf-conformance-'));
    mkdirSync(path.join(dir, 'metadata'));
    mkdirSync(path.join(dir, 'targets'));
    writeFileSync(path.join(dir, 'metadata', 'root.json'), rootJson);
    return dir;
  };
  const updaterFor = (dir: string) =>
    new Updater({
      metadataDir: path.join(dir, 'metadata'),
      metadataBaseUrl: `${server.url}${tufPaths.metadata}`,
      targetDir: path.join(dir, 'targets'),
      targetBaseUrl: `${server.url}${tufPaths.targets}`,
      fetcher: new MtlsFetcher(tls),
    });

  it('verifies a delegated role cached in this walk against the delegator it is reached through now', async () => {
    // targets delegates pump-fw/*/* to A and to B. A delegates pump-fw/1.4.0/* to "vendor" under key 1;
    // B delegates pump-fw/*/* to "vendor" under key 2. vendor.json is signed with key 1 only, and lists
    // 1.4.0 (rightly trusted through A) and 2.0.0 (which only B could vouch for, and B trusts key 2 only).
    const other = 'pump-fw/2.0.0/pump-fw-2.0.0.bin';
    const [a, b, key1, key2] = [tufKey(), tufKey(), tufKey(), tufKey()];
    publishRole('targets', keys.targets, {
      delegations: [
        { name: 'A', key: a, paths: ['pump-fw/*/*'] },
        { name: 'B', key: b, paths: ['pump-fw/*/*'] },
      ],
    });
    publishRole('A', a, { delegations: [{ name: 'vendor', key: key1, paths: ['pump-fw/1.4.0/*'] }] });
    publishRole('B', b, { delegations: [{ name: 'vendor', key: key2, paths: ['pump-fw/*/*'] }] });
    publishRole('vendor', key1, { targets: [TARGET, other] });
    publishSnapshot();

    const client = updaterFor(clientDirs());
    await client.refresh();
    // Through A: vendor verifies with key 1 and is now cached in the client's trusted set.
    expect((await client.getTargetInfo(TARGET))?.custom).toMatchObject({ version: '1.4.0' });
    // Through B, the cached vendor must be checked against B's delegation (key 2): tuf-js 5.0.1 returned it
    // unchecked and trusted 2.0.0 on key 1's word (the TUF conformance suite's cached-delegated-role case).
    const vendorFetches = () => server.requests.filter((r) => r.path.endsWith('/vendor.json')).length;
    const fetched = vendorFetches();
    await expect(client.getTargetInfo(other)).rejects.toThrow(/^vendor was signed by 0\/1 keys/);
    expect(vendorFetches()).toBe(fetched); // refused from the cache, not by a fresh download failing

    // B's own key signing vendor makes 2.0.0 trusted through B.
    publishRole('vendor', key2, { targets: [other] });
    publishSnapshot();
    const fresh = updaterFor(clientDirs());
    await fresh.refresh();
    expect((await fresh.getTargetInfo(other))?.custom).toMatchObject({ version: '2.0.0' });
  });

  it('refuses a delegated role cached on disk after the top-level targets rotated its key, until re-signed', async () => {
    const dir = clientDirs();
    publishTargets(vendorOld);
    publishVendor(vendorOld);
    publishSnapshot();
    const first = updaterFor(dir);
    await first.refresh();
    expect((await first.getTargetInfo(TARGET))?.custom).toMatchObject({ version: '1.4.0' });
    expect(readFileSync(path.join(dir, 'metadata', 'vendor.json')).equals(files.get('vendor.json')!)).toBe(
      true,
    );

    // targets rotates vendor's key; vendor.json is not re-signed. The next run (a new Updater, as every
    // device update is) reads the cached vendor.json and must check it against the new delegation.
    publishTargets(vendorNew);
    publishSnapshot();
    const next = updaterFor(dir);
    await next.refresh();
    await expect(next.getTargetInfo(TARGET)).rejects.toThrow(/vendor/);

    publishVendor(vendorNew);
    publishSnapshot();
    const resigned = updaterFor(dir);
    await resigned.refresh();
    expect((await resigned.getTargetInfo(TARGET))?.hashes.sha256).toBe(
      createHash('sha256').update(image).digest('hex'),
    );
  });

  it('the device updater refuses an update through a delegated role still signed with the rotated-out key', async () => {
    // Start from the state after a rotation that vendor.json has not followed.
    publishTargets(vendorOld);
    publishVendor(vendorOld);
    publishSnapshot();
    const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-device-fw-'));
    const installer = createAbInstaller({
      dir: path.join(dir, 'slots'),
      factory: { version: '1.0.0', securityVersion: 1 },
    });
    const steps: string[] = [];
    const updater = createFirmwareUpdater({
      dir,
      serverUrl: server.url,
      tls,
      hardwareId: 'pump-v2',
      installer,
      trustedRoot: rootJson,
      report: (s) => {
        steps.push(s.reason ? `${s.step}:${s.reason}` : s.step);
      },
    });
    publishTargets(vendorNew); // rotated, vendor.json (v+1 above) still signed by the old key
    publishSnapshot();
    const refused = await updater.update({ type: 'install', target: TARGET });
    expect(refused).toMatchObject({ ok: false, reason: 'metadata_signature_invalid' });
    expect(steps).toEqual(['available', 'failed:metadata_signature_invalid']);
    expect((await installer.current()).version).toBe('1.0.0');

    publishVendor(vendorNew);
    publishSnapshot();
    expect(await updater.update({ type: 'install', target: TARGET })).toMatchObject({ ok: true });
    expect(await installer.current()).toMatchObject({ version: '1.4.0', target: TARGET });
  });
});
