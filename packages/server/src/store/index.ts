export {
  openStore,
  migrate,
  isUniqueViolation,
  isBusy,
  dialects,
  type Store,
  type DialectName,
} from './store.ts';
export type * from './schema.ts';
