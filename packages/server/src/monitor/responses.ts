import { api, BulwarkError } from '@bulwark/protocol';
import { subjectIdOf } from '../events/index.ts';
import type { Alert, AlertResponse, AlertService, ResponseEvent } from './alert.service.ts';
import { severityRank, type EffectiveProfile, type ResponseAction } from './profile.ts';

/** What responses can do: functions the composition root binds to the access, pki, firewall and user services. */
export interface ResponseActions {
  quarantine(deviceId: string, reason: string, actor: string): Promise<void>;
  revoke(deviceId: string, reason: string, actor: string): Promise<void>;
  banAddress(ban: { address: string; reason: string; ttlMs: number }, actor: string): Promise<void>;
  disableUser(username: string, reason: string, actor: string): Promise<void>;
}

/** The permission an operator needs to run each response by hand (the contract's, which the console reads too). */
export const responsePermissions = api.monitor.responsePermissions;

const DEFAULT_BAN_MS = 3_600_000;

export interface ResponderDeps {
  /** Keeps the run with the alert and records its event, in one transaction. */
  alerts: Pick<AlertService, 'recordResponse'>;
  now: () => number;
  actions: ResponseActions;
  /** Where the device is connected from now, or last was (the engine's view). */
  addressOfDevice(deviceId: string): string | undefined;
  counters: { responses: number; responseFailures: number };
}

/** One response to run for an alert. */
export interface ResponseRun {
  action: ResponseAction;
  automatic: boolean;
  actor: string;
  /** How long a ban lasts (the profile's response rule), else an hour. */
  durationMs?: number | undefined;
}

/** Responses of the profile that answer this alert's detector at its severity (of one mode, or both). */
export function responsesFor(profile: EffectiveProfile, alert: Alert, mode?: 'automatic' | 'manual') {
  return profile.responses.filter(
    (r) =>
      (mode === undefined || r.mode === mode) &&
      (r.detectors.includes('*') || r.detectors.includes(alert.detector)) &&
      severityRank[alert.severity] >= severityRank[r.minSeverity],
  );
}

/** The source address an alert is about: its subject, its evidence, or where its device connects from. */
function addressOf(deps: ResponderDeps, alert: Alert): string | undefined {
  const subject = subjectIdOf(alert.subject, 'address');
  if (subject) return subject;
  const e = alert.evidence;
  if (typeof e.address === 'string') return e.address;
  const last = Array.isArray(e.addresses) ? e.addresses.at(-1) : undefined;
  if (typeof last === 'string') return last;
  return alert.deviceId ? deps.addressOfDevice(alert.deviceId) : undefined;
}

const invalid = (message: string) => new BulwarkError('validation_failed', message);

/** Carries the response out; resolves with what it acted on. */
async function perform(deps: ResponderDeps, alert: Alert, run: ResponseRun): Promise<string | undefined> {
  const { action, actor } = run;
  const reason = `alert ${alert.id}: ${alert.title}`.slice(0, 250);
  switch (action) {
    case 'quarantine':
    case 'revoke': {
      if (!alert.deviceId) throw invalid(`${action} needs an alert about a device`);
      await deps.actions[action](alert.deviceId, reason, actor);
      return `device ${alert.deviceId}`;
    }
    case 'ban_address': {
      const address = addressOf(deps, alert);
      if (!address) throw invalid('the alert names no source address to ban');
      await deps.actions.banAddress({ address, reason, ttlMs: run.durationMs ?? DEFAULT_BAN_MS }, actor);
      return `address ${address}`;
    }
    case 'disable_user': {
      const username = subjectIdOf(alert.subject, 'user');
      if (username === undefined) throw invalid('disable_user needs an alert about a user');
      await deps.actions.disableUser(username, reason, actor);
      return alert.subject;
    }
    case 'notify':
      return undefined;
  }
}

/** The response kept with the alert and its event, for a run that worked (`detail`) or failed (`reason`). */
function recordOf(
  alert: Alert,
  run: ResponseRun & { at: number },
  outcome: { ok: true; detail: string | undefined } | { ok: false; reason: string },
): { response: AlertResponse; event: ResponseEvent } {
  const { action, automatic, actor, at } = run;
  if (!outcome.ok)
    return {
      response: { at, action, automatic, actor, ok: false, detail: outcome.reason },
      event: {
        type: 'response.failed',
        actor,
        subject: alert.subject,
        data: { alertId: alert.id, action, automatic, reason: outcome.reason },
      },
    };
  const { detail } = outcome;
  return {
    response: { at, action, automatic, actor, ok: true, detail },
    event: {
      type: 'response.executed',
      actor,
      subject: alert.subject,
      data: {
        alertId: alert.id,
        action,
        automatic,
        detector: alert.detector,
        severity: alert.severity,
        title: alert.title,
        ...(detail ? { detail } : {}),
      },
    },
  };
}

/**
 * Runs one response for an alert: recorded with the alert and as an event (one transaction), whether it
 * worked or not. A failed automatic response is only recorded; a failed manual one is also thrown to the
 * operator.
 */
export async function execute(deps: ResponderDeps, alert: Alert, run: ResponseRun): Promise<void> {
  const record = (outcome: Parameters<typeof recordOf>[2]) => {
    const { response, event } = recordOf(alert, { ...run, at: deps.now() }, outcome);
    return deps.alerts.recordResponse(alert.id, response, event);
  };
  try {
    const detail = await perform(deps, alert, run);
    deps.counters.responses += 1;
    await record({ ok: true, detail });
  } catch (err) {
    deps.counters.responseFailures += 1;
    const reason = (err instanceof Error ? err.message : String(err)).slice(0, 300);
    await record({ ok: false, reason });
    if (!run.automatic) throw err;
  }
}

/** The automatic responses of the alert's profile, in order. */
export async function runAutomatic(
  deps: ResponderDeps,
  alert: Alert,
  profile: EffectiveProfile,
): Promise<void> {
  for (const r of responsesFor(profile, alert, 'automatic'))
    await execute(deps, alert, {
      action: r.action,
      automatic: true,
      actor: 'system',
      durationMs: r.duration,
    });
}
