import type { Target } from '../load/index.ts';
import type { Fixture } from './fixture.ts';
import type { LoadgenPool } from './loadgen-pool.ts';
import type { Plan } from './plan.ts';
import type { MachineSampler, ProcessSampler } from './proc-stats.ts';
import type { Results } from './results.ts';
import type { SystemUnderTest } from './systems.ts';

/** What every scenario gets from the harness. */
export interface BenchContext {
  plan: Plan;
  fixture: Fixture;
  pool: LoadgenPool;
  results: Results;
  log: (line: string) => void;
  /** CPU used by processes outside the bench, to flag figures measured on a busy machine. */
  machine: MachineSampler;
  /** Facts seen along the way, for the report (the negotiated TLS version and cipher). */
  observed: { tls: string };
}

/** A running system and the samplers watching it and the load generators. */
export interface SystemRun {
  system: SystemUnderTest;
  broker: ProcessSampler;
  target: Target;
}
