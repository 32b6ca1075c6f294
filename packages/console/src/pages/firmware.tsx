import { useCallback, useState } from 'react';
import type { z } from 'zod';
import { api } from '@bulwark/protocol';
import { call, messageOf } from '../api.ts';
import { Confirm } from '../components/confirm.tsx';
import { InputField } from '../components/fields.tsx';
import { StackedBar, StackedCounts, type Segment } from '../components/stacked.tsx';
import { Badge, Loaded } from '../components/status.tsx';
import { ColumnHeads } from '../components/table.tsx';
import { ago, date, dateTime, plural } from '../format.ts';
import { useAllows } from '../session.ts';
import { useLoad } from '../use-load.ts';

type Release = z.output<typeof api.firmware.release>;
type Rollout = z.output<typeof api.firmware.rollout>;
type Phase = z.output<typeof api.firmware.phaseSummary>;
type RolloutStatus = Rollout['status'];
type AdvisorySeverity = (typeof api.risk.advisorySeverities)[number];
type Control = 'pause' | 'resume' | 'approve' | 'abort';

/** Known vulnerabilities are looked up for the newest releases with an SBOM, one request each: at most this many. */
const VULNERABILITY_LOOKUPS = 25;

/** A release's known vulnerabilities (SBOM × imported advisories), or why they could not be looked up. */
type Vulnerabilities = { count: number; worst: AdvisorySeverity | undefined } | { error: string };

async function vulnerabilitiesOf(id: string): Promise<Vulnerabilities> {
  try {
    const { vulnerabilities } = await call(api.risk.releaseVulnerabilities, { params: { id } });
    // Answered worst first.
    return { count: vulnerabilities.length, worst: vulnerabilities[0]?.severity };
  } catch (e) {
    return { error: messageOf(e) };
  }
}

async function loadReleases() {
  const { releases } = await call(api.firmware.listReleases, { query: { limit: 100 } });
  const looked = releases.filter((r) => r.hasSbom).slice(0, VULNERABILITY_LOOKUPS);
  const found = await Promise.all(looked.map(async (r) => [r.id, await vulnerabilitiesOf(r.id)] as const));
  return { releases, vulnerabilities: new Map(found) };
}

const loadRollouts = () => call(api.firmware.listRollouts, { query: { limit: 50 } });

const statusTone: Record<RolloutStatus, string> = {
  running: 'tone-info',
  paused: 'tone-medium',
  waiting_approval: 'tone-medium',
  completed: 'tone-ok',
  aborted: 'tone-muted',
};

const releaseTone = { draft: 'tone-muted', ready: 'tone-ok', retired: 'tone-muted' } as const;

const advisoryTone = (s: AdvisorySeverity | undefined) =>
  s === 'critical' || s === 'high' || s === 'medium' || s === 'low' ? `tone-${s}` : 'tone-muted';

function VulnerabilityCell(props: { release: Release; found: Vulnerabilities | undefined }) {
  if (!props.release.hasSbom) return <span className="muted">no SBOM</span>;
  const v = props.found;
  if (!v) return <span className="muted">not looked up</span>;
  if ('error' in v)
    return (
      <span className="muted" title={v.error}>
        could not look up
      </span>
    );
  if (v.count === 0) return <span>none known</span>;
  return <Badge tone={advisoryTone(v.worst)}>{`${v.count} (worst ${v.worst ?? 'unknown'})`}</Badge>;
}

