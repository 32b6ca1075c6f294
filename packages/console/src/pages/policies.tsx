import { useState, type FormEvent } from 'react';
import type { z } from 'zod';
import { api } from '@bulwark/protocol';
import { call, messageOf } from '../api.ts';
import { EffectiveAccess, type Access } from '../components/effective-access.tsx';
import { ErrorLine, InputField, SelectField } from '../components/fields.tsx';
import { Badge, Loaded } from '../components/status.tsx';
import { ColumnHeads } from '../components/table.tsx';
import { allDevices } from '../fleet.ts';
import { dateTime, plural } from '../format.ts';
import { Link } from '../router.tsx';
import { useAllows } from '../session.ts';
import { useLoad } from '../use-load.ts';

type Decision = z.output<typeof api.access.decision>;
const simulatedActions = ['connect', 'publish', 'subscribe', 'receive'] as const;
type SimulatedAction = (typeof simulatedActions)[number];

/** What the page reads: policies, zones with their device counts, conduits (all `policies:read`). */
async function loadSegmentation() {
  const [policies, zones, conduits, fleet] = await Promise.all([
    call(api.access.listPolicies),
    call(api.access.listZones),
    call(api.access.listConduits),
    allDevices(),
  ]);
  const devicesInZone = new Map<string, number>();
  for (const d of fleet.devices) if (d.zone) devicesInZone.set(d.zone, (devicesInZone.get(d.zone) ?? 0) + 1);
  return { policies, zones, conduits, devicesInZone };
}
type Segmentation = Awaited<ReturnType<typeof loadSegmentation>>;

