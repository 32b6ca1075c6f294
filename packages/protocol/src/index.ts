export * from './errors.ts';
export * from './topics.ts';
export * from './est.ts';
export * from './heartbeat.ts';
export * from './firmware.ts';
export * from './metrics.ts';
export * from './common.ts';
