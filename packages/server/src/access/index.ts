export {
  createAccessService,
  attachmentKinds,
  ANONYMOUS_GROUP,
  type AccessService,
  type AccessComplianceFacts,
  type AccessIdentity,
  type AppAccessIdentity,
  type AppSimulateInput,
  type SimulatedApp,
  type AttachmentKind,
} from './access.service.ts';
export { accessRoutes } from './access.routes.ts';
