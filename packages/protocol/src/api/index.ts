/**
 * The API contracts, one per operation, grouped by area: `api.devices.list`, `api.firewall.ban`, …
 * Routes are registered from them (server `defineRoute`), the OpenAPI document is generated from them, and
 * the CLI's `--json` output is checked against their response schemas.
 */
import * as access from './access.ts';
import * as apps from './apps.ts';
import * as attestation from './attestation.ts';
import * as audit from './audit.ts';
import * as baseline from './baseline.ts';
import * as compliance from './compliance.ts';
import * as devices from './devices.ts';
import * as firmware from './firmware.ts';
import * as firewall from './firewall.ts';
import * as health from './health.ts';
import * as meta from './meta.ts';
import * as monitor from './monitor.ts';
import * as notify from './notify.ts';
import * as operations from './operations.ts';
import * as pki from './pki.ts';
import * as privacy from './privacy.ts';
import * as risk from './risk.ts';
import * as riskRegister from './risk-register.ts';
import * as telemetry from './telemetry.ts';
import * as users from './users.ts';

export const api = {
  access,
  apps,
  attestation,
  audit,
  baseline,
  compliance,
  devices,
  firewall,
  firmware,
  health,
  meta,
  monitor,
  notify,
  operations,
  pki,
  privacy,
  risk,
  riskRegister,
  telemetry,
  users,
} as const;

export * from './contract.ts';
export { duration as durationSchema, severity as severitySchema, epochMs } from './shared.ts';
export {
  attestationReasons,
  attestationStandings,
  trustTiers,
  type AttestationReason,
  type AttestationStanding,
  type PcrValues,
  type TrustTier,
} from './attestation.ts';
