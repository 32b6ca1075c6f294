import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseSbom } from './sbom.ts';

/**
 * Our own CycloneDX corpus (fixtures/cyclonedx, written for Bulwark): valid documents for 1.4, 1.5 and 1.6, and
 * invalid ones, each a valid document with one defect of the kinds the CycloneDX 1.6 test corpus covers.
 */
const corpus = path.join(import.meta.dirname, 'fixtures', 'cyclonedx');
const read = (file: string) => readFileSync(path.join(corpus, file), 'utf8');

/** Every invalid document and the JSON Pointer (plus what is wrong) its refusal must name. */
const invalid: Record<string, RegExp> = {
  'author-email-invalid': /^\/metadata\/authors\/0\/email: must match format "idn-email"/,
  'bom-ref-duplicate':
    /^\/components\/1\/components\/0\/bom-ref: "lodash" is already the bom-ref of \/components\/0/,
  'bom-ref-empty': /^\/components\/0\/bom-ref: must NOT have fewer than 1 characters/,
  'bomformat-missing': /^\/bomFormat: must be "CycloneDX"/,
  'bomformat-spdx': /^\/bomFormat: must be "CycloneDX"/,
  'component-additional-property': /^\/components\/0\/vendor: is not a property the schema allows/,
  'component-name-missing': /^\/components\/0\/name: is required/,
  'component-name-number': /^\/components\/0\/name: must be string/,
  'component-scope-unknown': /^\/components\/0\/scope: must be one of "required", "optional", "excluded"/,
  'component-type-missing': /^\/components\/0\/type: is required/,
  'component-type-unknown': /^\/components\/0\/type: must be one of "application"/,
  'components-not-array': /^\/components: must be array/,
  'crypto-primitive-unknown':
    /^\/components\/2\/cryptoProperties\/algorithmProperties\/primitive: must be one of/,
  'dependency-dependson-duplicate': /^\/dependencies\/0\/dependsOn: must NOT have duplicate items/,
  'dependency-dependson-unknown': /^\/dependencies\/0\/dependsOn\/3: "zlib" is not the bom-ref of anything/,
  'dependency-ref-missing': /^\/dependencies\/1\/ref: is required/,
  'dependency-ref-unknown': /^\/dependencies\/2\/ref: "left-pad" is not the bom-ref of anything/,
  'document-is-array': /^\/: a CycloneDX JSON document is an object/,
  'external-reference-type-unknown':
    /^\/components\/0\/externalReferences\/0\/type: is not one of the \d+ values/,
  'hash-alg-unknown': /^\/components\/0\/hashes\/0\/alg: must be one of "MD5", "SHA-1"/,
  'hash-content-length-not-alg':
    /^\/components\/0\/hashes\/0\/content: a SHA-256 digest is 64 hex digits, not 32/,
  'hash-content-not-hex': /^\/components\/0\/hashes\/0\/content: must match pattern/,
  'hash-content-wrong-length': /^\/components\/0\/hashes\/0\/content: must match pattern/,
  'license-acknowledgement-unknown':
    /^\/components\/0\/licenses\/0\/acknowledgement: must be one of "declared", "concluded"/,
  'license-choice-mixed': /^\/components\/0\/licenses\/1\/license: is required/,
  'license-id-unknown': /^\/components\/1\/licenses\/0\/license\/id: is not one of the \d+ values/,
  'license-two-expressions': /^\/components\/0\/licenses\/0\/license: is required/,
  'license-without-id-or-name': /^\/components\/1\/licenses\/0\/license\/id: is required/,
  'lifecycle-phase-unknown': /^\/metadata\/lifecycles\/0\/phase: must be one of "design"/,
  'metadata-timestamp-not-date-time': /^\/metadata\/timestamp: must match format "date-time"/,
  'nested-component-type-unknown': /^\/components\/1\/components\/0\/type: must be one of/,
  'property-name-missing': /^\/components\/1\/properties\/0\/name: is required/,
  'purl-not-a-purl': /^\/components\/0\/purl: "npm\/lodash@4.17.21" is not a package URL/,
  'root-additional-property': /^\/generator: is not a property the schema allows/,
  'serialnumber-not-uuid': /^\/serialNumber: must match pattern/,
  'serialnumber-uppercase': /^\/serialNumber: must match pattern/,
  'service-data-flow-unknown': /^\/services\/0\/data\/0\/flow: must be one of "inbound"/,
  'specversion-missing': /^\/specVersion: must be one of "1.2", "1.3", "1.4", "1.5", "1.6", "1.7"/,
  'specversion-number': /^\/specVersion: must be one of/,
  'specversion-too-old-for-fields': /^\/metadata\/lifecycles: is not a property the schema allows/,
  'specversion-unknown': /^\/specVersion: must be one of/,
  'version-string': /^\/version: must be integer/,
  'version-zero': /^\/version: must be >= 1/,
};

