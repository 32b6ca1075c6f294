/**
 * MQTT 5.0 reason codes the core sends (§2.4), and the MQTT 3.1.1 CONNACK return code of each (§3.2.2.3):
 * hooks answer in MQTT 5 terms, the core speaks the connection's version.
 */
export const RC = {
  success: 0x00,
  grantedQos1: 0x01,
  grantedQos2: 0x02,
  disconnectWithWill: 0x04,
  noMatchingSubscribers: 0x10,
  noSubscriptionExisted: 0x11,
  continueAuthentication: 0x18,
  reAuthenticate: 0x19,
  unspecified: 0x80,
  malformed: 0x81,
  protocolError: 0x82,
  implementationSpecific: 0x83,
  unsupportedProtocolVersion: 0x84,
  clientIdNotValid: 0x85,
  badUserNameOrPassword: 0x86,
  notAuthorized: 0x87,
  serverUnavailable: 0x88,
  serverBusy: 0x89,
  banned: 0x8a,
  serverShuttingDown: 0x8b,
  badAuthenticationMethod: 0x8c,
  keepAliveTimeout: 0x8d,
  sessionTakenOver: 0x8e,
  topicFilterInvalid: 0x8f,
  topicNameInvalid: 0x90,
  packetIdInUse: 0x91,
  packetIdNotFound: 0x92,
  receiveMaximumExceeded: 0x93,
  topicAliasInvalid: 0x94,
  packetTooLarge: 0x95,
  quotaExceeded: 0x97,
  payloadFormatInvalid: 0x99,
  sharedSubscriptionsNotSupported: 0x9e,
  subscriptionIdsNotSupported: 0xa1,
  maximumConnectTime: 0xa0,
} as const;

/** MQTT 3.1.1 CONNACK return codes (§3.2.2.3). */
export const V3_CONNACK = {
  accepted: 0,
  unacceptableProtocolVersion: 1,
  identifierRejected: 2,
  serverUnavailable: 3,
  badUserNameOrPassword: 4,
  notAuthorized: 5,
} as const;

/**
 * The MQTT 3.1.1 CONNACK return code for an MQTT 5 CONNACK reason code. 3.1.1 has five refusals: a code
 * that says "try later" becomes 3 (server unavailable), one about credentials 4, the client id 2, the
 * version 1, and any other refusal 5 (not authorized), the one that makes a client stop and report.
 */
export function v3ConnackOf(reasonCode: number): number {
  switch (reasonCode) {
    case RC.success:
      return V3_CONNACK.accepted;
    case RC.unsupportedProtocolVersion:
      return V3_CONNACK.unacceptableProtocolVersion;
    case RC.clientIdNotValid:
      return V3_CONNACK.identifierRejected;
    case RC.serverUnavailable:
    case RC.serverBusy:
    case RC.serverShuttingDown:
    case RC.quotaExceeded:
    case 0x9f: // connection rate exceeded
      return V3_CONNACK.serverUnavailable;
    case RC.badUserNameOrPassword:
    case RC.badAuthenticationMethod:
      return V3_CONNACK.badUserNameOrPassword;
    default:
      return V3_CONNACK.notAuthorized;
  }
}
