import { useState, type FormEvent } from 'react';
import type { z } from 'zod';
import { api } from '@bulwark/protocol';
import { call, callCreated, messageOf } from '../api.ts';
import { ErrorLine } from '../components/fields.tsx';
import {
  CheckedInput,
  inputErrors,
  problemErrors,
  TextAreaField,
  type FieldErrors,
  type FieldRule,
} from '../components/form-errors.tsx';
import { Badge, Loaded } from '../components/status.tsx';
import { ColumnHeads } from '../components/table.tsx';
import { date, dateTime } from '../format.ts';
import { Link, navigate } from '../router.tsx';
import { useAllows } from '../session.ts';
import { useLoad } from '../use-load.ts';

type App = z.output<typeof api.apps.app>;
type AppDetail = z.output<typeof api.apps.appDetail>;
type Token = z.output<typeof api.apps.appToken>;

/** Tokens and connections are answered per app: looked up for at most this many active apps, one request each. */
const DETAIL_LOOKUPS = 50;

export const appStatusTone = { active: 'tone-ok', revoked: 'tone-muted' } as const;

/** A token still accepted at `at`: not revoked, not expired. */
export const tokenActive = (t: Token, at: number) =>
  t.revokedAt === null && (t.expiresAt === null || t.expiresAt > at);

/** A grant's line split from a text area: one grant a line, blank lines left out. */
export const grantLines = (text: string) =>
  text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);

/** Where the server's refusals of an app's fields belong (apps/app.lifecycle.ts words them). */
export const appFieldRules: readonly FieldRule[] = [
  { field: 'name', match: /^app name |^app \S+ already exists|^a device has the id / },
  'purpose',
  'zone',
  'description',
];

