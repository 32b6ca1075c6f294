// The load generator runs as a child process (loadgen.ts); the harness only needs its types.
export type { LoadgenApi, OffenderResult, Target } from './loadgen.ts';
export type { TallySummary } from './fleet-stats.ts';
export { soakClasses, type MixedSoakResult, type MixedSoakStatus } from './soak-mixed.ts';
