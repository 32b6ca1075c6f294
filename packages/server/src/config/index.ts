export {
  loadConfig,
  testConfig,
  describeConfig,
  envKeys,
  type Config,
  type LoadConfigOptions,
} from './config.ts';
export { parseDuration } from './duration.ts';
