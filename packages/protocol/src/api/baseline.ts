/**
 * The organisation baseline (compliance): the one YAML policy document every compliance check reads
 * (`baselineDocumentSchema`), versioned. Read the one in force, validate or diff a candidate, apply it (every
 * change an event with its diff), list the versions applied.
 *
 * @example
 * ```ts
 * import { api } from '@bulwark/protocol';
 * const res = await fetch('/api/v1/baseline', { method: 'PUT', body: JSON.stringify({ document: yaml }) });
 * const { version, changes } = api.baseline.applyBaseline.response[200].parse(await res.json());
 * ```
 */
import { z } from 'zod';
import { contract } from './contract.ts';

const tags = ['compliance'] as const;

/** A baseline document as YAML (or JSON, which is YAML) text. */
const documentBody = z.object({
  document: z
    .string()
    .min(1)
    .max(262_144)
    .describe('the baseline as YAML text (docs/compliance.md); JSON is YAML too'),
});

/** One problem of a document: the dotted path it is at, the line (1-based; null: not in the text). */
export const baselineError = z.object({
  path: z.string().describe('dotted path, e.g. accounts.dormantAfter (empty: the document itself)'),
  message: z.string(),
  line: z.number().int().nullable(),
});

/** One difference between two baselines (defaults filled in, durations in milliseconds). */
export const baselineChange = z.object({
  path: z.string().describe('dotted path, e.g. accounts.dormantAfter'),
  before: z.unknown().optional().describe('absent: the path was added'),
  after: z.unknown().optional().describe('absent: the path was removed'),
});

export const baselineView = z.object({
  version: z.number().int().describe('0: the built-in baseline (none applied yet)'),
  name: z.string(),
  document: z.string().describe('the document as applied (version 0: the built-in defaults as YAML)'),
  baseline: z
    .record(z.string(), z.unknown())
    .describe('the baseline the checks read: every default filled in, durations in milliseconds'),
  sha256: z.string().describe('hex SHA-256 of the document text'),
  appliedAt: z.number().int().nullable(),
  appliedBy: z.string().nullable(),
});

export const baselineVersion = z.object({
  version: z.number().int(),
  name: z.string(),
  sha256: z.string(),
  appliedAt: z.number().int(),
  appliedBy: z.string(),
});

export const getBaseline = contract({
  method: 'GET',
  path: '/api/v1/baseline',
  summary: 'The baseline in force: its document, and what the checks read from it',
  tags,
  access: 'compliance:read',
  response: { 200: baselineView },
});

export const applyBaseline = contract({
  method: 'PUT',
  path: '/api/v1/baseline',
  summary:
    'Apply a baseline document (a new version and a compliance.baseline_applied event with the diff; the same content again changes nothing). Errors: a 400 problem listing every error with its path and line',
  tags,
  access: 'baseline:write',
  body: documentBody,
  response: {
    200: z.object({
      version: z.number().int().describe('the version in force now (unchanged when nothing changed)'),
      name: z.string(),
      changes: z.array(baselineChange).describe('empty: the document was the baseline in force'),
    }),
  },
});

export const validateBaseline = contract({
  method: 'POST',
  path: '/api/v1/baseline/validate',
  summary: 'Check a baseline document without applying it: every error with its path and line',
  tags,
  access: 'compliance:read',
  body: documentBody,
  response: {
    200: z.object({
      valid: z.boolean(),
      name: z.string().nullable().describe('the baseline name when valid'),
      errors: z.array(baselineError),
    }),
  },
});

export const diffBaseline = contract({
  method: 'POST',
  path: '/api/v1/baseline/diff',
  summary:
    'What applying a document would change, path by path, sorted by path. An invalid document is a 400 problem listing its errors',
  tags,
  access: 'compliance:read',
  body: documentBody,
  response: { 200: z.object({ changes: z.array(baselineChange) }) },
});

export const baselineHistory = contract({
  method: 'GET',
  path: '/api/v1/baseline/history',
  summary: 'The versions applied, newest first (none: the built-in baseline is in force)',
  tags,
  access: 'compliance:read',
  query: z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) }),
  response: { 200: z.object({ versions: z.array(baselineVersion) }) },
});
