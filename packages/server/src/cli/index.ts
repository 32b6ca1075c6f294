export { runCli, buildCli } from './main.ts';
