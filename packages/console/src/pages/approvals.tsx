import { useCallback, useState } from 'react';
import { api } from '@bulwark/protocol';
import { call, messageOf } from '../api.ts';
import { Confirm } from '../components/confirm.tsx';
import { ErrorLine, InputField } from '../components/fields.tsx';
import { Badge, Loaded } from '../components/status.tsx';
import { ColumnHeads } from '../components/table.tsx';
import { ago, dateTime } from '../format.ts';
import { allows, useSession, type SessionInfo } from '../session.ts';
import { useLoad } from '../use-load.ts';
import { actionLabels, IdList, outcomeOf, type BulkOperation } from './devices.tsx';

const loadPending = () => call(api.operations.listBulk, { query: { status: 'pending', limit: 100 } });
const loadRecent = () => call(api.operations.listBulk, { query: { limit: 20 } });

/** The person behind an actor (`user:ada/token:1` is ada): one's own request cannot be approved by oneself. */
const personOf = (actor: string) => actor.split('/token:')[0] ?? actor;
const isOwn = (info: SessionInfo, op: BulkOperation) => personOf(op.requestedBy) === `user:${info.username}`;
const who = (actor: string | null) => (actor === null ? '' : actor.replace(/^user:/, ''));

const statusTone: Record<BulkOperation['status'], string> = {
  pending: 'tone-medium',
  running: 'tone-info',
  executed: 'tone-ok',
  rejected: 'tone-muted',
  cancelled: 'tone-muted',
  expired: 'tone-muted',
};

type Decision = 'approve' | 'reject' | 'cancel';

/** Confirms a decision on a request, naming the action, how many devices and which. */
function DecisionDialog(props: {
  op: BulkOperation;
  decision: Decision;
  onDone: (text: string) => void;
  onCancel: () => void;
}) {
  const { op, decision, onDone } = props;
  const [note, setNote] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const label = actionLabels[op.action];
  const what = `${label.verb} of ${op.count} device${op.count === 1 ? '' : 's'}`;
  const decide = () => {
    setBusy(true);
    const contract = decision === 'approve' ? api.operations.approveBulk : api.operations.rejectBulk;
    call(contract, { params: { id: op.id }, body: note.trim() ? { note: note.trim() } : {} }).then(
      (done) =>
        onDone(
          decision === 'approve'
            ? outcomeOf(done)
            : `The request to ${what} was ${decision === 'cancel' ? 'withdrawn' : 'rejected'}.`,
        ),
      (e: unknown) => {
        setBusy(false);
        setError(messageOf(e));
      },
    );
  };
  const titles: Record<Decision, string> = {
    approve: `Approve: ${what}?`,
    reject: `Reject: ${what}?`,
    cancel: `Withdraw your request to ${what}?`,
  };
  const buttons: Record<Decision, string> = {
    approve: `Approve and ${label.verb} ${op.count} devices`,
    reject: 'Reject request',
    cancel: 'Withdraw request',
  };
  return (
    <Confirm
      title={titles[decision]}
      confirmLabel={busy ? 'Sending…' : buttons[decision]}
      busy={busy}
      onConfirm={decide}
      onCancel={props.onCancel}
    >
      <p>
        Requested by {who(op.requestedBy)} {ago(op.requestedAt)}
        {op.reason ? `: ${op.reason}` : ''}.
        {decision === 'approve' ? ' It runs as soon as you approve it.' : ' Nothing changes on any device.'}
      </p>
      <IdList ids={op.deviceIds} />
      <InputField
        id="decision-note"
        label="Note (recorded in the audit log)"
        value={note}
        maxLength={256}
        onChange={setNote}
      />
      <ErrorLine error={error} />
    </Confirm>
  );
}

