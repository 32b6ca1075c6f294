/**
 * Re-renders a result's markdown from its JSON (after a change to the report's layout):
 * `node --import tsx bench/render.ts bench/results/full.json`.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { writeReport, type Report } from './harness/index.ts';

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: node --import tsx bench/render.ts bench/results/<mode>.json\n');
  process.exit(2);
}
const report = JSON.parse(readFileSync(file, 'utf8')) as Report;
const written = await writeReport(report, path.dirname(file));
process.stdout.write(`wrote ${written.md}\n`);
