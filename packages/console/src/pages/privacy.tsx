import { useCallback, useState, type FormEvent } from 'react';
import type { z } from 'zod';
import { api, privacyRequestKinds } from '@bulwark/protocol';
import { call, callCreated } from '../api.ts';
import { Confirm } from '../components/confirm.tsx';
import { ErrorLine, LabelledSelect, SelectField } from '../components/fields.tsx';
import {
  CheckedInput,
  inputErrors,
  problemErrors,
  TextAreaField,
  type FieldErrors,
} from '../components/form-errors.tsx';
import { Badge, Loaded } from '../components/status.tsx';
import { ColumnHeads } from '../components/table.tsx';
import { date, dateTime, plural } from '../format.ts';
import { useAllows } from '../session.ts';
import { useLoad } from '../use-load.ts';
import { ProcessingRecord } from './privacy-record.tsx';
import { Schemas } from './privacy-schemas.tsx';

type Request = z.output<typeof api.privacy.privacyRequest>;
type Outcome = z.output<typeof api.privacy.requestOutcome>;
type SubjectExport = z.output<typeof api.privacy.subjectExport>;
type Subject = z.output<typeof api.privacy.subject>;
type Kind = Request['kind'];
type StatusFilter = 'open' | 'completed' | 'rejected' | 'all';

const DAY_MS = 86_400_000;

const kindLabel: Record<Kind, string> = {
  access: 'access (Art. 15)',
  rectification: 'rectification (Art. 16)',
  erasure: 'erasure (Art. 17)',
  restriction: 'restriction (Art. 18)',
};

/** What running a request does, said before it runs. */
const runExplain: Record<Exclude<Kind, 'rectification'>, string> = {
  access: 'Everything Bulwark holds about the subject is exported, and the request is completed.',
  erasure:
    "The subject's messages, retained messages, linked user accounts, consents and data key are deleted (crypto-shredding), and the audit log's personal values erased. This cannot be undone.",
  restriction: "The subject's data is kept but delivered to no one until the restriction is lifted.",
};

/**
 * Where a request stands against its statutory deadline (GDPR Art. 12(3): one month) at `now`: days left, or
 * overdue while still open; a closed request says when it was closed, and whether that was late.
 */
export function deadlineOf(r: Request, now: number): { text: string; overdue: boolean } {
  if (r.status !== 'open') {
    if (r.completedAt === null) return { text: r.status, overdue: false };
    const late =
      r.completedAt > r.dueAt ? `, ${plural(Math.ceil((r.completedAt - r.dueAt) / DAY_MS), 'day')} late` : '';
    return { text: `${r.status} ${date(r.completedAt)}${late}`, overdue: false };
  }
  const left = r.dueAt - now;
  if (left < 0 || r.overdueAt !== null)
    return { text: `overdue by ${plural(Math.max(1, Math.floor(-left / DAY_MS)), 'day')}`, overdue: true };
  return { text: `${plural(Math.ceil(left / DAY_MS), 'day')} left`, overdue: false };
}

const statusTone = { open: 'tone-info', completed: 'tone-ok', rejected: 'tone-muted' } as const;

/** The counts a completed request recorded (never the data). */
const resultText = (r: Request) =>
  r.result === null
    ? ''
    : Object.entries(r.result)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') || 'nothing held';

/**
 * An access request's export as a JSON file to save. The API answers it once, with the run, so the page makes
 * the file from that answer when asked (a `blob:` link, let go of a minute later).
 */
function ExportDownload(props: { data: SubjectExport }) {
  const { data } = props;
  const save = () => {
    const url = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: 'application/json' }));
    const link = document.createElement('a');
    link.href = url;
    link.download = `bulwark-export-${data.subject}.json`;
    link.click();
    window.setTimeout(() => URL.revokeObjectURL(url), 60_000);
  };
  const records = Object.values(data.modules).reduce((n, rows) => n + rows.length, 0);
  return (
    <p>
      Export of {data.subject}: {plural(records, 'record')} in{' '}
      {plural(Object.keys(data.modules).length, 'module')},{' '}
      {plural(data.audit.length, 'audit entry', 'audit entries')}.{' '}
      <button type="button" onClick={save}>
        Download the export (JSON)
      </button>
    </p>
  );
}

function outcomeText(o: Outcome): string {
  const r = o.request;
  const subject = r.subject ?? 'an erased subject';
  if (r.status === 'open')
    return `Request ${r.id} (${r.kind} for ${subject}) recorded: open, due ${date(r.dueAt)}.`;
  return `Request ${r.id} (${r.kind}) ${r.status}${r.result ? `: ${resultText(r)}` : ''}.`;
}