function PendingRequest(props: { op: BulkOperation; onDecide: (op: BulkOperation, d: Decision) => void }) {
  const { info } = useSession();
  const { op, onDecide } = props;
  const own = isOwn(info, op);
  // The approver needs the permission of the action itself (e.g. devices:quarantine), as the server checks.
  const mayDecide = allows(info, api.operations.bulkActionContracts[op.action]);
  const label = actionLabels[op.action];
  return (
    <section
      className="panel spaced"
      aria-label={`${label.button} ${op.count} devices, requested by ${who(op.requestedBy)}`}
    >
      <h2>
        {label.button} {op.count} devices
      </h2>
      <dl className="facts">
        <dt>Requested by</dt>
        <dd>
          {who(op.requestedBy)} <span title={dateTime(op.requestedAt)}>{ago(op.requestedAt)}</span>
        </dd>
        <dt>Selection</dt>
        <dd>
          {op.selection.kind === 'ids'
            ? 'chosen devices'
            : op.selection.kind === 'group'
              ? `group ${op.selection.group}`
              : `zone ${op.selection.zone}`}
        </dd>
        <dt>Reason</dt>
        <dd>{op.reason ?? <span className="muted">none given</span>}</dd>
        <dt>Expires</dt>
        <dd>{op.expiresAt === null ? '' : dateTime(op.expiresAt)}</dd>
        <dt>Devices</dt>
        <dd>
          <code>{op.deviceIds.join(', ')}</code>
        </dd>
      </dl>
      <div className="actions">
        {own ? (
          <>
            <span className="muted">Your request: another person must approve it.</span>
            <button type="button" onClick={() => onDecide(op, 'cancel')}>
              Withdraw
            </button>
          </>
        ) : mayDecide ? (
          <>
            <button type="button" className="primary" onClick={() => onDecide(op, 'approve')}>
              Approve
            </button>
            <button type="button" onClick={() => onDecide(op, 'reject')}>
              Reject
            </button>
          </>
        ) : (
          <span className="muted">Your role ({info.role}) cannot decide this request.</span>
        )}
      </div>
    </section>
  );
}

function RecentTable(props: { ops: BulkOperation[] }) {
  const ops = props.ops.filter((o) => o.status !== 'pending');
  if (ops.length === 0) return <p className="muted">No decided requests yet.</p>;
  return (
    <table className="data">
      <caption className="visually-hidden">Recent bulk actions</caption>
      <ColumnHeads
        columns={['Action', 'Devices', 'Status', 'Requested by', 'Decided by', 'Outcome', 'When']}
      />
      <tbody>
        {ops.map((o) => (
          <tr key={o.id}>
            <th scope="row">{actionLabels[o.action].button}</th>
            <td className="num">{o.count}</td>
            <td>
              <Badge tone={statusTone[o.status]}>{o.status}</Badge>
            </td>
            <td>{who(o.requestedBy)}</td>
            <td>{o.needsApproval ? who(o.decidedBy) : <span className="muted">not needed</span>}</td>
            <td>
              {o.status === 'executed'
                ? `${o.summary.ok} done, ${o.summary.skipped} unchanged, ${o.summary.failed} failed`
                : ''}
            </td>
            <td title={dateTime(o.requestedAt)}>{ago(o.requestedAt)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/**
 * Bulk device actions waiting for a second person (dual control): what each would do to which devices, with
 * approve and reject for those allowed; one's own request can only be withdrawn. Below, the latest decided ones.
 */
export function ApprovalsPage() {
  const pending = useLoad(loadPending, 15_000);
  const recent = useLoad(loadRecent, 15_000);
  const [deciding, setDeciding] = useState<{ op: BulkOperation; decision: Decision }>();
  const [message, setMessage] = useState<string>();
  const { reload: reloadPending } = pending;
  const { reload: reloadRecent } = recent;
  const close = useCallback(() => setDeciding(undefined), []);
  const done = useCallback(
    (text: string) => {
      setDeciding(undefined);
      setMessage(text);
      reloadPending();
      reloadRecent();
    },
    [reloadPending, reloadRecent],
  );
  const decide = useCallback((op: BulkOperation, decision: Decision) => setDeciding({ op, decision }), []);
  return (
    <>
      <h1>Approvals</h1>
      <p className="muted">
        Bulk device actions over many devices wait here for a second person (the baseline&apos;s{' '}
        <code>approvals.bulkDevices</code>).
      </p>
      <p role="status" className="status-line">
        {message}
      </p>
      <h2>Waiting for approval</h2>
      <Loaded what="pending requests" data={pending.data} error={pending.error}>
        {(d) =>
          d.operations.length === 0 ? (
            <p className="muted">Nothing waits for approval.</p>
          ) : (
            d.operations.map((op) => <PendingRequest key={op.id} op={op} onDecide={decide} />)
          )
        }
      </Loaded>
      <h2>Recent</h2>
      <Loaded what="recent requests" data={recent.data} error={recent.error}>
        {(d) => <RecentTable ops={d.operations} />}
      </Loaded>
      {deciding ? (
        <DecisionDialog op={deciding.op} decision={deciding.decision} onDone={done} onCancel={close} />
      ) : null}
    </>
  );
}
