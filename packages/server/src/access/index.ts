export {
  createAccessService,
  attachmentKinds,
  ANONYMOUS_GROUP,
  type AccessService,
  type AccessIdentity,
  type AttachmentKind,
} from './access.service.ts';
export { accessRoutes } from './access.routes.ts';
