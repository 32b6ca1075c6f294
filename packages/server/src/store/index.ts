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
export { getStoreMeta, putStoreMeta } from './store-meta.ts';
export { healthRoutes } from './health.routes.ts';
export { reportStoreOutages, STORE_OUTAGE_DETECTOR, type OutageAlerts } from './outage.ts';