function ReleaseTable(props: { releases: Release[]; vulnerabilities: Map<string, Vulnerabilities> }) {
  if (props.releases.length === 0)
    return <p className="muted">No releases yet: `bulwark firmware release create` adds one.</p>;
  return (
    <table className="data">
      <caption className="visually-hidden">Firmware releases, newest first</caption>
      <ColumnHeads
        columns={[
          'Release',
          'Version',
          'Status',
          'Signed',
          { label: 'Security version', num: true },
          { label: 'SBOM components', num: true },
          'Known vulnerabilities',
          'Created',
        ]}
      />
      <tbody>
        {props.releases.map((r) => (
          <tr key={r.id}>
            <th scope="row">
              {r.name}
              <div className="muted small">{r.hardwareIds.join(', ')}</div>
            </th>
            <td>{r.version}</td>
            <td>
              <Badge tone={releaseTone[r.status]}>{r.status}</Badge>
            </td>
            <td>{r.signed ? 'signed' : <span className="muted">not signed</span>}</td>
            <td className="num">{r.securityVersion}</td>
            <td className="num">
              {r.hasSbom ? r.sbomComponents.toLocaleString('en') : <span className="muted">none</span>}
            </td>
            <td>
              <VulnerabilityCell release={r} found={props.vulnerabilities.get(r.id)} />
            </td>
            <td title={dateTime(r.createdAt)}>{date(r.createdAt)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** A phase's devices by what happened to them; what is not yet sent is the empty track. */
const segmentsOf = (p: Phase): Segment[] => [
  { key: 'succeeded', label: 'succeeded', value: p.succeeded, tone: 'tone-ok' },
  { key: 'failed', label: 'failed', value: p.failed, tone: 'tone-critical' },
  { key: 'in-progress', label: 'in progress', value: p.inProgress, tone: 'tone-info' },
  { key: 'skipped', label: 'skipped', value: p.skipped, tone: 'tone-muted' },
  { key: 'pending', label: 'pending', value: p.pending, tone: 'tone-pending' },
];

/** A soak time as a person reads it: 45 s, 30 min, 2 h, 1.5 h. */
function soakText(ms: number): string {
  if (ms < 60_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min`;
  return `${Math.round(ms / 360_000) / 10} h`;
}

function Phases(props: { rollout: Rollout }) {
  const r = props.rollout;
  return (
    <table className="phases">
      <caption className="visually-hidden">
        Progress by phase of {r.release.name} {r.release.version}
      </caption>
      <tbody>
        {r.phases.map((p) => (
          <tr key={p.phase} className={p.phase === r.currentPhase ? 'current' : undefined}>
            <th scope="row">
              Phase {p.phase + 1}
              <div className="muted small">
                {p.percent}%{p.soakMs > 0 ? `, soak ${soakText(p.soakMs)}` : ''}
              </div>
            </th>
            <td className="phase-bar">
              <StackedBar segments={segmentsOf(p)} total={p.devices} />
            </td>
            <td className="phase-counts">
              {plural(p.devices, 'device')}: <StackedCounts segments={segmentsOf(p)} empty="none" />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function selectorText(s: Rollout['selector']): string {
  const parts = [
    s.all ? 'all devices' : '',
    s.groups?.length ? `groups ${s.groups.join(', ')}` : '',
    s.zones?.length ? `zones ${s.zones.join(', ')}` : '',
    s.devices?.length ? plural(s.devices.length, 'named device') : '',
    Object.entries(s.attributes ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(', '),
  ];
  return parts.filter(Boolean).join(' and ');
}

/** What the operator may do to a rollout in its state (the server refuses the rest with a conflict). */
function controlsFor(status: RolloutStatus): Control[] {
  if (status === 'running') return ['pause', 'abort'];
  if (status === 'waiting_approval') return ['approve', 'pause', 'abort'];
  if (status === 'paused') return ['resume', 'abort'];
  return [];
}

const controlLabel: Record<Control, string> = {
  pause: 'Pause',
  resume: 'Resume',
  approve: 'Approve next phase',
  abort: 'Abort',
};

function RolloutPanel(props: {
  rollout: Rollout;
  mayDeploy: boolean;
  busy: boolean;
  onControl: (r: Rollout, c: Control) => void;
}) {
  const r = props.rollout;
  const name = `${r.release.name} ${r.release.version}`;
  const controls = props.mayDeploy ? controlsFor(r.status) : [];
  return (
    <section className="panel rollout" aria-labelledby={`rollout-${r.id}`}>
      <div className="rollout-head">
        <h3 id={`rollout-${r.id}`}>{name}</h3>
        <Badge tone={statusTone[r.status]}>{r.status.replace('_', ' ')}</Badge>
        <span className="muted small">
          to {selectorText(r.selector)} · phase {Math.min(r.currentPhase + 1, r.phases.length)} of{' '}
          {r.phases.length} · started {ago(r.createdAt)} by {r.createdBy}
        </span>
        <span className="rollout-controls">
          {controls.map((c) => (
            <button
              key={c}
              type="button"
              className={c === 'abort' ? 'danger' : undefined}
              disabled={props.busy}
              onClick={() => props.onControl(r, c)}
              aria-label={`${controlLabel[c]}: rollout of ${name}`}
            >
              {controlLabel[c]}
            </button>
          ))}
        </span>
      </div>
      {r.pauseReason && (r.status === 'paused' || r.status === 'aborted') ? (
        <p className="notice">{r.pauseReason}</p>
      ) : null}
      <Phases rollout={r} />
    </section>
  );
}

function AbortDialog(props: { rollout: Rollout; onAbort: (reason: string) => void; onCancel: () => void }) {
  const [reason, setReason] = useState('');
  const name = `${props.rollout.release.name} ${props.rollout.release.version}`;
  return (
    <Confirm
      title={`Abort the rollout of ${name}?`}
      confirmLabel="Abort the rollout"
      onConfirm={() => props.onAbort(reason.trim())}
      onCancel={props.onCancel}
    >
      <p>Devices not updated yet are skipped. Devices already updated keep the new firmware.</p>
      <InputField
        id="abort-reason"
        label="Reason (recorded in the audit log)"
        value={reason}
        maxLength={256}
        onChange={setReason}
      />
    </Confirm>
  );
}

const controlContract = {
  pause: api.firmware.pauseRollout,
  resume: api.firmware.resumeRollout,
  approve: api.firmware.approveRollout,
  abort: api.firmware.abortRollout,
} as const;

const controlDone: Record<Control, string> = {
  pause: 'paused',
  resume: 'resumed',
  approve: 'approved for its next phase',
  abort: 'aborted',
};

function Rollouts() {
  const rollouts = useLoad(loadRollouts, 10_000);
  const mayDeploy = useAllows(api.firmware.pauseRollout);
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<string>();
  const [aborting, setAborting] = useState<Rollout>();
  const { reload } = rollouts;
  const steer = useCallback(
    (r: Rollout, c: Control, reason?: string) => {
      const name = `${r.release.name} ${r.release.version}`;
      setBusy(true);
      call(controlContract[c], { params: { id: r.id }, body: reason ? { reason } : {} })
        .then(
          (after) =>
            setMessage(`Rollout of ${name} ${controlDone[c]}: now ${after.status.replace('_', ' ')}.`),
          (e: unknown) => setMessage(`Could not ${controlLabel[c].toLowerCase()} ${name}: ${messageOf(e)}`),
        )
        .finally(() => {
          setBusy(false);
          setAborting(undefined);
          reload();
        });
    },
    [reload],
  );
  const onControl = useCallback(
    (r: Rollout, c: Control) => (c === 'abort' ? setAborting(r) : steer(r, c)),
    [steer],
  );
  const cancel = useCallback(() => setAborting(undefined), []);
  return (
    <section aria-labelledby="rollouts">
      <div className="toolbar">
        <h2 id="rollouts">Rollouts</h2>
        <p role="status" className="status-line">
          {message}
        </p>
      </div>
      <Loaded what="rollouts" data={rollouts.data} error={rollouts.error}>
        {({ rollouts: list }) =>
          list.length === 0 ? (
            <p className="muted">No rollouts yet: `bulwark firmware rollout create` starts one.</p>
          ) : (
            <>
              <PhaseLegend />
              {list.map((r) => (
                <RolloutPanel
                  key={r.id}
                  rollout={r}
                  mayDeploy={mayDeploy}
                  busy={busy}
                  onControl={onControl}
                />
              ))}
            </>
          )
        }
      </Loaded>
      {aborting ? (
        <AbortDialog
          rollout={aborting}
          onAbort={(reason) => steer(aborting, 'abort', reason)}
          onCancel={cancel}
        />
      ) : null}
    </section>
  );
}

function PhaseLegend() {
  const all = segmentsOf({
    phase: 0,
    percent: 0,
    soakMs: 0,
    devices: 0,
    pending: 0,
    inProgress: 0,
    succeeded: 0,
    failed: 0,
    skipped: 0,
  });
  return (
    <ul className="legend" aria-label="Colours of the phase bars">
      {all.map((s) => (
        <li key={s.key}>
          <span className={`dot ${s.tone}`} aria-hidden="true" />
          {s.label}
        </li>
      ))}
    </ul>
  );
}

/** Firmware: releases (signed, SBOM, known vulnerabilities) and rollouts with their progress by phase. */
export function Firmware() {
  const releases = useLoad(loadReleases, 60_000);
  return (
    <>
      <h1>Firmware</h1>
      <Rollouts />
      <section className="block" aria-labelledby="releases">
        <h2 id="releases">Releases</h2>
        <Loaded what="releases" data={releases.data} error={releases.error}>
          {(d) => <ReleaseTable releases={d.releases} vulnerabilities={d.vulnerabilities} />}
        </Loaded>
      </section>
    </>
  );
}
