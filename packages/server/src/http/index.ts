export { createHttpApp, type HttpAppOptions, type HttpTls } from './app.ts';
export { toProblem, fromFrameworkError, type Problem } from './problem.ts';
