export { createPlatform, startServer, type Platform, type RunningServer } from './platform.ts';
export { loadConfig, testConfig, type Config } from './config/index.ts';
export { createLogger } from './logger.ts';
