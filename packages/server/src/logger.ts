import { pino, type Logger } from 'pino';
import type { Config } from './config/index.ts';

/** Structured JSON logs on stderr; stdout stays for what the user asked to see. */
export function createLogger(level: Config['logLevel']): Logger {
  return pino({ level, base: { service: 'bulwark' } }, pino.destination(2));
}

export type { Logger };
