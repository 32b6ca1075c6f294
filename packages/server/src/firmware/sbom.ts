import type * as CycloneDx from '@cyclonedx/cyclonedx-library';
import { PackageURL } from 'packageurl-js';
import { BulwarkError } from '@bulwark/protocol';

/**
 * CycloneDX spec versions whose JSON format we read: those the CycloneDX project's own library ships a strict
 * JSON schema for (https://cyclonedx.org/specification/overview/; 1.0 and 1.1 had XML only).
 */
export const cycloneDxVersions = ['1.2', '1.3', '1.4', '1.5', '1.6', '1.7'] as const;
type CycloneDxVersion = (typeof cycloneDxVersions)[number];

export const MAX_SBOM_BYTES = 16 * 1024 * 1024;
const MAX_COMPONENTS = 100_000;
/** Deeper documents are refused before any recursive walk (the schema validator's included). */
const MAX_DEPTH = 128;

export interface SbomComponent {
  name: string;
  version: string | null;
  /** Canonical package URL, when the component has one. */
  purl: string | null;
}

export interface ParsedSbom {
  /** The document as stored (compact JSON). */
  text: string;
  specVersion: string;
  components: SbomComponent[];
}

const refuse = (message: string) => new BulwarkError('sbom_invalid', `SBOM refused: ${message}`);

// Loaded on first use: every CLI command loads this module, and the library takes a tenth of a second to load.
let library: Promise<typeof CycloneDx> | undefined;
const cycloneDx = () => (library ??= import('@cyclonedx/cyclonedx-library'));

/** One validator per spec version, compiled on first use (compiling a schema takes a while). */
const validators = new Map<CycloneDxVersion, CycloneDx.Validation.JsonStrictValidator>();
async function validatorFor(version: CycloneDxVersion): Promise<CycloneDx.Validation.JsonStrictValidator> {
  let validator = validators.get(version);
  if (!validator) {
    const { Spec, Validation } = await cycloneDx();
    const specVersionOf: Record<CycloneDxVersion, CycloneDx.Spec.Version> = {
      '1.2': Spec.Version.v1dot2,
      '1.3': Spec.Version.v1dot3,
      '1.4': Spec.Version.v1dot4,
      '1.5': Spec.Version.v1dot5,
      '1.6': Spec.Version.v1dot6,
      '1.7': Spec.Version.v1dot7,
    };
    validator = new Validation.JsonStrictValidator(specVersionOf[version]);
    validators.set(version, validator);
  }
  return validator;
}

/** What the library's ajv-based validator reports per failure (its type is `any`). */
interface SchemaError {
  instancePath: string;
  keyword: string;
  message?: string | undefined;
  params: Record<string, unknown>;
}
function isSchemaError(e: unknown): e is SchemaError {
  return (
    typeof e === 'object' &&
    e !== null &&
    typeof (e as { instancePath?: unknown }).instancePath === 'string' &&
    typeof (e as { keyword?: unknown }).keyword === 'string'
  );
}

