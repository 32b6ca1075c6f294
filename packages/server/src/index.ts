export {
  createPlatform,
  createServerPlatform,
  startServer,
  type Platform,
  type RunningServer,
  type ServerPlatform,
} from './platform.ts';
export { loadConfig, testConfig, type Config } from './config/index.ts';
export { createLogger } from './logger.ts';
