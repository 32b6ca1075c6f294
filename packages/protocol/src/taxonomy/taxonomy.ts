/**
 * The fideslang default taxonomy (ethyca/fideslang, CC BY 4.0; see README.md): data uses (the purposes a
 * consumer such as an application declares), data categories and data subjects.
 *
 * @example
 * ```ts
 * import { isDataUse, dataUseProblem } from '@bulwark/protocol';
 * isDataUse('analytics.reporting'); // true
 * dataUseProblem('analytics.reportng'); // 'unknown data use "analytics.reportng" (did you mean analytics.reporting?)'
 * ```
 */
import { dataCategoryItems, dataCategoriesSource } from './data-categories.ts';
import { dataSubjectItems, dataSubjectsSource } from './data-subjects.ts';
import { dataUseItems, dataUsesSource } from './data-uses.ts';

export interface TaxonomyItem {
  /** Dotted path; its parent is the key without its last segment. */
  readonly key: string;
  readonly name: string;
  readonly parent: string | null;
}

export const dataUses: readonly TaxonomyItem[] = dataUseItems;
export const dataCategories: readonly TaxonomyItem[] = dataCategoryItems;
export const dataSubjects: readonly TaxonomyItem[] = dataSubjectItems;

/** Where each list comes from, with its licence (CC BY 4.0 asks for the attribution wherever it ships). */
export const taxonomySources = {
  dataUses: dataUsesSource,
  dataCategories: dataCategoriesSource,
  dataSubjects: dataSubjectsSource,
} as const;

/** Levenshtein distance, for suggestions only (keys are short). */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min((previous[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost);
    }
    previous = row;
  }
  return previous[b.length] ?? 0;
}

/** Up to three keys close to `key`: a small edit away, or sharing its last segment. */
export function closeMatches(items: readonly TaxonomyItem[], key: string): string[] {
  const last = key.split('.').pop() ?? key;
  const limit = Math.max(2, Math.floor(key.length / 4));
  return items
    .map((item) => ({ key: item.key, d: distance(item.key, key) }))
    .filter(({ key: k, d }) => d <= limit || (last.length > 2 && k.split('.').pop() === last))
    .sort((x, y) => x.d - y.d || x.key.localeCompare(y.key))
    .slice(0, 3)
    .map((m) => m.key);
}

function checker(items: readonly TaxonomyItem[], what: string) {
  const keys: ReadonlySet<string> = new Set(items.map((i) => i.key));
  const is = (key: string): boolean => keys.has(key);
  const problem = (key: string): string | undefined => {
    if (is(key)) return undefined;
    const close = closeMatches(items, key);
    const hint = close.length > 0 ? ` (did you mean ${close.join(', ')}?)` : '';
    return `unknown ${what} "${key}"${hint}: a key of the fideslang taxonomy such as ${items[1]?.key ?? items[0]?.key ?? ''}`;
  };
  return { is, problem };
}

const uses = checker(dataUses, 'data use');
const categories = checker(dataCategories, 'data category');
const subjects = checker(dataSubjects, 'data subject');

/** Whether `key` is a fideslang data use (`analytics.reporting`). */
export const isDataUse = uses.is;
/** Why `key` is not a data use (naming close matches), or undefined when it is one. */
export const dataUseProblem = uses.problem;
export const isDataCategory = categories.is;
export const dataCategoryProblem = categories.problem;
export const isDataSubject = subjects.is;
export const dataSubjectProblem = subjects.problem;
