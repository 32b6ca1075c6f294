export {
  createDeviceService,
  hashToken,
  requireStatus,
  statusRefusal,
  type DeviceService,
  type TokenCheck,
} from './device.service.ts';
export {
  deviceStatuses,
  statusAllows,
  type Device,
  type DeviceStatus,
  type DeviceOperation,
} from './device.types.ts';
export { deviceRoutes, type DeviceRoutesDeps } from './device.routes.ts';
