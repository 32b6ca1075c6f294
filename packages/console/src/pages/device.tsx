import { useCallback, useState, type ReactNode } from 'react';
import type { z } from 'zod';
import { api } from '@bulwark/protocol';
import { call, messageOf, send } from '../api.ts';
import { Confirm } from '../components/confirm.tsx';
import { ErrorLine } from '../components/fields.tsx';
import { Badge, Loaded } from '../components/status.tsx';
import { severityTone, stateTone } from '../fleet.ts';
import { ago, dateTime } from '../format.ts';
import { Link } from '../router.tsx';
import { useAllows } from '../session.ts';
import { useLoad } from '../use-load.ts';

type Detail = z.output<(typeof api.devices.show.response)[200]>;
type Access = z.output<typeof api.access.deviceAccess>;
type Attestation = z.output<typeof api.attestation.deviceAttestation>;

/** The lifecycle statuses after which no action applies (the device must be registered again). */
const FINAL: readonly string[] = ['revoked', 'decommissioned', 'lost'];

/** Every action of the device page: the contract it calls (its permission gates the button) and what to say. */
const actions = {
  quarantine: {
    label: 'Quarantine',
    explain: 'Only its quarantine topics and its command topic remain until it is released.',
    done: 'quarantined',
  },
  release: {
    label: 'Release',
    explain: 'Its policies apply again.',
    done: 'released from quarantine',
  },
  lost: {
    label: 'Mark lost',
    explain:
      'Its certificates are revoked, any reappearance is quarantined and raises an alert. Found again, it must be enrolled again.',
    done: 'marked lost',
  },
  decommission: {
    label: 'Decommission',
    explain:
      'Its certificates are revoked and its data erased per the privacy rules, with a proof in the audit log. Its id is never used again. This cannot be undone.',
    done: 'decommissioned',
  },
  revoke: {
    label: 'Revoke',
    explain:
      'Its certificates are revoked and its live session is dropped within a second. It must be registered and enrolled again.',
    done: 'revoked',
  },
} as const satisfies Record<string, { label: string; explain: string; done: string }>;
type Action = keyof typeof actions;

function run(action: Action, id: string): Promise<unknown> {
  const params = { id };
  switch (action) {
    case 'quarantine':
      return send(api.access.quarantine, { params, body: { reason: 'from the console' } });
    case 'release':
      return send(api.access.release, { params, body: { reason: 'from the console' } });
    case 'lost':
      return call(api.devices.markLost, { params, body: { stolen: false } });
    case 'decommission':
      return call(api.devices.decommission, { params, body: {} });
    case 'revoke':
      return call(api.devices.revoke, { params, body: { reason: 'cessationOfOperation' } });
  }
}

/** The actions the device's state allows, whatever the role (the role then hides those it may not call). */
function possible(d: Detail): Action[] {
  if (FINAL.includes(d.status)) return [];
  return [d.state === 'quarantined' ? 'release' : 'quarantine', 'lost', 'decommission', 'revoke'];
}

