import { createBaselineDetector } from './baseline-anomaly.ts';
import { behaviours } from './behaviours.ts';
import { clonedIdentity } from './cloned-identity.ts';
import { deviceSilent } from './device-silent.ts';
import { firmwareDowngrade } from './firmware-downgrade.ts';
import {
  complianceRegression,
  firewallBan,
  privacyRequestOverdue,
  rolloutPaused,
  vulnerableFirmware,
} from './fleet.ts';
import { createGuessingDetector } from './guessing.ts';
import { newSourceNetwork } from './new-source-network.ts';
import { newTopic } from './new-topic.ts';
import { payloadFlood } from './payload-flood.ts';
import { attestationFailed, createTamperReportDetector, locationJump, lostDeviceSeen } from './physical.ts';
import { riskRaised, riskReviewDue } from './risk.ts';
import { createTopicScanDetector } from './topic-scan.ts';
import { unusualHour } from './unusual-hour.ts';

export { describeRules } from './behaviours.ts';
export type {
  AnyDetector,
  Clear,
  Detector,
  DetectorContext,
  DeviceTick,
  EngineSettings,
  Finding,
  Json,
  Raise,
} from './detector.ts';

/**
 * The detectors, in the order they see an event and a tick (the order of their findings when several fire
 * at once): a connection is judged for a clone before the rules count it, and the novelty detectors see
 * the device's history before it.
 */
export function createDetectors(startedAt: number) {
  const baseline = createBaselineDetector(startedAt);
  const list = [
    createGuessingDetector(),
    clonedIdentity,
    newTopic,
    behaviours,
    newSourceNetwork,
    unusualHour,
    createTopicScanDetector(),
    deviceSilent,
    payloadFlood,
    baseline,
    firmwareDowngrade,
    firewallBan,
    rolloutPaused,
    vulnerableFirmware,
    privacyRequestOverdue,
    complianceRegression,
    createTamperReportDetector(),
    locationJump,
    attestationFailed,
    lostDeviceSeen,
    riskRaised,
    riskReviewDue,
  ];
  return { list, baselines: baseline.baselines };
}
