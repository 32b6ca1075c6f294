export { detectionLatency, detectionNotApplicable } from './detection-latency.ts';
export { fleetRound } from './fleet.ts';
export { idleMemory } from './idle-memory.ts';
export { microBenchmarks } from './micro.ts';
export { noisyNeighbour } from './noisy-neighbour.ts';
export { observerFanIn } from './observer-fan-in.ts';
export { singleInFlight } from './single-in-flight.ts';
export { soak } from './soak.ts';
export { cliStartup } from './cli-startup.ts';
