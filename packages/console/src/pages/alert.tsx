import { useCallback, useState, type FormEvent, type ReactNode } from 'react';
import { api } from '@bulwark/protocol';
import { call, messageOf } from '../api.ts';
import { dataSummary } from '../audit-entries.ts';
import { Confirm } from '../components/confirm.tsx';
import { Facts, Section } from '../components/facts.tsx';
import { ErrorLine } from '../components/fields.tsx';
import { Badge, Loaded } from '../components/status.tsx';
import { ColumnHeads } from '../components/table.tsx';
import { useAction } from '../components/use-action.ts';
import { severityTone, type Alert } from '../fleet.ts';
import { ago, dateTime } from '../format.ts';
import { Link } from '../router.tsx';
import { useAllows, useSession } from '../session.ts';
import { useLoad } from '../use-load.ts';

type Response = Alert['responses'][number];

/** What each response does, said before it runs (the confirmation) and after (the status line). */
const responseText: Record<Response, { label: string; explain: string }> = {
  quarantine: {
    label: 'Quarantine the device',
    explain: 'Only its quarantine topics and its command topic remain until it is released.',
  },
  revoke: {
    label: 'Revoke the device',
    explain:
      'Its certificates are revoked and its session dropped; it must be registered and enrolled again.',
  },
  ban_address: {
    label: 'Ban the address',
    explain: 'The address in the evidence is refused for the ban’s duration (devices behind it too).',
  },
  disable_user: {
    label: 'Disable the user',
    explain: 'The user in the evidence can no longer sign in; their sessions and tokens stop working.',
  },
  notify: {
    label: 'Notify',
    explain: 'The notification channels that take this alert are sent it again.',
  },
};

/** A value of the evidence as text: strings as they are, anything else as compact JSON. */
function evidenceText(value: unknown): ReactNode {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return <code>{JSON.stringify(value)}</code>;
}

function Summary(props: { a: Alert }) {
  const a = props.a;
  const rows: [string, ReactNode][] = [
    ['Severity', <Badge tone={severityTone(a.severity)}>{a.severity}</Badge>],
    ['Status', a.status],
    ['Detector', <code>{a.detector}</code>],
    [
      'About',
      a.deviceId ? <Link to={`/devices/${encodeURIComponent(a.deviceId)}`}>{a.deviceId}</Link> : a.subject,
    ],
    ['Times seen', a.occurrences.toLocaleString('en')],
    ['First seen', `${dateTime(a.firstSeen)} (${ago(a.firstSeen)})`],
    ['Last seen', `${dateTime(a.lastSeen)} (${ago(a.lastSeen)})`],
    ['Assigned to', a.assignee ?? 'nobody'],
    [
      'Acknowledged',
      a.acknowledgedAt === null ? 'no' : `by ${a.acknowledgedBy ?? '?'}, ${dateTime(a.acknowledgedAt)}`,
    ],
    [
      'Resolved',
      a.resolvedAt === null
        ? 'no'
        : `by ${a.resolvedBy ?? '?'}, ${dateTime(a.resolvedAt)}: ${a.resolution ?? ''}`,
    ],
  ];
  return <Facts label="Summary" rows={rows} />;
}

function Evidence(props: { a: Alert }) {
  const entries = Object.entries(props.a.evidence);
  if (entries.length === 0) return <p className="muted">The detector recorded no evidence.</p>;
  return <Facts label="Evidence" rows={entries.map(([k, v]) => [k, evidenceText(v)] as const)} />;
}

