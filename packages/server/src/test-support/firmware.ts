import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  generateTufKey,
  privateKeyFromPem,
  signDocument,
  type NewRelease,
  type TufPrivateKey,
} from '../firmware/index.ts';
import type { Platform } from '../platform.ts';

/** A firmware image file with random content. */
export function makeImage(size = 4096, dir = mkdtempSync(path.join(tmpdir(), 'bulwark-fw-'))) {
  const bytes = randomBytes(size);
  const file = path.join(dir, `image-${bytes.subarray(0, 4).toString('hex')}.bin`);
  writeFileSync(file, bytes);
  return { file, bytes, size, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/** A CycloneDX 1.5 SBOM listing the given package URLs. */
export function cycloneDx(purls: string[]) {
  return {
    bomFormat: 'CycloneDX',
    specVersion: '1.5',
    serialNumber: 'urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79',
    version: 1,
    metadata: { component: { type: 'firmware', name: 'pump-fw' } },
    components: purls.map((purl) => {
      const at = purl.lastIndexOf('@');
      const name = purl.slice(purl.lastIndexOf('/') + 1, at);
      return { type: 'library', name, version: purl.slice(at + 1), purl };
    }),
  };
}

export const inTwoYears = () => new Date(Date.now() + 2 * 365 * 86_400_000).toISOString();

export function releaseInput(
  image: { size: number; sha256: string },
  overrides: Partial<NewRelease> = {},
): NewRelease {
  return {
    name: 'pump-fw',
    version: '1.0.0',
    hardwareIds: ['pump-v2'],
    securityVersion: 1,
    endOfSupport: inTwoYears(),
    size: image.size,
    sha256: image.sha256,
    ...overrides,
  };
}

export interface OfflineKeys {
  root: TufPrivateKey;
  targets: TufPrivateKey;
  rootPem: string;
  targetsPem: string;
}

/** Initializes the TUF repository with fresh offline root and targets keys (signing in-process). */
export async function initTuf(platform: Platform): Promise<OfflineKeys> {
  const root = generateTufKey();
  const targets = generateTufKey();
  const keys = {
    root: privateKeyFromPem(root.privatePem),
    targets: privateKeyFromPem(targets.privatePem),
    rootPem: root.privatePem,
    targetsPem: targets.privatePem,
  };
  const unsigned = await platform.firmware.tuf.prepareInitialRoot(
    {
      rootKeys: [keys.root.public],
      rootThreshold: 1,
      targetsKeys: [keys.targets.public],
      targetsThreshold: 1,
    },
    'test',
  );
  await platform.firmware.tuf.publish(signDocument(unsigned, [keys.root]), 'test');
  await publishTargets(platform, keys);
  return keys;
}

/** Signs the pending targets with the offline targets key and publishes them. */
export async function publishTargets(platform: Platform, keys: Pick<OfflineKeys, 'targets'>): Promise<void> {
  const unsigned = await platform.firmware.tuf.prepareTargets('test');
  await platform.firmware.tuf.publish(signDocument(unsigned, [keys.targets]), 'test');
}

/** Creates, uploads and (with keys) signs a release; returns it with its image. */
export async function shipRelease(
  platform: Platform,
  keys: Pick<OfflineKeys, 'targets'> | undefined,
  overrides: Partial<NewRelease> = {},
  size = 4096,
) {
  const image = makeImage(size);
  const { createReadStream } = await import('node:fs');
  const created = await platform.firmware.releases.create(releaseInput(image, overrides), 'test');
  const release = await platform.firmware.releases.upload(created.id, createReadStream(image.file), 'test');
  if (keys) await publishTargets(platform, keys);
  return { release, image };
}
