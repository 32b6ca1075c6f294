import type { RegisterReport } from './register.html.ts';
import type { Register } from './register.service.ts';

/** Recent history entries per risk in the report. */
const HISTORY_PER_RISK = 20;

/**
 * The register report's data (HTML and JSON, API and CLI): every risk, the zones' security levels, recent
 * history per risk and the baseline's risk settings.
 */
export async function registerReport(register: Register): Promise<RegisterReport> {
  const [risks, zones, baseline] = await Promise.all([
    register.list(),
    register.zones(),
    register.riskSettings(),
  ]);
  const history: RegisterReport['history'] = {};
  for (const r of risks) history[r.id] = (await register.get(r.id)).history.slice(0, HISTORY_PER_RISK);
  return { risks, zones, history, baseline };
}