/** Records a request for a subject; run at once only when asked (erasure and restriction after a confirmation). */
function NewRequest(props: { onDone: (o: Outcome) => void }) {
  const [subject, setSubject] = useState('');
  const [kind, setKind] = useState<Kind>('access');
  const [note, setNote] = useState('');
  const [runNow, setRunNow] = useState(false);
  const [errors, setErrors] = useState<FieldErrors>({});
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const { onDone } = props;
  const body = {
    subject: subject.trim(),
    kind,
    hold: !(runNow && kind !== 'rectification'),
    ...(note.trim() ? { note: note.trim() } : {}),
  };
  const send = () => {
    setBusy(true);
    callCreated(api.privacy.createRequest, { body }).then(
      (o) => {
        setBusy(false);
        setConfirming(false);
        setSubject('');
        setNote('');
        onDone(o);
      },
      (err: unknown) => {
        setBusy(false);
        setConfirming(false);
        setErrors(problemErrors(err, ['subject', 'kind', 'note']));
      },
    );
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const invalid = inputErrors(api.privacy.createRequest.body, body);
    setErrors(invalid ?? {});
    if (invalid) return;
    if (!body.hold && kind !== 'access') setConfirming(true);
    else send();
  };
  const cancel = useCallback(() => setConfirming(false), []);
  return (
    <form onSubmit={submit} aria-label="New request" noValidate>
      <div className="inline-form">
        <CheckedInput
          id="request-subject"
          label="Subject id"
          placeholder="u-17"
          value={subject}
          error={errors.subject}
          onChange={setSubject}
        />
        <SelectField
          id="request-kind"
          label="Request"
          value={kind}
          options={privacyRequestKinds.map((k) => ({ value: k, label: kindLabel[k] }))}
          onChange={setKind}
        />
        <div className="field checkbox-field">
          <label>
            <input
              type="checkbox"
              checked={runNow && kind !== 'rectification'}
              disabled={kind === 'rectification'}
              onChange={(e) => setRunNow(e.target.checked)}
            />{' '}
            Run it now
          </label>
        </div>
      </div>
      <TextAreaField
        id="request-note"
        label="Note (how the identity was verified; cleared by an erasure)"
        rows={2}
        maxLength={2000}
        value={note}
        error={errors.note}
        onChange={setNote}
      />
      <div className="actions">
        <button type="submit" className="primary" disabled={busy}>
          Record the request
        </button>
      </div>
      <ErrorLine error={errors['']} />
      {confirming ? (
        <Confirm
          title={`Run the ${kind} of ${body.subject} now?`}
          confirmLabel={busy ? 'Working…' : `Record and run the ${kind}`}
          busy={busy}
          onConfirm={send}
          onCancel={cancel}
        >
          <p>{runExplain[kind === 'rectification' ? 'access' : kind]}</p>
        </Confirm>
      ) : null}
    </form>
  );
}

type Acting = { request: Request; action: 'run' } | { request: Request; action: 'completed' | 'rejected' };

/** Runs an open request, or closes it by hand with a note (a rectification done, a request rejected). */
function RequestDialog(props: { acting: Acting; onDone: (o: Outcome) => void; onCancel: () => void }) {
  const { acting, onDone } = props;
  const r = acting.request;
  const [note, setNote] = useState('');
  const [errors, setErrors] = useState<FieldErrors>({});
  const [busy, setBusy] = useState(false);
  const fail = (err: unknown) => {
    setBusy(false);
    setErrors(problemErrors(err, ['note']));
  };
  const confirm = () => {
    if (acting.action === 'run') {
      setBusy(true);
      call(api.privacy.runRequest, { params: { id: r.id } }).then(onDone, fail);
      return;
    }
    const body = { status: acting.action, note: note.trim() };
    const invalid = inputErrors(api.privacy.completeRequest.body, body);
    setErrors(invalid ?? {});
    if (invalid) return;
    setBusy(true);
    call(api.privacy.completeRequest, { params: { id: r.id }, body }).then(
      (request) => onDone({ request }),
      fail,
    );
  };
  const verb = acting.action === 'run' ? 'Run' : acting.action === 'completed' ? 'Complete' : 'Reject';
  return (
    <Confirm
      title={`${verb} the ${r.kind} request of ${r.subject ?? 'an erased subject'}?`}
      confirmLabel={busy ? 'Working…' : `${verb} ${r.id}`}
      busy={busy}
      onConfirm={confirm}
      onCancel={props.onCancel}
    >
      {acting.action === 'run' ? (
        <p>{runExplain[r.kind === 'rectification' ? 'access' : r.kind]}</p>
      ) : (
        <TextAreaField
          id="close-note"
          label={acting.action === 'completed' ? 'What was done' : 'Why it is rejected (Art. 12(5))'}
          rows={3}
          maxLength={2000}
          value={note}
          error={errors.note}
          onChange={setNote}
        />
      )}
      <ErrorLine error={errors['']} />
    </Confirm>
  );
}

