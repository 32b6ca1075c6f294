export {
  compileDeviceAccess,
  mqttActions,
  type MqttAction,
  type Decision,
  type DeviceAccess,
  type DevicePrincipal,
} from './device-access.ts';
