import { z } from 'zod';

// Imported before anything that builds a schema. Zod compiles object parsers with `new Function` unless told not
// to; under the console's Content-Security-Policy (no 'unsafe-eval') even its probe for that is reported as a
// violation, so the console parses without it (fast enough for API answers).
z.config({ jitless: true });