function RequestRow(props: { request: Request; now: number; mayWrite: boolean; onAct: (a: Acting) => void }) {
  const r = props.request;
  const deadline = deadlineOf(r, props.now);
  const open = props.mayWrite && r.status === 'open';
  return (
    <tr className={deadline.overdue ? 'overdue' : undefined}>
      <th scope="row">
        <code>{r.id}</code>
        <div className="muted small">by {r.createdBy}</div>
      </th>
      <td>{kindLabel[r.kind]}</td>
      <td className="nowrap">{r.subject ?? <span className="muted">erased</span>}</td>
      <td className="nowrap" title={dateTime(r.receivedAt)}>
        {date(r.receivedAt)}
      </td>
      <td className="nowrap" title={dateTime(r.dueAt)}>
        {date(r.dueAt)}
      </td>
      <td>{deadline.overdue ? <Badge tone="tone-critical">{deadline.text}</Badge> : deadline.text}</td>
      <td>
        <Badge tone={statusTone[r.status]}>{r.status}</Badge>
        {r.result ? <div className="muted small">{resultText(r)}</div> : null}
        {r.note ? <div className="muted small">{r.note}</div> : null}
      </td>
      <td className="row-actions">
        {open && r.kind !== 'rectification' ? (
          <button
            type="button"
            onClick={() => props.onAct({ request: r, action: 'run' })}
            aria-label={`Run ${r.id}`}
          >
            Run
          </button>
        ) : null}
        {open && r.kind === 'rectification' ? (
          <button
            type="button"
            onClick={() => props.onAct({ request: r, action: 'completed' })}
            aria-label={`Complete ${r.id}`}
          >
            Complete
          </button>
        ) : null}
        {open ? (
          <button
            type="button"
            className="danger"
            onClick={() => props.onAct({ request: r, action: 'rejected' })}
            aria-label={`Reject ${r.id}`}
          >
            Reject
          </button>
        ) : null}
      </td>
    </tr>
  );
}

const filters: readonly { value: StatusFilter; label: string }[] = [
  { value: 'open', label: 'open' },
  { value: 'completed', label: 'completed' },
  { value: 'rejected', label: 'rejected' },
  { value: 'all', label: 'all' },
];

/** Data-subject requests with their deadlines; record, run and close them. */
function Requests(props: { onChanged: () => void }) {
  const [filter, setFilter] = useState<StatusFilter>('all');
  const load = useCallback(
    async () => ({
      requests: await call(api.privacy.listRequests, { query: filter === 'all' ? {} : { status: filter } }),
      at: Date.now(),
    }),
    [filter],
  );
  const requests = useLoad(load, 30_000);
  const mayWrite = useAllows(api.privacy.createRequest);
  const [acting, setActing] = useState<Acting>();
  const [outcome, setOutcome] = useState<Outcome>();
  const { reload } = requests;
  const { onChanged } = props;
  const done = useCallback(
    (o: Outcome) => {
      setActing(undefined);
      setOutcome(o);
      reload();
      onChanged();
    },
    [reload, onChanged],
  );
  const cancel = useCallback(() => setActing(undefined), []);
  return (
    <section className="block" aria-labelledby="requests">
      <h2 id="requests">Data-subject requests</h2>
      <p className="muted small">
        Each is due one month after it is received (GDPR Art. 12(3)); an open request past its due date raises
        an alert until it is closed.
      </p>
      {mayWrite ? (
        <section className="panel spaced" aria-label="Record a request">
          <h3>Record a request</h3>
          <NewRequest onDone={done} />
        </section>
      ) : null}
      {outcome ? (
        <div className="notice spaced" role="status" aria-label="Request outcome">
          <p>{outcomeText(outcome)}</p>
          {outcome.export ? <ExportDownload data={outcome.export} /> : null}
        </div>
      ) : null}
      <div className="toolbar">
        <LabelledSelect
          id="request-filter"
          label="Show"
          value={filter}
          options={filters}
          onChange={setFilter}
        />
      </div>
      <Loaded what="requests" data={requests.data} error={requests.error}>
        {({ requests: list, at }) =>
          list.length === 0 ? (
            <p className="muted">No requests{filter === 'all' ? '' : ` ${filter}`}.</p>
          ) : (
            <table className="data">
              <caption className="visually-hidden">Data-subject requests, newest first</caption>
              <ColumnHeads
                columns={['Request', 'Kind', 'Subject', 'Received', 'Due', 'Deadline', 'Status']}
                actions
              />
              <tbody>
                {list.map((r) => (
                  <RequestRow key={r.id} request={r} now={at} mayWrite={mayWrite} onAct={setActing} />
                ))}
              </tbody>
            </table>
          )
        }
      </Loaded>
      {acting ? <RequestDialog acting={acting} onDone={done} onCancel={cancel} /> : null}
    </section>
  );
}

