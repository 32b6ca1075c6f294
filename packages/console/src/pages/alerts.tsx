import { useCallback, useEffect, useRef, useState } from 'react';
import { z } from 'zod';
import { api, severities } from '@bulwark/protocol';
import { FALLBACK_REFRESH_MS, useAlertStream } from '../alert-stream.ts';
import { call, messageOf } from '../api.ts';
import { LabelledSelect } from '../components/fields.tsx';
import { Pager, SavedFilterControls, usePaging } from '../components/list-tools.tsx';
import { Badge, Loaded } from '../components/status.tsx';
import { ColumnHeads } from '../components/table.tsx';
import { severitiesWorstFirst, severityTone, type Alert } from '../fleet.ts';
import { ago, dateTime } from '../format.ts';
import { Link } from '../router.tsx';
import { useAllows, useSession } from '../session.ts';
import { useLoad } from '../use-load.ts';

const views = {
  open: { label: 'Open', status: 'open' },
  active: { label: 'Open and acknowledged', status: 'open,acknowledged' },
  resolved: { label: 'Resolved', status: 'resolved' },
  all: { label: 'All, resolved too', status: 'open,acknowledged,resolved' },
} as const;
const viewKeys = ['open', 'active', 'resolved', 'all'] as const;
const assignees = ['anyone', 'me'] as const;

/** What the queue is filtered by: saved per user (list-tools), so it is checked again when read back. */
const alertFilter = z.object({
  view: z.enum(viewKeys),
  minSeverity: z.enum(['any', ...severities]),
  assignee: z.enum(assignees),
});
type AlertFilter = z.output<typeof alertFilter>;
const defaultFilter: AlertFilter = { view: 'active', minSeverity: 'any', assignee: 'anyone' };

/** The queue reads at most this many alerts per filter; the pager pages through them. */
const MAX_ALERTS = 1000;

function StatusText(props: { alert: Alert }) {
  const a = props.alert;
  if (a.status === 'acknowledged') return <>acknowledged by {a.acknowledgedBy ?? '?'}</>;
  if (a.status === 'resolved') return <>resolved by {a.resolvedBy ?? '?'}</>;
  return <>open</>;
}

function AlertRow(props: {
  alert: Alert;
  me: string;
  mayWrite: boolean;
  busy: boolean;
  onAcknowledge: (a: Alert) => void;
  onTake: (a: Alert) => void;
}) {
  const a = props.alert;
  return (
    <tr>
      <td>
        <Badge tone={severityTone(a.severity)}>{a.severity}</Badge>
      </td>
      <td>
        <Link to={`/alerts/${encodeURIComponent(a.id)}`} className="strong">
          {a.title}
        </Link>
        <div className="muted small">
          {a.detector} · {a.deviceId ?? a.subject}
          {a.responsesRun.length > 0
            ? ` · responses: ${a.responsesRun.map((r) => `${r.action}${r.ok ? '' : ' (failed)'}`).join(', ')}`
            : ''}
          {a.notes.length > 0 ? ` · ${a.notes.length} ${a.notes.length === 1 ? 'note' : 'notes'}` : ''}
        </div>
      </td>
      <td className="num">{a.occurrences}</td>
      <td title={dateTime(a.lastSeen)}>{ago(a.lastSeen)}</td>
      <td>
        <StatusText alert={a} />
      </td>
      <td>{a.assignee === null ? <span className="muted">nobody</span> : a.assignee}</td>
      <td className="row-actions">
        {props.mayWrite && a.status === 'open' ? (
          <button
            type="button"
            onClick={() => props.onAcknowledge(a)}
            disabled={props.busy}
            aria-label={`Acknowledge: ${a.title}`}
          >
            Acknowledge
          </button>
        ) : null}
        {props.mayWrite && a.status !== 'resolved' && a.assignee !== props.me ? (
          <button
            type="button"
            onClick={() => props.onTake(a)}
            disabled={props.busy}
            aria-label={`Assign to me: ${a.title}`}
          >
            Assign to me
          </button>
        ) : null}
      </td>
    </tr>
  );
}

