export {
  loadConfig,
  testConfig,
  describeConfig,
  redactDatabaseUrl,
  envKeys,
  type Config,
  type LoadConfigOptions,
} from './config.ts';
export { parseDuration } from './duration.ts';
