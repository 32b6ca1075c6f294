import { PackageURL } from 'packageurl-js';
import { z } from 'zod';
import { BulwarkError } from '@bulwark/protocol';

/** CycloneDX spec versions whose JSON format we read (https://cyclonedx.org/specification/overview/). */
export const cycloneDxVersions = ['1.2', '1.3', '1.4', '1.5', '1.6'] as const;
const componentTypes = [
  'application',
  'framework',
  'library',
  'container',
  'platform',
  'operating-system',
  'device',
  'device-driver',
  'firmware',
  'file',
  'machine-learning-model',
  'data',
  'cryptographic-asset',
] as const;

export const MAX_SBOM_BYTES = 16 * 1024 * 1024;
const MAX_COMPONENTS = 100_000;

interface Component {
  type: string;
  name: string;
  version?: string | undefined;
  purl?: string | undefined;
  components?: Component[] | undefined;
}

const component: z.ZodType<Component> = z.lazy(() =>
  z
    .object({
      type: z.enum(componentTypes),
      name: z.string().min(1).max(1024),
      version: z.string().max(256).optional(),
      purl: z.string().max(4096).optional(),
      components: z.array(component).optional(),
    })
    .loose(),
);

/** The parts of the CycloneDX JSON schema we rely on; other fields are kept as uploaded. */
const bomSchema = z
  .object({
    bomFormat: z.literal('CycloneDX', { error: 'bomFormat must be "CycloneDX"' }),
    specVersion: z.enum(cycloneDxVersions, {
      error: `specVersion must be one of ${cycloneDxVersions.join(', ')}`,
    }),
    serialNumber: z
      .string()
      .regex(/^urn:uuid:[0-9a-fA-F-]{36}$/, 'serialNumber must be urn:uuid:<uuid>')
      .optional(),
    version: z.number().int().min(1).optional(),
    metadata: z.object({}).loose().optional(),
    components: z.array(component).optional(),
  })
  .loose();

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

/**
 * Validates a CycloneDX JSON SBOM (ECMA-424) and lists its components (nested ones included), each
 * with its package URL checked by the purl reference parser. Anything else is refused with the first
 * problem named.
 */
export function parseSbom(input: unknown): ParsedSbom {
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
    throw refuse('a CycloneDX JSON document is an object');
  const result = bomSchema.safeParse(doc);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue?.path.length ? issue.path.join('.') : '(document)';
    throw refuse(`${where}: ${issue?.message ?? 'invalid'}`);
  }
  const components: SbomComponent[] = [];
  const walk = (list: Component[] | undefined, at: string) => {
    list?.forEach((c, i) => {
      if (components.length >= MAX_COMPONENTS) throw refuse(`more than ${MAX_COMPONENTS} components`);
      let purl: string | null = null;
      if (c.purl !== undefined) {
        try {
          purl = PackageURL.fromString(c.purl).toString();
        } catch (err) {
          throw refuse(`${at}.${i}.purl: "${c.purl}" is not a package URL (${(err as Error).message})`);
        }
      }
      components.push({ name: c.name, version: c.version ?? null, purl });
      walk(c.components, `${at}.${i}.components`);
    });
  };
  walk(result.data.components, 'components');
  const text = JSON.stringify(doc);
  if (Buffer.byteLength(text) > MAX_SBOM_BYTES) throw refuse(`larger than ${MAX_SBOM_BYTES} bytes`);
  return { text, specVersion: result.data.specVersion, components };
}