describe('CycloneDX SBOM validation (the CycloneDX library’s strict JSON schemas)', () => {
  it('has a corpus of at least 25 invalid documents, each with its expected refusal', () => {
    const files = readdirSync(path.join(corpus, 'invalid')).map((f) => f.replace(/\.json$/, ''));
    expect(files.length).toBeGreaterThanOrEqual(25);
    expect(files.sort()).toEqual(Object.keys(invalid).sort());
  });

  it.each(Object.entries(invalid))(
    'refuses invalid/%s.json naming the failing path',
    async (name, reason) => {
      const text = read(`invalid/${name}.json`);
      const refusal = await parseSbom(text).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(refusal).toMatchObject({ code: 'sbom_invalid' });
      expect((refusal as Error).message.replace(/^SBOM refused: /, '')).toMatch(reason);
      // The same document given as parsed JSON (the HTTP API's body) is refused alike.
      await expect(parseSbom(JSON.parse(text))).rejects.toMatchObject({ code: 'sbom_invalid' });
    },
  );

  it.each([
    ['1.4', ['pkg:generic/zephyr@3.5.0', 'pkg:github/mbed-tls/mbedtls@3.5.1']],
    ['1.5', ['pkg:generic/busybox@1.36.1', 'pkg:generic/openssl@3.0.13']],
    ['1.6', ['pkg:npm/lodash@4.17.21', 'pkg:npm/%40acme/web-ui@2.0.0', 'pkg:npm/preact@10.19.3', null]],
  ])('accepts valid-%s.json and lists its components, nested ones included', async (version, purls) => {
    const sbom = await parseSbom(read(`valid-${version}.json`));
    expect(sbom.specVersion).toBe(version);
    expect(sbom.components.map((c) => c.purl)).toEqual(purls);
    expect(JSON.parse(sbom.text)).toEqual(JSON.parse(read(`valid-${version}.json`)));
  });

  it('accepts a minimal 1.7 document (the newest schema the library ships)', async () => {
    const sbom = await parseSbom({
      bomFormat: 'CycloneDX',
      specVersion: '1.7',
      version: 1,
      components: [{ type: 'firmware', name: 'modem-fw', version: '2.0', purl: 'pkg:generic/modem-fw@2.0' }],
    });
    expect(sbom.components).toEqual([{ name: 'modem-fw', version: '2.0', purl: 'pkg:generic/modem-fw@2.0' }]);
  });

  it('refuses text that is not JSON and documents nested beyond the depth limit', async () => {
    await expect(parseSbom('{"bomFormat": ')).rejects.toMatchObject({
      code: 'sbom_invalid',
      message: /not JSON/,
    });
    let deep: Record<string, unknown> = { type: 'library', name: 'leaf' };
    for (let i = 0; i < 200; i++) deep = { type: 'library', name: `c${i}`, components: [deep] };
    await expect(
      parseSbom({ bomFormat: 'CycloneDX', specVersion: '1.6', components: [deep] }),
    ).rejects.toMatchObject({ code: 'sbom_invalid', message: /nested deeper than 128 levels/ });
  });
});