function Policies(props: { data: Segmentation }) {
  return (
    <table className="data">
      <caption>Policies</caption>
      <ColumnHeads columns={['Name', { label: 'Version', num: true }, 'Attached to', 'Updated']} />
      <tbody>
        {props.data.policies.map((p) => (
          <tr key={p.name}>
            <th scope="row">
              {p.name} {p.builtin ? <span className="muted small">(built-in)</span> : null}
            </th>
            <td className="num">{p.version}</td>
            <td>
              {p.attachments.length === 0 ? (
                <span className="muted">nothing</span>
              ) : (
                p.attachments.map((a) => `${a.kind}:${a.target}`).join(', ')
              )}
            </td>
            <td>{dateTime(p.updatedAt)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Zones(props: { data: Segmentation }) {
  if (props.data.zones.length === 0) return <p className="muted">No zones defined.</p>;
  return (
    <table className="data">
      <caption>Zones (IEC 62443-3-2)</caption>
      <ColumnHeads columns={['Zone', 'Security level', 'Members', { label: 'Devices', num: true }]} />
      <tbody>
        {props.data.zones.map((z) => (
          <tr key={z.name}>
            <th scope="row">
              {z.name}
              {z.description ? <div className="muted small">{z.description}</div> : null}
            </th>
            <td>SL {z.securityLevel}</td>
            <td>
              {[
                ...(z.members.groups ?? []).map((g) => `group ${g}`),
                ...Object.entries(z.members.attributes ?? {}).map(([k, v]) => `${k}=${v}`),
              ].join(', ') || <span className="muted">none</span>}
            </td>
            <td className="num">{props.data.devicesInZone.get(z.name) ?? 0}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Conduits(props: { data: Segmentation }) {
  if (props.data.conduits.length === 0) return <p className="muted">No conduits defined.</p>;
  const levels = new Map(props.data.zones.map((z) => [z.name, z.securityLevel]));
  // A conduit joins two zones: the levels on each side say what the conduit must protect (IEC 62443-3-2 ZCR 3).
  const levelOf = (zone: string) => {
    const level = levels.get(zone);
    return level === undefined ? 'SL ?' : `SL ${level}`;
  };
  return (
    <table className="data">
      <caption>Conduits</caption>
      <ColumnHeads columns={['Conduit', 'From → to', 'Security levels', 'Topics', 'Rate cap']} />
      <tbody>
        {props.data.conduits.map((c) => (
          <tr key={c.name}>
            <th scope="row">{c.name}</th>
            <td>
              {c.from} {c.direction === 'two-way' ? '↔' : '→'} {c.to}
            </td>
            <td>
              {levelOf(c.from)} {c.direction === 'two-way' ? '↔' : '→'} {levelOf(c.to)}
            </td>
            <td>
              <code>{c.topics.join(' ')}</code>
            </td>
            <td>{c.rateCap === undefined ? 'none' : `${plural(c.rateCap, 'message')}/s`}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function DecisionView(props: { d: Decision }) {
  const d = props.d;
  return (
    <div role="status" aria-label="Decision" className="decision">
      <p>
        <Badge tone={d.allow ? 'tone-ok' : 'tone-critical'}>{d.allow ? 'allowed' : 'denied'}</Badge>{' '}
        {d.action} {d.topic ? <code>{d.topic}</code> : null} by {d.deviceId}
        {d.zone ? ` (zone ${d.zone})` : ''}
      </p>
      <p>
        Deciding statement:{' '}
        <strong>{d.statement ? `${d.policy ?? '?'}/${d.statement}` : 'none (deny by default)'}</strong>
      </p>
      <p className="muted">Reason: {d.reason}</p>
      {d.held ? <p className="error">{d.held}</p> : null}
    </div>
  );
}

/** Would this device be allowed to do this? The answer names the statement that decides it. */
function Simulate() {
  const [deviceId, setDeviceId] = useState('');
  const [action, setAction] = useState<SimulatedAction>('publish');
  const [topic, setTopic] = useState('');
  const [decision, setDecision] = useState<Decision>();
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    call(api.access.simulate, {
      body: { deviceId, action, ...(topic && action !== 'connect' ? { topic } : {}) },
    })
      .then(setDecision, (err: unknown) => {
        setDecision(undefined);
        setError(messageOf(err));
      })
      .finally(() => setBusy(false));
  };
  return (
    <form className="simulate" onSubmit={submit}>
      <InputField id="sim-device" label="Device id" required value={deviceId} onChange={setDeviceId} />
      <SelectField
        id="sim-action"
        label="Action"
        value={action}
        options={simulatedActions}
        onChange={setAction}
      />
      <InputField
        id="sim-topic"
        label="Topic"
        value={topic}
        disabled={action === 'connect'}
        onChange={setTopic}
      />
      <div className="actions">
        <button type="submit" disabled={busy}>
          Simulate
        </button>
      </div>
      <ErrorLine error={error} />
      {decision ? <DecisionView d={decision} /> : null}
    </form>
  );
}

/** What a device may do now and why: its zone, the statements that apply and those dropped, with reasons. */
function Explain() {
  const [deviceId, setDeviceId] = useState('');
  const [access, setAccess] = useState<Access>();
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const id = deviceId.trim();
    if (id === '') return setError('Device to explain: name a device.');
    setBusy(true);
    setError(undefined);
    call(api.access.describeAccess, { params: { id } })
      .then(setAccess, (err: unknown) => {
        setAccess(undefined);
        setError(messageOf(err));
      })
      .finally(() => setBusy(false));
  };
  return (
    <>
      <form className="simulate" onSubmit={submit} aria-label="Explain a device's access">
        <InputField id="explain-device" label="Device to explain" value={deviceId} onChange={setDeviceId} />
        <div className="actions">
          <button type="submit" disabled={busy}>
            Explain
          </button>
        </div>
        <ErrorLine error={error} />
      </form>
      {access ? (
        <div className="explained" aria-label={`Access of ${access.deviceId}`} role="region">
          <p>
            <Link to={`/devices/${encodeURIComponent(access.deviceId)}`}>{access.deviceId}</Link>
          </p>
          <EffectiveAccess access={access} />
        </div>
      ) : null}
    </>
  );
}

/** Policies with their attachments, zones and conduits, and a simulator; changes go through the API and CLI. */
export function PoliciesPage() {
  const data = useLoad(loadSegmentation, 60_000);
  const mayWrite = useAllows(api.access.putPolicy);
  return (
    <>
      <h1>Policies and zones</h1>
      <p className="muted small">
        {mayWrite
          ? 'Policies, zones and conduits change through the API (PUT /api/v1/policies/:name, /zones/:name, /conduits/:name); this page reads them.'
          : 'Read-only: your role does not change policies.'}
      </p>
      <div className="grid">
        <section className="panel" aria-label="Simulate">
          <h2>Simulate a decision</h2>
          <Simulate />
        </section>
        <section className="panel" aria-label="Explain">
          <h2>Explain a device's access</h2>
          <Explain />
        </section>
      </div>
      <Loaded what="policies" data={data.data} error={data.error}>
        {(d) => (
          <div className="stack">
            <Policies data={d} />
            <Zones data={d} />
            <Conduits data={d} />
          </div>
        )}
      </Loaded>
    </>
  );
}
