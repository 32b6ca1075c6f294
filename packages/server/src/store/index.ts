export {
  openStore,
  migrate,
  isUniqueViolation,
  isBusy,
  dialects,
  type Store,
  type DialectName,
} from './store.ts';
export {
  isConnectionLoss,
  storeStates,
  type StoreHealth,
  type StoreState,
  type StoreHealthListener,
} from './availability.ts';
export type * from './schema.ts';
