import { useCallback, useEffect, useRef, useState } from 'react';
import { api } from '@bulwark/protocol';
import { useAlertStream } from '../alert-stream.ts';
import { call, messageOf } from '../api.ts';
import { Bars, type Bar } from '../components/bars.tsx';
import { Badge, Loaded } from '../components/status.tsx';
import {
  allDevices,
  countBy,
  deviceStates,
  riskTone,
  scoreTone,
  severitiesWorstFirst,
  severityTone,
  standardName,
  stateTone,
  type Alert,
  type Device,
  type Risk,
} from '../fleet.ts';
import { percent, plural } from '../format.ts';
import { Link } from '../router.tsx';
import { useAllows } from '../session.ts';
import { useLoad } from '../use-load.ts';

const REFRESH_MS = 30_000;

const loadOpenAlerts = () => call(api.monitor.listAlerts, { query: { status: 'open', limit: 1000 } });
const loadLatestRun = () => call(api.compliance.listRuns, { query: { limit: 1 } });
const loadRisks = () => call(api.riskRegister.register);

function Tile(props: { to: string; value: number; label: [one: string, many: string]; tone: string }) {
  return (
    <Link to={props.to} className={`tile ${props.value > 0 ? props.tone : 'tone-calm'}`}>
      <span className="tile-value">{props.value.toLocaleString('en')}</span>
      <span className="tile-label">{props.value === 1 ? props.label[0] : props.label[1]}</span>
    </Link>
  );
}

/** Exception first: what needs someone now, each a link to where it is handled. */
function Attention(props: { devices?: Device[]; alerts?: Alert[] }) {
  const urgent = (props.alerts ?? []).filter(
    (a) => a.severity === 'critical' || a.severity === 'high',
  ).length;
  const quarantined = (props.devices ?? []).filter((d) => d.state === 'quarantined').length;
  return (
    <section aria-label="Needs attention" className="tiles">
      <Tile
        to="/alerts"
        value={props.alerts?.length ?? 0}
        label={['open alert', 'open alerts']}
        tone="tone-medium"
      />
      <Tile
        to="/alerts"
        value={urgent}
        label={['critical or high', 'critical or high']}
        tone="tone-critical"
      />
      <Tile
        to="/devices"
        value={quarantined}
        label={['quarantined device', 'quarantined devices']}
        tone="tone-high"
      />
    </section>
  );
}

function DevicesCard(props: { devices: Device[]; truncated: boolean }) {
  const byState = countBy(props.devices, (d) => d.state);
  const online = props.devices.filter((d) => d.online).length;
  return (
    <section className="panel" aria-labelledby="devices-by-state">
      <h2 id="devices-by-state">Devices by state</h2>
      <p className="headline" data-testid="device-count">
        {plural(props.devices.length, 'device')}
        {props.truncated ? '+' : ''} <span className="muted">· {online.toLocaleString('en')} online</span>
      </p>
      <Bars
        label="Devices by state"
        empty="No devices yet: add one with `bulwark device add`."
        bars={deviceStates
          .filter((s) => (byState.get(s) ?? 0) > 0 || s === 'active')
          .map((s) => ({ key: s, label: s, value: byState.get(s) ?? 0, tone: stateTone[s] }))}
      />
    </section>
  );
}

function AlertsCard(props: { alerts: Alert[] }) {
  const bySeverity = countBy(props.alerts, (a) => a.severity);
  return (
    <section className="panel" aria-labelledby="alerts-by-severity">
      <h2 id="alerts-by-severity">Open alerts by severity</h2>
      <p className="headline">{plural(props.alerts.length, 'open alert')}</p>
      <Bars
        label="Open alerts by severity"
        bars={severitiesWorstFirst.map((s) => ({
          key: s,
          label: s,
          value: bySeverity.get(s) ?? 0,
          tone: severityTone(s),
        }))}
      />
    </section>
  );
}

