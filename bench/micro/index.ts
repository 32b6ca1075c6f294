// micro.ts runs as a child process; the harness only needs its types.
export type { MicroApi, PolicyResult } from './micro.ts';