/** A JSON Pointer (RFC 6901) for messages: `/` is the whole document. */
const pointer = (p: string) => p || '/';
const escapeToken = (t: string | number) => String(t).replace(/~/g, '~0').replace(/\//g, '~1');

/**
 * The most telling of the validator's errors. Under `oneOf`/`anyOf` ajv reports every branch's failure and
 * then the combinator's own; the deepest path names what is actually wrong (e.g. the license id, not the
 * license list).
 */
function describe(errors: SchemaError[]): string {
  const best = [...errors].sort(
    (a, b) => b.instancePath.split('/').length - a.instancePath.split('/').length,
  )[0];
  if (!best) return '/: does not match the CycloneDX schema';
  let where = best.instancePath;
  let detail = best.message ?? `fails ${best.keyword}`;
  const { params } = best;
  if (best.keyword === 'additionalProperties' && typeof params.additionalProperty === 'string') {
    where = `${where}/${escapeToken(params.additionalProperty)}`;
    detail = 'is not a property the schema allows here';
  } else if (best.keyword === 'required' && typeof params.missingProperty === 'string') {
    where = `${where}/${escapeToken(params.missingProperty)}`;
    detail = 'is required';
  } else if (best.keyword === 'enum' && Array.isArray(params.allowedValues)) {
    const allowed = params.allowedValues as unknown[];
    // The SPDX license list has hundreds of ids: name a few, not all.
    detail =
      allowed.length <= 16
        ? `must be one of ${allowed.map((v) => JSON.stringify(v)).join(', ')}`
        : `is not one of the ${allowed.length} values the schema allows (see the CycloneDX/SPDX lists)`;
  }
  return `${pointer(where)}: ${detail}`;
}

/** Refuses documents nested deeper than {@link MAX_DEPTH}, without recursion. */
function checkDepth(doc: unknown): void {
  const stack: [unknown, number][] = [[doc, 0]];
  while (stack.length > 0) {
    const [value, depth] = stack.pop() as [unknown, number];
    if (typeof value !== 'object' || value === null) continue;
    if (depth > MAX_DEPTH) throw refuse(`nested deeper than ${MAX_DEPTH} levels`);
    for (const child of Array.isArray(value) ? value : Object.values(value)) stack.push([child, depth + 1]);
  }
}

/** Hex digits of each fixed-size hash algorithm (the schema accepts any of the lengths for any algorithm). */
const hashHexLength: Record<string, number> = {
  MD5: 32,
  'SHA-1': 40,
  'SHA-256': 64,
  'SHA-384': 96,
  'SHA-512': 128,
  'SHA3-256': 64,
  'SHA3-384': 96,
  'SHA3-512': 128,
  'BLAKE2b-256': 64,
  'BLAKE2b-384': 96,
  'BLAKE2b-512': 128,
  // BLAKE3 has a variable output length.
};

/** A hash whose content is not as long as its algorithm's digest cannot be the digest it claims to be. */
function checkHash(value: Record<string, unknown>, at: string): void {
  const { alg, content } = value;
  if (typeof alg !== 'string' || typeof content !== 'string') return;
  const expected = hashHexLength[alg];
  if (expected !== undefined && content.length !== expected)
    throw refuse(`${at}/content: a ${alg} digest is ${expected} hex digits, not ${content.length}`);
}

/**
 * What the schema cannot express (ECMA-424 / CycloneDX "bom-ref"): every `bom-ref` is unique within the BOM,
 * each dependency names one of them (or another BOM through a BOM-Link, `urn:cdx:…`), and every hash has the
 * length of its algorithm's digest. Walked in document order, without recursion.
 */
function checkReferences(doc: Record<string, unknown>): void {
  const refs = new Map<string, string>();
  const stack: [unknown, string, boolean][] = [[doc, '', false]];
  while (stack.length > 0) {
    const [value, at, isHash] = stack.pop() as [unknown, string, boolean];
    if (typeof value !== 'object' || value === null) continue;
    if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) stack.push([value[i], `${at}/${i}`, isHash]);
      continue;
    }
    const record = value as Record<string, unknown>;
    if (isHash) checkHash(record, at);
    const ref = record['bom-ref'];
    if (typeof ref === 'string') {
      const first = refs.get(ref);
      if (first !== undefined)
        throw refuse(`${at}/bom-ref: "${ref}" is already the bom-ref of ${first} (bom-refs are unique)`);
      refs.set(ref, at || '/');
    }
    const entries = Object.entries(record);
    for (let i = entries.length - 1; i >= 0; i--) {
      const [key, child] = entries[i] as [string, unknown];
      stack.push([child, `${at}/${escapeToken(key)}`, key === 'hashes']);
    }
  }
  const dependencies = Array.isArray(doc.dependencies) ? (doc.dependencies as unknown[]) : [];
  const known = (ref: unknown) => typeof ref !== 'string' || refs.has(ref) || ref.startsWith('urn:cdx:');
  dependencies.forEach((d, i) => {
    if (typeof d !== 'object' || d === null) return;
    const dep = d as { ref?: unknown; dependsOn?: unknown; provides?: unknown };
    if (!known(dep.ref))
      throw refuse(`/dependencies/${i}/ref: "${String(dep.ref)}" is not the bom-ref of anything in this BOM`);
    for (const list of ['dependsOn', 'provides'] as const) {
      const items = dep[list];
      if (!Array.isArray(items)) continue;
      items.forEach((ref: unknown, j) => {
        if (!known(ref))
          throw refuse(
            `/dependencies/${i}/${list}/${j}: "${String(ref)}" is not the bom-ref of anything in this BOM`,
          );
      });
    }
  });
}

