/**
 * Operations: bulk device actions (revoke, quarantine, release, lost, decommission over ids, a group or a zone)
 * under dual control: at or above the baseline's approvals.bulkDevices a second person approves (docs/operations.md).
 */
export {
  createBulkOperations,
  permissionOf,
  personOf,
  type ApprovalSettings,
  type BulkDeps,
  type BulkOperations,
  type BulkRequest,
  type Principal,
} from './bulk.service.ts';
export { bulkRoutes } from './bulk.routes.ts';
export type { BulkOperationView, BulkAction, BulkStatus } from './bulk.types.ts';
