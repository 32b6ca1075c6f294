export { createDeviceService, hashToken, type DeviceService, type TokenCheck } from './device.service.ts';
export { deviceStatuses, type Device, type DeviceStatus } from './device.types.ts';