/** A subject's consents, read when asked (one request per subject). */
function Consents(props: { id: string }) {
  const load = useCallback(() => call(api.privacy.showSubject, { params: { id: props.id } }), [props.id]);
  const subject = useLoad(load);
  return (
    <Loaded what="consents" data={subject.data} error={subject.error}>
      {(s) =>
        s.consents.length === 0 ? (
          <span className="muted">none recorded</span>
        ) : (
          <ul className="plain">
            {s.consents.map((c) => (
              <li key={c.purpose}>
                <Badge tone={c.status === 'given' ? 'tone-ok' : 'tone-muted'}>{c.status}</Badge> {c.purpose}{' '}
                <span className="muted small">
                  notice {c.noticeVersion}, {date(c.updatedAt)}
                </span>
              </li>
            ))}
          </ul>
        )
      }
    </Loaded>
  );
}

function SubjectRow(props: { subject: Subject }) {
  const s = props.subject;
  const [open, setOpen] = useState(false);
  return (
    <tr>
      <th scope="row">{s.id}</th>
      <td>{s.kind}</td>
      <td>{s.devices.join(', ') || <span className="muted">none</span>}</td>
      <td>{s.users.join(', ') || <span className="muted">none</span>}</td>
      <td>
        {s.restrictedAt === null ? 'no' : <Badge tone="tone-medium">{`since ${date(s.restrictedAt)}`}</Badge>}
      </td>
      <td>
        <details onToggle={(e) => setOpen(e.currentTarget.open)}>
          <summary>Consents</summary>
          {open ? <Consents id={s.id} /> : null}
        </details>
      </td>
    </tr>
  );
}

const SUBJECTS_SHOWN = 200;
const loadSubjects = () => call(api.privacy.listSubjects, { query: { limit: SUBJECTS_SHOWN } });

/** The data subjects with their linked devices and users, and their consents (read-only here). */
function Subjects() {
  const subjects = useLoad(loadSubjects, 60_000);
  return (
    <section className="block" aria-labelledby="subjects">
      <h2 id="subjects">Data subjects and consents</h2>
      <Loaded what="data subjects" data={subjects.data} error={subjects.error}>
        {({ subjects: list, next }) =>
          list.length === 0 ? (
            <p className="muted">No data subjects recorded (`bulwark privacy subject add`).</p>
          ) : (
            <>
              <table className="data">
                <caption className="visually-hidden">Data subjects</caption>
                <ColumnHeads columns={['Subject', 'Kind', 'Devices', 'Users', 'Restricted', 'Consents']} />
                <tbody>
                  {list.map((s) => (
                    <SubjectRow key={s.id} subject={s} />
                  ))}
                </tbody>
              </table>
              {next !== null ? (
                <p className="muted small">
                  The first {SUBJECTS_SHOWN} subjects; `bulwark privacy subject list` lists them all.
                </p>
              ) : null}
            </>
          )
        }
      </Loaded>
    </section>
  );
}

/** Privacy: requests and their deadlines, data schemas (with a payload test), subjects, the Art. 30 record. */
export function PrivacyPage() {
  const mayWrite = useAllows(api.privacy.createRequest);
  // A request run (an erasure, a restriction) changes the subjects: they are read again.
  const [generation, setGeneration] = useState(0);
  const changed = useCallback(() => setGeneration((g) => g + 1), []);
  return (
    <>
      <h1>Privacy</h1>
      {mayWrite ? null : <p className="muted small">Read-only: your role does not change privacy data.</p>}
      <Requests onChanged={changed} />
      <Schemas />
      <Subjects key={generation} />
      <ProcessingRecord />
    </>
  );
}