/** `grant 2 ("…"): …` in a refusal is the second grant's (apps/app.grants.ts). */
export const grantItems = { field: 'grants', item: /grant (\d+) \(/ };

async function loadApps() {
  const apps = await call(api.apps.list);
  const looked = apps.filter((a) => a.status === 'active').slice(0, DETAIL_LOOKUPS);
  const found = await Promise.all(
    looked.map(async (a) => {
      const detail = await call(api.apps.show, { params: { name: a.name } }).catch((e: unknown) => ({
        error: messageOf(e),
      }));
      return [a.name, detail] as const;
    }),
  );
  return { apps, details: new Map<string, AppDetail | { error: string }>(found), at: Date.now() };
}
type AppList = Awaited<ReturnType<typeof loadApps>>;

function Counts(props: {
  detail: AppDetail | { error: string } | undefined;
  at: number;
  what: 'tokens' | 'connections';
}) {
  const d = props.detail;
  if (!d) return <span className="muted">n/a</span>;
  if ('error' in d)
    return (
      <span className="muted" title={d.error}>
        could not look up
      </span>
    );
  if (props.what === 'connections') return <>{d.delivery.connections}</>;
  return <>{d.tokens.filter((t) => tokenActive(t, props.at)).length}</>;
}

function AppTable(props: { list: AppList }) {
  const { apps, details, at } = props.list;
  if (apps.length === 0) return <p className="muted">No applications yet.</p>;
  return (
    <table className="data">
      <caption>Applications</caption>
      <ColumnHeads
        columns={[
          'Name',
          'Purpose',
          'Zone',
          'Status',
          { label: 'Grants', num: true },
          { label: 'Active tokens', num: true },
          { label: 'Connections', num: true },
          'Created',
        ]}
      />
      <tbody>
        {apps.map((a: App) => (
          <tr key={a.name}>
            <th scope="row">
              <Link to={`/apps/${encodeURIComponent(a.name)}`}>{a.name}</Link>
              {a.description ? <div className="muted small">{a.description}</div> : null}
            </th>
            <td>{a.purpose ?? <span className="muted">none (no device data)</span>}</td>
            <td>{a.zone ?? <span className="muted">none</span>}</td>
            <td>
              <Badge tone={appStatusTone[a.status]}>{a.status}</Badge>
            </td>
            <td className="num">{a.grants.length}</td>
            <td className="num">
              <Counts detail={details.get(a.name)} at={at} what="tokens" />
            </td>
            <td className="num">
              <Counts detail={details.get(a.name)} at={at} what="connections" />
            </td>
            <td title={dateTime(a.createdAt)}>{date(a.createdAt)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** Adds an application with its purpose, zone, description and first grants; then opens its page. */
function CreateApp() {
  const [name, setName] = useState('');
  const [purpose, setPurpose] = useState('');
  const [zone, setZone] = useState('');
  const [description, setDescription] = useState('');
  const [grants, setGrants] = useState('');
  const [errors, setErrors] = useState<FieldErrors>({});
  const [busy, setBusy] = useState(false);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const lines = grantLines(grants);
    const body = {
      name: name.trim(),
      ...(purpose.trim() ? { purpose: purpose.trim() } : {}),
      ...(zone.trim() ? { zone: zone.trim() } : {}),
      ...(description.trim() ? { description: description.trim() } : {}),
      ...(lines.length ? { grants: lines } : {}),
    };
    const invalid = inputErrors(api.apps.create.body, body);
    setErrors(invalid ?? {});
    if (invalid) return;
    setBusy(true);
    callCreated(api.apps.create, { body }).then(
      (app) => navigate(`/apps/${encodeURIComponent(app.name)}`),
      (err: unknown) => {
        setBusy(false);
        setErrors(problemErrors(err, appFieldRules, grantItems));
      },
    );
  };
  // A grant's error is shown under the grants, with its number.
  const grantError = Object.entries(errors)
    .filter(([k]) => k.startsWith('grants.'))
    .map(([k, v]) => (v.startsWith('grant ') ? v : `grant ${Number(k.slice(7)) + 1}: ${v}`))
    .join('; ');
  return (
    <form className="stacked-form" onSubmit={submit} aria-label="New application" noValidate>
      <div className="inline-form">
        <CheckedInput
          id="app-name"
          label="Name"
          required
          value={name}
          error={errors.name}
          onChange={setName}
        />
        <CheckedInput
          id="app-purpose"
          label="Purpose (fideslang data use)"
          placeholder="analytics.reporting"
          value={purpose}
          error={errors.purpose}
          onChange={setPurpose}
        />
        <CheckedInput id="app-zone" label="Zone" value={zone} error={errors.zone} onChange={setZone} />
        <CheckedInput
          id="app-description"
          label="Description"
          value={description}
          error={errors.description}
          onChange={setDescription}
        />
      </div>
      <TextAreaField
        id="app-grants"
        label="Grants, one a line: subscribe|publish|pubsub FILTER [group:G] [zone:Z] [device:D]"
        rows={3}
        value={grants}
        error={grantError || errors.grants}
        onChange={setGrants}
        placeholder="subscribe devices/+/telemetry group:pumps"
      />
      <div className="actions">
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Adding…' : 'Add application'}
        </button>
      </div>
      <ErrorLine error={errors['']} />
    </form>
  );
}

/** Applications (backends with a purpose, grants and credentials): the list, and a form to add one. */
export function AppsPage() {
  const apps = useLoad(loadApps, 30_000);
  const mayWrite = useAllows(api.apps.create);
  return (
    <>
      <h1>Applications</h1>
      <p className="muted small">
        Backends that read fleet data or command devices over MQTT, each with a declared purpose and its own
        grants and credentials (docs/apps.md).
        {mayWrite ? '' : ' Read-only: your role does not change applications.'}
      </p>
      {mayWrite ? (
        <section className="panel spaced" aria-label="Add an application">
          <h2>Add an application</h2>
          <CreateApp />
        </section>
      ) : null}
      <Loaded what="applications" data={apps.data} error={apps.error}>
        {(list) => <AppTable list={list} />}
      </Loaded>
    </>
  );
}
