import { fileURLToPath } from 'node:url';

export { consoleRoutes, isConsoleNavigation, CONSOLE_CSP, type ConsoleRoutes } from './console.routes.ts';

/** Where `npm run build` puts the console (packages/console/dist), found from this file's own location. */
export const CONSOLE_DIST = fileURLToPath(new URL('../../../console/dist', import.meta.url));
