import { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { BulwarkError } from '@bulwark/protocol';
import { describeTransform, type DataSchemaView } from '../privacy/index.ts';
import {
  common,
  iso,
  printJson,
  printTable,
  readDocument,
  withPlatform,
  type CommonOptions,
} from './context.ts';

const ACTOR = 'cli';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin)
    chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString('utf8');
}

/** A data schema document from a file (YAML or JSON) or `-` (standard input). */
export async function readSchemaDocument(file: string): Promise<unknown> {
  if (file !== '-') return readDocument(file);
  const text = await readStdin();
  try {
    return parseYaml(text) as unknown;
  } catch (err) {
    throw new BulwarkError(
      'validation_failed',
      `standard input is not valid YAML/JSON: ${(err as Error).message}`,
    );
  }
}

const retentionText = (ms: number | null): string => {
  if (ms === null) return '-';
  const units: [number, string][] = [
    [86_400_000, 'd'],
    [3_600_000, 'h'],
    [60_000, 'm'],
    [1000, 's'],
  ];
  const unit = units.find(([size]) => ms % size === 0);
  return unit ? `${ms / unit[0]}${unit[1]}` : `${ms}ms`;
};

function printSchema(view: DataSchemaView): void {
  process.stdout.write(
    `data schema ${view.name} v${view.version}: ${view.topic} (updated ${iso(view.updatedAt)} by ${view.updatedBy})\n`,
  );
  printTable(
    view.fields.map((f) => ({
      field: f.path,
      category: f.category,
      personal: f.special ? 'special' : f.personal ? 'yes' : 'no',
      uses: f.uses === null ? 'all' : f.uses.join(','),
      basis: f.lawfulBasis ?? '-',
      retention: retentionText(f.retentionMs),
      transform: describeTransform(f.transform),
      store: f.store,
    })),
    ['field', 'category', 'personal', 'uses', 'basis', 'retention', 'transform', 'store'],
  );
}

function putCommand(): Command {
  return common(
    new Command('put')
      .argument('<file>', 'the data schema, YAML or JSON (docs/privacy.md); - for standard input')
      .description('create or replace a data schema'),
  ).action(async (file: string, o: CommonOptions) => {
    const document = await readSchemaDocument(file);
    const put = await withPlatform(o, (p) => p.privacy.putSchema(document, ACTOR));
    if (o.json) return printJson(put);
    const { name, version, topic } = put.schema;
    process.stdout.write(
      `data schema ${name} ${put.created ? 'created' : 'updated'} (v${version}, ${topic})\n`,
    );
    for (const change of put.changes) process.stdout.write(`  ${change}\n`);
  });
}

function listCommand(): Command {
  return common(new Command('list').description('data schemas')).action(async (o: CommonOptions) => {
    const schemas = await withPlatform(o, (p) => p.privacy.listSchemas());
    if (o.json) return printJson(schemas);
    printTable(
      schemas.map((s) => ({
        name: s.name,
        topic: s.topic,
        version: String(s.version),
        fields: String(s.fields.length),
        personal: String(s.fields.filter((f) => f.personal).length),
        updated: iso(s.updatedAt),
      })),
      ['name', 'topic', 'version', 'fields', 'personal', 'updated'],
    );
  });
}

function showCommand(): Command {
  return common(
    new Command('show')
      .argument('<name>')
      .description('a data schema and the effective settings of each field'),
  ).action(async (name: string, o: CommonOptions) => {
    const view = await withPlatform(o, (p) => p.privacy.getSchema(name));
    if (o.json) return printJson(view);
    printSchema(view);
  });
}

interface TestOptions extends CommonOptions {
  purpose?: string;
  device?: string;
}

function testCommand(): Command {
  return common(
    new Command('test')
      .argument('<topic>', 'the topic a device would publish to')
      .argument('<payload>', 'the payload (JSON text)')
      .description(
        'what the broker would do with a payload: refuse it (exit 1), or what it keeps and delivers',
      ),
  )
    .option('--purpose <key>', "the receiving consumer's purpose (a fideslang data use); default: a device")
    .option('--device <id>', 'the publishing device (for its linked data subject)')
    .action(async (topic: string, payload: string, o: TestOptions) => {
      const result = await withPlatform(o, (p) =>
        p.privacy.testSchema({ topic, payload, purpose: o.purpose ?? null, device: o.device }),
      );
      if (!result.valid) process.exitCode = 1;
      if (o.json) return printJson(result);
      if (result.schema === null) {
        process.stdout.write('no data schema matches: delivered and kept as sent\n');
        return;
      }
      if (!result.valid) {
        process.stdout.write(`refused by ${result.schema}: ${result.reason ?? 'invalid'}\n`);
        return;
      }
      process.stdout.write(`valid (${result.schema}), subject ${result.subject ?? 'none'}\n`);
      process.stdout.write(`kept: ${JSON.stringify(result.kept)}\n`);
      process.stdout.write(
        `${o.purpose ? `purpose ${o.purpose}` : 'a device'} receives: ${result.view === null ? 'nothing (withheld)' : JSON.stringify(result.view)}\n`,
      );
    });
}

function removeCommand(): Command {
  return common(
    new Command('remove')
      .argument('<name>')
      .description("remove a data schema: its topic's payloads are no longer validated nor transformed"),
  ).action(async (name: string, o: CommonOptions) => {
    const removed = await withPlatform(o, (p) => p.privacy.removeSchema(name, ACTOR));
    if (o.json) return printJson(removed);
    process.stdout.write(`data schema ${removed.name} removed (${removed.topic})\n`);
  });
}

export function dataSchemaCommands(): Command {
  return new Command('data-schema')
    .description('data schemas: classified fields of device payloads per topic pattern (docs/privacy.md)')
    .addCommand(putCommand())
    .addCommand(listCommand())
    .addCommand(showCommand())
    .addCommand(testCommand())
    .addCommand(removeCommand());
}
