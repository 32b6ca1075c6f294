import { accessChecks } from './access.ts';
import { accountChecks } from './accounts.ts';
import { auditChecks } from './audit.ts';
import { deviceChecks } from './devices.ts';
import { firewallChecks } from './firewall.ts';
import { firmwareChecks, orgChecks } from './firmware.ts';
import { monitorChecks } from './monitor.ts';
import { netChecks } from './net.ts';
import { attestationChecks, physicalChecks } from './physical.ts';
import { pkiChecks } from './pki.ts';
import { appChecks, privacyChecks } from './privacy.ts';
import { riskChecks } from './risk.ts';
import { checkIds, type CheckDefinition } from './types.ts';

const byId = new Map<string, CheckDefinition>(
  [
    ...pkiChecks,
    ...netChecks,
    ...deviceChecks,
    ...accountChecks,
    ...auditChecks,
    ...monitorChecks,
    ...accessChecks,
    ...firewallChecks,
    ...firmwareChecks,
    ...orgChecks,
    ...privacyChecks,
    ...appChecks,
    ...attestationChecks,
    ...physicalChecks,
    ...riskChecks,
  ].map((c) => [c.id, c]),
);

/** Every automated check, one per id of `checkIds`, in that order (the catalog test holds it to that). */
export const checkCatalog: readonly CheckDefinition[] = checkIds.flatMap((id) => {
  const check = byId.get(id);
  return check ? [check] : [];
});

export {
  checkIds,
  type CheckDefinition,
  type CheckId,
  type CheckInput,
  type CheckOutcome,
  type Evidence,
} from './types.ts';
export { achievedLevel, reachesOtherDevices, zoneTarget } from './access.ts';
export { humanDuration } from './util.ts';
