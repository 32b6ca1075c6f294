import { useCallback, useEffect, useRef, useState, type RefObject } from 'react';
import { api } from '@bulwark/protocol';
import { call, messageOf } from '../api.ts';
import { LabelledSelect } from '../components/fields.tsx';
import { Badge, Loaded } from '../components/status.tsx';
import { severityTone, type Alert } from '../fleet.ts';
import { ago, dateTime } from '../format.ts';
import { useAllows } from '../session.ts';
import { follow, type FollowState } from '../sse.ts';
import { useLoad } from '../use-load.ts';

const views = {
  open: { label: 'Open', status: 'open' },
  active: { label: 'Open and acknowledged', status: 'open,acknowledged' },
  all: { label: 'All, resolved too', status: 'open,acknowledged,resolved' },
} as const;
type View = keyof typeof views;

function AlertRow(props: {
  alert: Alert;
  mayAcknowledge: boolean;
  onAcknowledge: (a: Alert) => void;
  busy: boolean;
}) {
  const a = props.alert;
  return (
    <tr>
      <td>
        <Badge tone={severityTone(a.severity)}>{a.severity}</Badge>
      </td>
      <td>
        <strong>{a.title}</strong>
        <div className="muted small">
          {a.detector} · {a.deviceId ?? a.subject}
          {a.responsesRun.length > 0
            ? ` · responses: ${a.responsesRun.map((r) => `${r.action}${r.ok ? '' : ' (failed)'}`).join(', ')}`
            : ''}
        </div>
      </td>
      <td className="num">{a.occurrences}</td>
      <td title={dateTime(a.lastSeen)}>{ago(a.lastSeen)}</td>
      <td>{a.status === 'acknowledged' ? `acknowledged by ${a.acknowledgedBy ?? '?'}` : a.status}</td>
      <td>
        {props.mayAcknowledge && a.status === 'open' ? (
          <button
            type="button"
            onClick={() => props.onAcknowledge(a)}
            disabled={props.busy}
            aria-label={`Acknowledge: ${a.title}`}
          >
            Acknowledge
          </button>
        ) : null}
      </td>
    </tr>
  );
}

/** How often the list is read again when the alert stream is not live (not allowed, connecting, broken). */
const FALLBACK_REFRESH_MS = 15_000;
/** The stream's events reload the list at most this often. */
const COALESCE_MS = 1_000;

/**
 * Follows the alert stream while `mayFollow`, calling `reload` (at most once every COALESCE_MS) when an alert
 * changes; returns whether the stream is live, so the caller can fall back to polling when it is not.
 */
function useAlertStream(mayFollow: boolean, reload: RefObject<() => void>): boolean {
  const [state, setState] = useState<FollowState>();
  useEffect(() => {
    if (!mayFollow) return;
    let timer: number | undefined;
    const stop = follow(api.monitor.alertStream, {
      schema: api.audit.auditEntry,
      onEvent: () => {
        if (timer !== undefined) return;
        timer = window.setTimeout(() => {
          timer = undefined;
          reload.current();
        }, COALESCE_MS);
      },
      onState: (next) => setState(next),
    });
    return () => {
      stop();
      window.clearTimeout(timer);
    };
  }, [mayFollow, reload]);
  return mayFollow && state === 'live';
}

/** The alert queue, newest first, live when the alert stream may be followed: acknowledge with one click. */
export function Alerts() {
  const [view, setView] = useState<View>('active');
  const load = useCallback(
    () => call(api.monitor.listAlerts, { query: { status: views[view].status, limit: 500 } }),
    [view],
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
  const mayAcknowledge = useAllows(api.monitor.acknowledge);
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<string>();
  const { reload } = alerts;
  const acknowledge = useCallback(
    (a: Alert) => {
      setBusy(true);
      call(api.monitor.acknowledge, { params: { id: a.id } })
        .then(
          () => setMessage(`Acknowledged: ${a.title}`),
          (e: unknown) => setMessage(`Could not acknowledge “${a.title}”: ${messageOf(e)}`),
        )
        .finally(() => {
          setBusy(false);
          reload();
        });
    },
    [reload],
  );
  return (
    <>
      <h1>Alerts</h1>
      <div className="toolbar">
        <LabelledSelect
          id="alert-view"
          label="Show"
          value={view}
          options={Object.entries(views).map(([key, v]) => ({ value: key as View, label: v.label }))}
          onChange={setView}
        />
        <p role="status" className="status-line">
          {message}
        </p>
      </div>
      <Loaded what="alerts" data={alerts.data} error={alerts.error}>
        {({ alerts: list }) =>
          list.length === 0 ? (
            <p className="calm">No alerts here. All quiet.</p>
          ) : (
            <table className="data">
              <caption className="visually-hidden">Alerts, newest first</caption>
              <thead>
                <tr>
                  <th scope="col">Severity</th>
                  <th scope="col">Alert</th>
                  <th scope="col" className="num">
                    Times
                  </th>
                  <th scope="col">Last seen</th>
                  <th scope="col">Status</th>
                  <th scope="col">
                    <span className="visually-hidden">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {list.map((a) => (
                  <AlertRow
                    key={a.id}
                    alert={a}
                    mayAcknowledge={mayAcknowledge}
                    onAcknowledge={acknowledge}
                    busy={busy}
                  />
                ))}
              </tbody>
            </table>
          )
        }
      </Loaded>
    </>
  );
}
