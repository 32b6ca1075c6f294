export type { BenchContext, SystemRun } from './context.ts';
export { boundedRun } from './bounded-run.ts';
export { deviceId, ensureFixture, OBSERVER_APP, type Fixture } from './fixture.ts';
export { LoadgenPool, startLoadgen, type LoadgenHandle } from './loadgen-pool.ts';
export { describeMachine, type Machine } from './machine.ts';
export { ensureMosquitto } from './mosquitto.ts';
export {
  fixtureSize,
  flooderIndex,
  observerIndex,
  offenderIndex,
  parsePlan,
  pingerIndex,
  probeIndex,
  scenarioNames,
  type Plan,
  type ScenarioName,
} from './plan.ts';
export { MachineSampler, ProcessSampler, readRss } from './proc-stats.ts';
export { sampleWallTimes, summarizeProfile, type CpuProfile, type ProfileSummary } from './profile.ts';
export {
  buildReport,
  writeReport,
  writeResultFiles,
  type NamedProfile,
  type Report,
  type SystemInfo,
} from './report.ts';
export { Results, type MetricSpec, type Target as MetricTarget } from './results.ts';
export { summarize, percentile, median, type LatencySummary } from './stats.ts';
export { startSystem, systemNames, type SystemName, type SystemUnderTest } from './systems.ts';