function ResponsesTaken(props: { a: Alert }) {
  const runs = props.a.responsesRun;
  if (runs.length === 0) return <p className="muted">No response has run for this alert.</p>;
  return (
    <table className="data compact">
      <caption className="visually-hidden">Responses taken, oldest first</caption>
      <ColumnHeads columns={['When', 'Response', 'How', 'By', 'Outcome']} />
      <tbody>
        {runs.map((r) => (
          <tr key={`${r.at}-${r.action}`}>
            <td title={dateTime(r.at)}>{ago(r.at)}</td>
            <td>{r.action}</td>
            <td>{r.automatic ? 'automatic' : 'by hand'}</td>
            <td>{r.actor}</td>
            <td>
              <Badge tone={r.ok ? 'tone-ok' : 'tone-critical'}>{r.ok ? 'done' : 'failed'}</Badge>
              {r.detail ? <span className="muted small"> {r.detail}</span> : null}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** The notes thread, oldest first, and a note to add (`alerts:write`). */
function Notes(props: { a: Alert; mayWrite: boolean; onChanged: (message: string) => void }) {
  const { a, onChanged } = props;
  const [text, setText] = useState('');
  const { busy, error, setError, run } = useAction();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const note = text.trim();
    if (note === '') return setError('Note: write something to add.');
    if (note.length > 2000) return setError('Note: at most 2,000 characters.');
    run(
      () => call(api.monitor.note, { params: { id: a.id }, body: { text: note } }),
      () => {
        setText('');
        onChanged('Note added.');
      },
    );
  };
  return (
    <>
      {a.notes.length === 0 ? (
        <p className="muted">No notes yet.</p>
      ) : (
        <ol className="notes" aria-label="Notes, oldest first">
          {a.notes.map((n, i) => (
            <li key={`${n.at}-${i}`}>
              <p className="note-meta">
                <strong>{n.by}</strong> <span className="muted">{dateTime(n.at)}</span>
              </p>
              <p className="note-text">{n.text}</p>
            </li>
          ))}
        </ol>
      )}
      {props.mayWrite ? (
        <form className="note-form" onSubmit={submit}>
          <label htmlFor="alert-note">Add a note</label>
          <textarea
            id="alert-note"
            rows={3}
            maxLength={2000}
            value={text}
            onChange={(e) => setText(e.target.value)}
          />
          <ErrorLine error={error} />
          <div className="actions">
            <button type="submit" disabled={busy}>
              Add note
            </button>
          </div>
        </form>
      ) : null}
    </>
  );
}

/**
 * The alert's audit entries (its subject's, with this alert's id), newest first: who did what, when. Remounted
 * (read again) when the alert changes.
 */
function History(props: { a: Alert }) {
  const { id, subject } = props.a;
  const load = useCallback(
    () => call(api.audit.query, { query: { subject, order: 'desc', limit: 500 } }),
    [subject],
  );
  const audit = useLoad(load);
  return (
    <Loaded what="its history" data={audit.data} error={audit.error}>
      {({ entries }) => {
        const mine = entries.filter((e) => e.data.alertId === id);
        return mine.length === 0 ? (
          <p className="muted">No entries.</p>
        ) : (
          <table className="data compact">
            <caption className="visually-hidden">History, newest first</caption>
            <ColumnHeads columns={['When', 'Event', 'By', 'Details']} />
            <tbody>
              {mine.map((e) => (
                <tr key={e.seq}>
                  <td title={dateTime(e.ts)}>{ago(e.ts)}</td>
                  <td>
                    <code>{e.type}</code>
                  </td>
                  <td>{e.actor}</td>
                  <td className="wrap-anywhere">{dataSummary(e.data, 4)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        );
      }}
    </Loaded>
  );
}

type Dialog = { kind: 'resolve' } | { kind: 'respond'; action: Response };

/** Resolve (with the resolution written) or run a response, after a confirmation. */
function ActionDialog(props: {
  a: Alert;
  dialog: Dialog;
  onDone: (message: string) => void;
  onCancel: () => void;
}) {
  const { a, dialog, onDone } = props;
  const [resolution, setResolution] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const confirm = () => {
    let run: () => Promise<unknown>;
    let done: string;
    if (dialog.kind === 'resolve') {
      const why = resolution.trim();
      if (why === '') return setError('Resolution: say how it was resolved.');
      run = () => call(api.monitor.resolve, { params: { id: a.id }, body: { resolution: why } });
      done = 'Alert resolved.';
    } else {
      const { action } = dialog;
      run = () => call(api.monitor.respond, { params: { id: a.id }, body: { action } });
      done = `Response ${action} run.`;
    }
    setBusy(true);
    setError(undefined);
    run().then(
      () => onDone(done),
      (err: unknown) => {
        setBusy(false);
        setError(messageOf(err));
      },
    );
  };
  const text = dialog.kind === 'respond' ? responseText[dialog.action] : undefined;
  return (
    <Confirm
      title={text ? `${text.label}?` : 'Resolve this alert?'}
      confirmLabel={busy ? 'Working…' : text ? text.label : 'Resolve'}
      busy={busy}
      onConfirm={confirm}
      onCancel={props.onCancel}
    >
      {text ? (
        <p>{text.explain} It is recorded in the alert and the audit log.</p>
      ) : (
        <div className="field">
          <label htmlFor="alert-resolution">Resolution</label>
          <textarea
            id="alert-resolution"
            rows={3}
            maxLength={1000}
            value={resolution}
            onChange={(e) => setResolution(e.target.value)}
          />
        </div>
      )}
      <ErrorLine error={error} />
    </Confirm>
  );
}

/** Assign to a user by name (checked against the users the role may list), to oneself, or to nobody. */
function Assign(props: { a: Alert; onDone: (message: string) => void }) {
  const { a, onDone } = props;
  const me = useSession().info.username;
  const mayListUsers = useAllows(api.users.listUsers);
  const loadUsers = useCallback(
    () => (mayListUsers ? call(api.users.listUsers) : Promise.resolve(undefined)),
    [mayListUsers],
  );
  const users = useLoad(loadUsers);
  const [name, setName] = useState('');
  const { busy, error, setError, run } = useAction();
  const assign = (assignee: string | null) =>
    run(
      () => call(api.monitor.assign, { params: { id: a.id }, body: { assignee } }),
      () => {
        setName('');
        onDone(assignee === null ? 'Alert unassigned.' : `Assigned to ${assignee}.`);
      },
    );
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const username = name.trim();
    if (username === '') return setError('Assign to: name a user.');
    const known = users.data?.filter((u) => !u.disabled).map((u) => u.username);
    if (known && !known.includes(username)) return setError(`Assign to: no active user named ${username}.`);
    assign(username);
  };
  return (
    <form className="inline-form" onSubmit={submit} aria-label="Assign the alert">
      {a.assignee !== me ? (
        <button type="button" onClick={() => assign(me)} disabled={busy}>
          Assign to me
        </button>
      ) : null}
      {a.assignee !== null ? (
        <button type="button" onClick={() => assign(null)} disabled={busy}>
          Unassign
        </button>
      ) : null}
      <div className="field">
        <label htmlFor="alert-assignee">Assign to</label>
        <input
          id="alert-assignee"
          list="alert-users"
          maxLength={64}
          value={name}
          onChange={(e) => setName(e.target.value)}
        />
        <datalist id="alert-users">
          {(users.data ?? []).map((u) => (
            <option key={u.username} value={u.username} />
          ))}
        </datalist>
      </div>
      <button type="submit" disabled={busy}>
        Assign
      </button>
      <ErrorLine error={error} />
    </form>
  );
}

/**
 * One alert: its summary and evidence, the responses taken, the notes thread, its history in the audit log, and
 * what an operator may do (acknowledge, assign, note, resolve, run a response the profile offers).
 */
export function AlertPage(props: { id: string }) {
  const { id } = props;
  const load = useCallback(() => call(api.monitor.getAlert, { params: { id } }), [id]);
  const alert = useLoad(load, 15_000);
  const { permissions } = useSession().info;
  const mayWrite = useAllows(api.monitor.acknowledge);
  const mayReadAudit = useAllows(api.audit.query);
  const [message, setMessage] = useState<string>();
  const [dialog, setDialog] = useState<Dialog>();
  const [busy, setBusy] = useState(false);
  const { reload } = alert;
  const changed = useCallback(
    (text: string) => {
      setDialog(undefined);
      setMessage(text);
      reload();
    },
    [reload],
  );
  const cancel = useCallback(() => setDialog(undefined), []);
  const acknowledge = () => {
    setBusy(true);
    call(api.monitor.acknowledge, { params: { id } })
      .then(
        () => changed('Alert acknowledged.'),
        (e: unknown) => setMessage(`Could not acknowledge: ${messageOf(e)}`),
      )
      .finally(() => setBusy(false));
  };
  return (
    <>
      <p className="small">
        <Link to="/alerts">← Alerts</Link>
      </p>
      <Loaded what="the alert" data={alert.data} error={alert.error}>
        {(a) => {
          const responses = a.responses.filter((r) =>
            permissions.includes(api.monitor.responsePermissions[r]),
          );
          const open = a.status !== 'resolved';
          return (
            <>
              <h1>{a.title}</h1>
              {mayWrite && open ? (
                <div className="toolbar" role="group" aria-label="Handle the alert">
                  {a.status === 'open' ? (
                    <button type="button" onClick={acknowledge} disabled={busy}>
                      Acknowledge
                    </button>
                  ) : null}
                  <button type="button" onClick={() => setDialog({ kind: 'resolve' })}>
                    Resolve…
                  </button>
                  {responses.map((r) => (
                    <button
                      key={r}
                      type="button"
                      className={r === 'notify' ? undefined : 'danger'}
                      onClick={() => setDialog({ kind: 'respond', action: r })}
                    >
                      {responseText[r].label}…
                    </button>
                  ))}
                </div>
              ) : null}
              <p role="status" className="status-line">
                {message}
              </p>
              <div className="grid">
                <Section title="Summary">
                  <Summary a={a} />
                </Section>
                <Section title="Evidence">
                  <Evidence a={a} />
                </Section>
              </div>
              {mayWrite && open ? (
                <Section title="Assignment">
                  <Assign a={a} onDone={changed} />
                </Section>
              ) : null}
              <Section title="Responses taken">
                <ResponsesTaken a={a} />
              </Section>
              <Section title="Notes">
                <Notes a={a} mayWrite={mayWrite} onChanged={changed} />
              </Section>
              {mayReadAudit ? (
                <Section title="History">
                  <History
                    key={`${a.status}|${a.assignee ?? ''}|${a.notes.length}|${a.responsesRun.length}`}
                    a={a}
                  />
                </Section>
              ) : null}
              {dialog ? <ActionDialog a={a} dialog={dialog} onDone={changed} onCancel={cancel} /> : null}
            </>
          );
        }}
      </Loaded>
    </>
  );
}