/** The `top` most frequent values (a null counts as `none`), the rest summed as `other`. */
function topBars(values: readonly (string | null)[], none: string, top = 6): Bar[] {
  const counts = countBy(values, (v) => v ?? none);
  const sorted = [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const bars: Bar[] = sorted
    .slice(0, top)
    .map(([key, value]) => ({ key, label: key, value, tone: key === none ? 'tone-muted' : 'tone-info' }));
  const rest = sorted.slice(top).reduce((sum, [, value]) => sum + value, 0);
  if (rest > 0) bars.push({ key: '\u0000other', label: 'other', value: rest, tone: 'tone-muted' });
  return bars;
}

/** Where the fleet is (zones) and what it runs (firmware versions), most devices first. */
function SpreadCard(props: { devices: Device[] }) {
  const live = props.devices.filter((d) => d.state !== 'decommissioned');
  return (
    <section className="panel" aria-labelledby="devices-spread">
      <h2 id="devices-spread">Devices by zone and firmware</h2>
      <h3>Zone</h3>
      <Bars
        label="Devices by zone"
        empty="No devices yet."
        bars={topBars(
          live.map((d) => d.zone),
          'no zone',
        )}
      />
      <h3>Firmware</h3>
      <Bars
        label="Devices by firmware version"
        empty="No devices yet."
        bars={topBars(
          live.map((d) => d.firmwareVersion),
          'not reported',
        )}
      />
    </section>
  );
}

/** What an alert's responses did, as an operator reads it: `quarantine (automatic)`, `ban (failed)`. */
function responsesText(alert: Alert): string {
  return alert.responsesRun
    .map((r) => `${r.action}${r.automatic ? ' (automatic)' : ''}${r.ok ? '' : ' (failed)'}`)
    .join(', ');
}

/** The open alerts seen most recently, with what was done about each (automatic responses too). */
function LatestAlerts(props: { alerts: Alert[] }) {
  const latest = [...props.alerts].sort((a, b) => b.lastSeen - a.lastSeen).slice(0, 5);
  return (
    <section className="panel" aria-labelledby="latest-alerts">
      <h2 id="latest-alerts">Latest alerts</h2>
      {latest.length === 0 ? (
        <p className="muted">No open alerts.</p>
      ) : (
        <ul className="latest-alerts">
          {latest.map((a) => (
            <li key={a.id}>
              <Badge tone={severityTone(a.severity)}>{a.severity}</Badge> <span>{a.title}</span>
              {a.deviceId ? (
                <>
                  {' '}
                  <Link to={`/devices/${encodeURIComponent(a.deviceId)}`}>{a.deviceId}</Link>
                </>
              ) : null}
              <span className="muted"> · {new Date(a.lastSeen).toLocaleTimeString('en')}</span>
              {a.responsesRun.length > 0 ? (
                <div className="responses">Response: {responsesText(a)}</div>
              ) : null}
            </li>
          ))}
        </ul>
      )}
      <p>
        <Link to="/alerts">The alerts queue</Link>
      </p>
    </section>
  );
}

function ComplianceCard() {
  const runs = useLoad(loadLatestRun, REFRESH_MS);
  const mayRun = useAllows(api.compliance.runCompliance);
  const [running, setRunning] = useState<string>();
  const { reload } = runs;
  const runNow = useCallback(() => {
    setRunning('Running the checks…');
    call(api.compliance.runCompliance).then(
      () => {
        setRunning(undefined);
        reload();
      },
      (e: unknown) => setRunning(`The run failed: ${messageOf(e)}`),
    );
  }, [reload]);
  return (
    <section className="panel" aria-labelledby="compliance-scores">
      <h2 id="compliance-scores">Compliance score per standard</h2>
      <Loaded what="compliance runs" data={runs.data} error={runs.error}>
        {({ runs: [latest] }) =>
          latest ? (
            <>
              <p className="headline">
                {plural(latest.counts.fail, 'failing check')}{' '}
                <span className="muted">· latest run {new Date(latest.finishedAt).toLocaleString('en')}</span>
              </p>
              <Bars
                label="Compliance score per standard"
                max={1}
                bars={Object.entries(latest.scores).map(([id, score]) => ({
                  key: id,
                  label: standardName(id),
                  value: score ?? 0,
                  text: percent(score),
                  tone: scoreTone(score),
                }))}
              />
            </>
          ) : (
            <p className="muted">No compliance run yet.</p>
          )
        }
      </Loaded>
      <p>
        {mayRun ? (
          <>
            <button type="button" onClick={runNow} disabled={running === 'Running the checks…'}>
              Run the checks now
            </button>{' '}
            {running ? <span role="status">{running}</span> : null}{' '}
          </>
        ) : null}
        <Link to="/compliance">Failing checks, trend and reports</Link>
      </p>
    </section>
  );
}

function RisksCard() {
  const register = useLoad(loadRisks, REFRESH_MS);
  return (
    <section className="panel" aria-labelledby="top-risks">
      <h2 id="top-risks">Top live risks</h2>
      <Loaded what="the risk register" data={register.data} error={register.error}>
        {({ risks }) => <TopRisks risks={risks.filter((r) => r.status !== 'closed').slice(0, 5)} />}
      </Loaded>
      <p>
        <Link to="/risk">The whole register</Link>
      </p>
    </section>
  );
}

function TopRisks(props: { risks: Risk[] }) {
  if (props.risks.length === 0) return <p className="muted">No open risks in the register.</p>;
  return (
    <ol className="top-risks">
      {props.risks.map((r) => (
        <li key={r.id}>
          <Badge tone={riskTone(r.risk)}>risk {r.risk}</Badge> <span>{r.title}</span>
          {r.raised ? <Badge tone="tone-critical">raised</Badge> : null}
        </li>
      ))}
    </ol>
  );
}

/** The fleet at a glance: what needs attention, devices, alerts, compliance and risk. */
export function Overview() {
  const mayReadAlerts = useAllows(api.monitor.listAlerts);
  // An alert raised, answered (a quarantine) or closed reads the alerts and the devices again at once; the
  // 30 s refresh is for the rest, and for both while the alert stream is not live.
  const onAlert = useRef<() => void>(() => undefined);
  const live = useAlertStream(useAllows(api.monitor.alertStream), onAlert);
  const devices = useLoad(allDevices, REFRESH_MS);
  const alerts = useLoad(mayReadAlerts ? loadOpenAlerts : noAlerts, live ? undefined : REFRESH_MS);
  const { reload: reloadDevices } = devices;
  const { reload: reloadAlerts } = alerts;
  useEffect(() => {
    onAlert.current = () => {
      reloadAlerts();
      reloadDevices();
    };
  }, [reloadAlerts, reloadDevices]);
  const mayReadCompliance = useAllows(api.compliance.listRuns);
  const mayReadRisk = useAllows(api.riskRegister.register);
  return (
    <>
      <h1>Overview</h1>
      <Attention devices={devices.data?.devices} alerts={alerts.data?.alerts} />
      <div className="grid">
        <Loaded what="devices" data={devices.data} error={devices.error}>
          {(d) => <DevicesCard devices={d.devices} truncated={d.truncated} />}
        </Loaded>
        {mayReadAlerts ? (
          <Loaded what="alerts" data={alerts.data} error={alerts.error}>
            {(a) => (
              <>
                <AlertsCard alerts={a.alerts} />
                <LatestAlerts alerts={a.alerts} />
              </>
            )}
          </Loaded>
        ) : null}
        {devices.data ? <SpreadCard devices={devices.data.devices} /> : null}
        {mayReadCompliance ? <ComplianceCard /> : null}
        {mayReadRisk ? <RisksCard /> : null}
      </div>
    </>
  );
}

const noAlerts = () => Promise.resolve({ alerts: [] as Alert[] });