/** The part of a component this module reads; the schema has checked the rest. */
interface ComponentView {
  name: string;
  version?: string | undefined;
  purl?: string | undefined;
  components?: ComponentView[] | undefined;
}

/**
 * Validates a CycloneDX JSON SBOM (ECMA-424) strictly against the CycloneDX project's own JSON schema for the
 * declared `specVersion` (@cyclonedx/cyclonedx-library, `Validation.JsonStrictValidator`), then checks what
 * the schema cannot (unique bom-refs, dependency references, package URLs by the purl reference parser) and
 * lists the components, nested ones included. Anything else is refused naming the JSON Pointer that failed.
 */
export async function parseSbom(input: unknown): Promise<ParsedSbom> {
  let doc = input;
  if (typeof input === 'string' || Buffer.isBuffer(input)) {
    const text = input.toString();
    if (Buffer.byteLength(text) > MAX_SBOM_BYTES) throw refuse(`larger than ${MAX_SBOM_BYTES} bytes`);
    try {
      doc = JSON.parse(text) as unknown;
    } catch (err) {
      throw refuse(`not JSON (${(err as Error).message})`);
    }
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    throw refuse('/: a CycloneDX JSON document is an object');
  const bom = doc as Record<string, unknown>;
  const text = JSON.stringify(bom);
  if (Buffer.byteLength(text) > MAX_SBOM_BYTES) throw refuse(`larger than ${MAX_SBOM_BYTES} bytes`);
  // The two fields that choose the schema: checked first, as every CycloneDX schema requires them.
  if (bom.bomFormat !== 'CycloneDX') throw refuse('/bomFormat: must be "CycloneDX"');
  const specVersion = bom.specVersion;
  if (typeof specVersion !== 'string' || !(cycloneDxVersions as readonly string[]).includes(specVersion))
    throw refuse(
      `/specVersion: must be one of ${cycloneDxVersions.map((v) => `"${v}"`).join(', ')} (a string)`,
    );
  checkDepth(bom);
  const result: unknown = await (await validatorFor(specVersion as CycloneDxVersion)).validate(text);
  if (result !== null) {
    const errors = Array.isArray(result) ? result.filter(isSchemaError) : [];
    throw refuse(describe(errors));
  }
  checkReferences(bom);

  const components: SbomComponent[] = [];
  const walk = (list: ComponentView[] | undefined, at: string) => {
    list?.forEach((c, i) => {
      if (components.length >= MAX_COMPONENTS) throw refuse(`more than ${MAX_COMPONENTS} components`);
      let purl: string | null = null;
      if (c.purl !== undefined) {
        try {
          purl = PackageURL.fromString(c.purl).toString();
        } catch (err) {
          throw refuse(`${at}/${i}/purl: "${c.purl}" is not a package URL (${(err as Error).message})`);
        }
      }
      components.push({ name: c.name, version: c.version ?? null, purl });
      walk(c.components, `${at}/${i}/components`);
    });
  };
  // The schema has checked `components` (names, versions and purls are strings).
  walk((bom as { components?: ComponentView[] }).components, '/components');
  return { text, specVersion, components };
}