function Filters(props: { filter: AlertFilter; onChange: (f: AlertFilter) => void }) {
  const { filter, onChange } = props;
  return (
    <div className="toolbar" role="group" aria-label="Filter the alerts">
      <LabelledSelect
        id="alert-view"
        label="Show"
        value={filter.view}
        options={viewKeys.map((key) => ({ value: key, label: views[key].label }))}
        onChange={(view) => onChange({ ...filter, view })}
      />
      <LabelledSelect
        id="alert-severity"
        label="Severity"
        value={filter.minSeverity}
        options={[
          { value: 'any' as const, label: 'any' },
          ...severitiesWorstFirst.map((s) => ({ value: s, label: s === 'critical' ? s : `${s} or worse` })),
        ]}
        onChange={(minSeverity) => onChange({ ...filter, minSeverity })}
      />
      <LabelledSelect
        id="alert-assignee"
        label="Assigned to"
        value={filter.assignee}
        options={[
          { value: 'anyone' as const, label: 'anyone or nobody' },
          { value: 'me' as const, label: 'me' },
        ]}
        onChange={(assignee) => onChange({ ...filter, assignee })}
      />
    </div>
  );
}

/**
 * The alert queue, newest first, live when the alert stream may be followed: filter by status, severity and
 * assignee (filters can be saved), page through, acknowledge or take an alert with one click, open one for its
 * evidence, notes, responses and history.
 */
export function Alerts() {
  const me = useSession().info.username;
  const [filter, setFilter] = useState<AlertFilter>(defaultFilter);
  const load = useCallback(
    () =>
      call(api.monitor.listAlerts, {
        query: {
          status: views[filter.view].status,
          limit: MAX_ALERTS,
          ...(filter.minSeverity === 'any' ? {} : { minSeverity: filter.minSeverity }),
          ...(filter.assignee === 'me' ? { assignee: me } : {}),
        },
      }),
    [filter, me],
  );
  const mayFollow = useAllows(api.monitor.alertStream);
  const reloadOnEvent = useRef<() => void>(() => undefined);
  const live = useAlertStream(mayFollow, reloadOnEvent);
  // Polled only while the stream is not live; becoming live reads the list again, so nothing raised before the
  // stream connected is missed.
  const alerts = useLoad(load, live ? undefined : FALLBACK_REFRESH_MS);
  useEffect(() => {
    reloadOnEvent.current = alerts.reload;
  }, [alerts.reload]);
  const list = alerts.data?.alerts ?? [];
  const paging = usePaging(list.length);
  const mayWrite = useAllows(api.monitor.acknowledge);
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<string>();
  const { reload } = alerts;
  const act = useCallback(
    (a: Alert, what: string, run: () => Promise<unknown>) => {
      setBusy(true);
      run()
        .then(
          () => setMessage(`${what}: ${a.title}`),
          (e: unknown) => setMessage(`Could not ${what.toLowerCase()} “${a.title}”: ${messageOf(e)}`),
        )
        .finally(() => {
          setBusy(false);
          reload();
        });
    },
    [reload],
  );
  const acknowledge = useCallback(
    (a: Alert) => act(a, 'Acknowledged', () => call(api.monitor.acknowledge, { params: { id: a.id } })),
    [act],
  );
  const take = useCallback(
    (a: Alert) =>
      act(a, 'Assigned to you', () =>
        call(api.monitor.assign, { params: { id: a.id }, body: { assignee: me } }),
      ),
    [act, me],
  );
  const { setOffset } = paging;
  const applyFilter = useCallback(
    (f: AlertFilter) => {
      setFilter(f);
      setOffset(0);
    },
    [setOffset],
  );
  return (
    <>
      <h1>Alerts</h1>
      <Filters filter={filter} onChange={applyFilter} />
      <SavedFilterControls
        id="alert-filters"
        listName="alerts"
        schema={alertFilter}
        current={filter}
        onApply={applyFilter}
      />
      <p role="status" className="status-line">
        {message}
      </p>
      <Loaded what="alerts" data={alerts.data} error={alerts.error}>
        {() =>
          list.length === 0 ? (
            <p className="calm">No alerts here. All quiet.</p>
          ) : (
            <>
              <div className="table-scroll">
                <table className="data">
                  <caption className="visually-hidden">Alerts, newest first</caption>
                  <ColumnHeads
                    columns={[
                      'Severity',
                      'Alert',
                      { label: 'Times', num: true },
                      'Last seen',
                      'Status',
                      'Assignee',
                    ]}
                    actions
                  />
                  <tbody>
                    {paging.slice(list).map((a) => (
                      <AlertRow
                        key={a.id}
                        alert={a}
                        me={me}
                        mayWrite={mayWrite}
                        busy={busy}
                        onAcknowledge={acknowledge}
                        onTake={take}
                      />
                    ))}
                  </tbody>
                </table>
              </div>
              <Pager id="alerts-pager" label="Alerts" paging={paging} />
              {list.length >= MAX_ALERTS ? (
                <p className="muted small">
                  The newest {MAX_ALERTS.toLocaleString('en')} alerts are shown: narrow the filter to see
                  older ones.
                </p>
              ) : null}
            </>
          )
        }
      </Loaded>
    </>
  );
}
