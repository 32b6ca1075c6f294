import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  dataCategories,
  dataCategoryProblem,
  dataSubjectProblem,
  dataSubjects,
  dataUseProblem,
  dataUses,
  isDataCategory,
  isDataSubject,
  isDataUse,
  taxonomySources,
} from './taxonomy.ts';

const shipped = (name: string) =>
  JSON.parse(readFileSync(new URL(`./fideslang-${name}.json`, import.meta.url), 'utf8')) as {
    source: string;
    items: unknown[];
  };

describe('fideslang taxonomy', () => {
  it('holds exactly the items of the shipped JSON files, with their attribution', () => {
    for (const [name, items, source] of [
      ['data_uses', dataUses, taxonomySources.dataUses],
      ['data_categories', dataCategories, taxonomySources.dataCategories],
      ['data_subjects', dataSubjects, taxonomySources.dataSubjects],
    ] as const) {
      const file = shipped(name);
      expect(items).toEqual(file.items);
      expect(source).toBe(file.source);
      expect(source).toContain('CC BY 4.0');
    }
  });

  it('knows data uses, categories and subjects', () => {
    expect(isDataUse('analytics.reporting')).toBe(true);
    expect(isDataUse('essential.service.operations')).toBe(true);
    expect(isDataUse('analytics.reportin')).toBe(false);
    expect(isDataCategory('user.location.imprecise')).toBe(true);
    expect(isDataSubject('customer')).toBe(true);
    expect(dataUseProblem('analytics.reporting')).toBeUndefined();
  });

  it('names close matches for an unknown key', () => {
    expect(dataUseProblem('analytics.reportng')).toContain('did you mean analytics.reporting');
    expect(dataUseProblem('reporting')).toContain('analytics.reporting');
    expect(dataUseProblem('zzzz')).toMatch(/^unknown data use "zzzz": a key of the fideslang taxonomy/);
    expect(dataCategoryProblem('user.locaton')).toContain('user.location');
    expect(dataSubjectProblem('customers')).toContain('customer');
  });
});