function ActionDialog(props: {
  action: Action;
  deviceId: string;
  onDone: (message: string) => void;
  onCancel: () => void;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const a = actions[props.action];
  const { action, deviceId, onDone } = props;
  const confirm = () => {
    setBusy(true);
    run(action, deviceId).then(
      () => onDone(`${deviceId} ${a.done}.`),
      (e: unknown) => {
        setBusy(false);
        setError(messageOf(e));
      },
    );
  };
  return (
    <Confirm
      title={`${a.label} ${deviceId}?`}
      confirmLabel={busy ? 'Working…' : `${a.label} ${deviceId}`}
      busy={busy}
      onConfirm={confirm}
      onCancel={props.onCancel}
    >
      <p>{a.explain}</p>
      <ErrorLine error={error} />
    </Confirm>
  );
}

function Identity(props: { d: Detail }) {
  const d = props.d;
  const rows: [string, ReactNode][] = [
    ['State', <Badge tone={stateTone[d.state]}>{d.state}</Badge>],
    ['Lifecycle status', d.status],
    [
      'Connection',
      d.online ? `online since ${d.connectedSince === null ? '?' : dateTime(d.connectedSince)}` : 'offline',
    ],
    ['Last seen', d.lastSeenAt === null ? 'never' : `${ago(d.lastSeenAt)} (${dateTime(d.lastSeenAt)})`],
    ['Group', d.group ?? 'none'],
    ['Zone', d.zone ?? 'none'],
    [
      'Attributes',
      Object.keys(d.attributes).length === 0
        ? 'none'
        : Object.entries(d.attributes)
            .map(([k, v]) => `${k}=${v}`)
            .join(', '),
    ],
    ['Registered', dateTime(d.createdAt)],
    ['Enrolled', d.enrolledAt === null ? 'not yet' : dateTime(d.enrolledAt)],
    ['Quarantined', d.quarantinedAt === null ? 'no' : `since ${dateTime(d.quarantinedAt)}`],
  ];
  return <Facts label="Identity" rows={rows} />;
}

function Facts(props: { label: string; rows: [string, ReactNode][] }) {
  return (
    <dl className="facts" aria-label={props.label}>
      {props.rows.map(([k, v]) => (
        <div key={k}>
          <dt>{k}</dt>
          <dd>{v}</dd>
        </div>
      ))}
    </dl>
  );
}

function Certificates(props: { d: Detail }) {
  const d = props.d;
  return (
    <Facts
      label="Certificates"
      rows={[
        [
          'Newest valid certificate expires',
          d.certificateExpiresAt === null
            ? 'no valid certificate'
            : `${dateTime(d.certificateExpiresAt)} (${ago(d.certificateExpiresAt)})`,
        ],
        ['Revoked', d.revokedAt === null ? 'no' : dateTime(d.revokedAt)],
      ]}
    />
  );
}

function Firmware(props: { d: Detail }) {
  const d = props.d;
  return (
    <Facts
      label="Firmware"
      rows={[
        ['Version', d.firmwareVersion ?? 'not reported'],
        ['Reported', d.firmwareReportedAt === null ? 'never' : dateTime(d.firmwareReportedAt)],
      ]}
    />
  );
}

function EffectiveAccess(props: { access: Access }) {
  const a = props.access;
  return (
    <>
      <p>
        {a.quarantined ? (
          <Badge tone="tone-high">quarantined: only its quarantine and command topics</Badge>
        ) : (
          <>
            Zone <strong>{a.zone ?? 'none'}</strong>
          </>
        )}
        {a.held ? <span className="error"> {a.held}</span> : null}
      </p>
      {a.statements.length === 0 ? (
        <p className="muted">No statement applies: everything is denied (deny by default).</p>
      ) : (
        <table className="data">
          <caption>Statements that apply now</caption>
          <thead>
            <tr>
              <th scope="col">Policy</th>
              <th scope="col">Statement</th>
              <th scope="col">Effect</th>
              <th scope="col">Actions</th>
              <th scope="col">Topics</th>
            </tr>
          </thead>
          <tbody>
            {a.statements.map((s) => (
              <tr key={`${s.policy}/${s.sid}`}>
                <td>{s.policy}</td>
                <td>{s.sid}</td>
                <td>
                  <Badge tone={s.effect === 'allow' ? 'tone-ok' : 'tone-critical'}>{s.effect}</Badge>
                </td>
                <td>{s.actions.join(', ')}</td>
                <td>
                  <code>{s.resources.join(' ')}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {a.dropped.length > 0 ? (
        <ul aria-label="Statements that do not apply">
          {a.dropped.map((x) => (
            <li key={`${x.policy}/${x.statement}`}>
              {x.policy}/{x.statement}: <span className="muted">{x.reason}</span>
            </li>
          ))}
        </ul>
      ) : null}
    </>
  );
}

function AttestationFacts(props: { a: Attestation }) {
  const a = props.a;
  return (
    <Facts
      label="Attestation"
      rows={[
        ['Standing', a.standing],
        ['TPM key', a.key ? `${a.key.status} (${a.key.algorithm})` : 'none registered'],
        ['Last verdict', a.last ? `${a.last.tier}: ${a.last.detail} (${ago(a.last.at)})` : 'none'],
        ['Due', a.dueAt === null ? 'n/a' : dateTime(a.dueAt)],
      ]}
    />
  );
}

function DeviceAlerts(props: { id: string }) {
  const load = useCallback(
    () =>
      call(api.monitor.listAlerts, {
        query: { device: props.id, status: 'open,acknowledged,resolved', limit: 20 },
      }),
    [props.id],
  );
  const alerts = useLoad(load, 30_000);
  return (
    <Loaded what="alerts" data={alerts.data} error={alerts.error}>
      {({ alerts: list }) =>
        list.length === 0 ? (
          <p className="calm">No alerts about this device.</p>
        ) : (
          <ul className="plain" aria-label="Recent alerts">
            {list.map((a) => (
              <li key={a.id}>
                <Badge tone={severityTone(a.severity)}>{a.severity}</Badge> {a.title}{' '}
                <span className="muted">
                  · {a.status} · {ago(a.lastSeen)}
                </span>
              </li>
            ))}
          </ul>
        )
      }
    </Loaded>
  );
}

function DeviceAudit(props: { id: string }) {
  const load = useCallback(
    () => call(api.audit.query, { query: { subject: `device:${props.id}`, order: 'desc', limit: 25 } }),
    [props.id],
  );
  const audit = useLoad(load, 30_000);
  return (
    <Loaded what="the audit trail" data={audit.data} error={audit.error}>
      {({ entries }) =>
        entries.length === 0 ? (
          <p className="muted">No entries.</p>
        ) : (
          <table className="data">
            <caption className="visually-hidden">Audit trail, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Event</th>
                <th scope="col">Actor</th>
              </tr>
            </thead>
            <tbody>
              {entries.map((e) => (
                <tr key={e.seq}>
                  <td title={dateTime(e.ts)}>{ago(e.ts)}</td>
                  <td>{e.type}</td>
                  <td>{e.actor}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )
      }
    </Loaded>
  );
}

function Section(props: { title: string; children: ReactNode }) {
  return (
    <section className="panel spaced" aria-label={props.title}>
      <h2>{props.title}</h2>
      {props.children}
    </section>
  );
}

/** One device: identity, certificates, firmware, effective access and why, attestation, alerts, audit trail. */
export function DevicePage(props: { id: string }) {
  const { id } = props;
  const loadDevice = useCallback(() => call(api.devices.show, { params: { id } }), [id]);
  const loadAccess = useCallback(() => call(api.access.describeAccess, { params: { id } }), [id]);
  const loadAttestation = useCallback(() => call(api.attestation.showDevice, { params: { id } }), [id]);
  const device = useLoad(loadDevice, 30_000);
  const access = useLoad(loadAccess, 30_000);
  const attestation = useLoad(loadAttestation, 60_000);
  const mayReadAlerts = useAllows(api.monitor.listAlerts);
  const mayReadAudit = useAllows(api.audit.query);
  const allowed: Record<Action, boolean> = {
    quarantine: useAllows(api.access.quarantine),
    release: useAllows(api.access.release),
    lost: useAllows(api.devices.markLost),
    decommission: useAllows(api.devices.decommission),
    revoke: useAllows(api.devices.revoke),
  };
  const [acting, setActing] = useState<Action>();
  const [message, setMessage] = useState<string>();
  const reloadDevice = device.reload;
  const reloadAccess = access.reload;
  const cancel = useCallback(() => setActing(undefined), []);
  const done = useCallback(
    (text: string) => {
      setActing(undefined);
      setMessage(text);
      reloadDevice();
      reloadAccess();
    },
    [reloadDevice, reloadAccess],
  );
  return (
    <>
      <p className="small">
        <Link to="/devices">← Devices</Link>
      </p>
      <h1>{id}</h1>
      <Loaded what="the device" data={device.data} error={device.error}>
        {(d) => {
          const offered = possible(d).filter((a) => allowed[a]);
          return (
            <>
              <div className="toolbar">
                {offered.map((a) => (
                  <button
                    key={a}
                    type="button"
                    className={a === 'release' ? undefined : 'danger'}
                    onClick={() => setActing(a)}
                  >
                    {actions[a].label}
                  </button>
                ))}
                <p role="status" className="status-line">
                  {message}
                </p>
              </div>
              <div className="grid">
                <Section title="Identity">
                  <Identity d={d} />
                </Section>
                <Section title="Certificates">
                  <Certificates d={d} />
                </Section>
                <Section title="Firmware">
                  <Firmware d={d} />
                </Section>
                <Section title="Attestation">
                  <Loaded what="attestation" data={attestation.data} error={attestation.error}>
                    {(a) => <AttestationFacts a={a} />}
                  </Loaded>
                </Section>
              </div>
              <Section title="Effective access now">
                <Loaded what="its access" data={access.data} error={access.error}>
                  {(a) => <EffectiveAccess access={a} />}
                </Loaded>
              </Section>
              {d.recentDenials.length > 0 ? (
                <Section title="Recent refusals">
                  <ul className="plain">
                    {d.recentDenials.map((x) => (
                      <li key={`${x.at}-${x.type}-${x.topic ?? ''}`}>
                        {ago(x.at)}: {x.type} {x.topic ? <code>{x.topic}</code> : null}{' '}
                        <span className="muted">{x.reason}</span>
                      </li>
                    ))}
                  </ul>
                </Section>
              ) : null}
              {mayReadAlerts ? (
                <Section title="Alerts">
                  <DeviceAlerts id={id} />
                </Section>
              ) : null}
              {mayReadAudit ? (
                <Section title="Audit trail">
                  {/* Remounted after each action, so its entry shows at once. */}
                  <DeviceAudit key={message ?? ''} id={id} />
                </Section>
              ) : null}
            </>
          );
        }}
      </Loaded>
      {acting ? <ActionDialog action={acting} deviceId={id} onDone={done} onCancel={cancel} /> : null}
    </>
  );
}
