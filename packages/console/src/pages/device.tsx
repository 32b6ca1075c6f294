import { useCallback, useState, type FormEvent, type ReactNode } from 'react';
import type { z } from 'zod';
import { api, commandNameProblem } from '@bulwark/protocol';
import { call, messageOf, send } from '../api.ts';
import { Confirm } from '../components/confirm.tsx';
import { EffectiveAccess } from '../components/effective-access.tsx';
import { Facts, Section } from '../components/facts.tsx';
import { ErrorLine, InputField, SelectField } from '../components/fields.tsx';
import { RateChart } from '../components/rate-chart.tsx';
import { Badge, Loaded } from '../components/status.tsx';
import { ColumnHeads } from '../components/table.tsx';
import {
  commandsFrom,
  metricLabels,
  metricNames,
  metricWindows,
  rateSteps,
  type CommandOutcome,
} from '../device-activity.ts';
import { severityTone, stateTone } from '../fleet.ts';
import { ago, dateTime } from '../format.ts';
import { Link } from '../router.tsx';
import { useAllows } from '../session.ts';
import { useLoad } from '../use-load.ts';

type Detail = z.output<(typeof api.devices.show.response)[200]>;
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

const certificateTone: Record<string, string> = {
  valid: 'tone-ok',
  'not-yet-valid': 'tone-info',
  expired: 'tone-medium',
  revoked: 'tone-critical',
};

/** Every certificate the device was issued, newest first, with its state now; revoked and expired ones too. */
function Certificates(props: { d: Detail }) {
  const { id } = props.d;
  const load = useCallback(() => call(api.devices.certificates, { params: { id } }), [id]);
  const certs = useLoad(load, 60_000);
  const d = props.d;
  return (
    <>
      <Facts
        label="Certificate summary"
        rows={[
          [
            'Newest valid certificate expires',
            d.certificateExpiresAt === null
              ? 'no valid certificate'
              : `${dateTime(d.certificateExpiresAt)} (${ago(d.certificateExpiresAt)})`,
          ],
          ['Device revoked', d.revokedAt === null ? 'no' : dateTime(d.revokedAt)],
        ]}
      />
      <Loaded what="its certificates" data={certs.data} error={certs.error}>
        {({ certificates }) =>
          certificates.length === 0 ? (
            <p className="muted">No certificate issued yet (not enrolled).</p>
          ) : (
            <table className="data compact">
              <caption className="visually-hidden">Certificates, newest first</caption>
              <ColumnHeads columns={['Serial', 'Valid from', 'Valid until', 'State']} />
              <tbody>
                {certificates.map((c) => (
                  <tr key={c.serial}>
                    <td>
                      <code className="serial">{c.serial}</code>
                    </td>
                    <td>{dateTime(c.notBefore)}</td>
                    <td>{dateTime(c.notAfter)}</td>
                    <td>
                      <Badge tone={certificateTone[c.state] ?? 'tone-muted'}>{c.state}</Badge>
                      {c.revokedAt === null ? null : (
                        <div className="muted small">{dateTime(c.revokedAt)}</div>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </Loaded>
    </>
  );
}

/** What the monitor measured: a small chart per rate over the last hour, and the totals since it started. */
function Metrics(props: { id: string }) {
  const { id } = props;
  const load = useCallback(() => call(api.monitor.deviceMetricsOf, { params: { id } }), [id]);
  const metrics = useLoad(load, 15_000);
  return (
    <Loaded what="its metrics" data={metrics.data} error={metrics.error}>
      {(m) => {
        const windows = metricWindows.safeParse(m.windows);
        if (m.totals === null || !windows.success)
          return (
            <p className="muted">
              Nothing measured yet: the device has not connected since the server started.
            </p>
          );
        const totals = m.totals;
        return (
          <>
            <div className="rate-charts">
              {metricNames.map((name, i) => (
                <RateChart
                  key={name}
                  label={metricLabels[name]}
                  steps={rateSteps(windows.data, name)}
                  series={i}
                />
              ))}
            </div>
            <p className="muted small">
              Since the server started: {totals.messagesSent.toLocaleString('en')} messages sent (
              {totals.bytesSent.toLocaleString('en')} bytes), {totals.messagesReceived.toLocaleString('en')}{' '}
              received ({totals.bytesReceived.toLocaleString('en')} bytes).
              {m.openDetectors.length > 0
                ? ` Detectors with an open alert: ${m.openDetectors.join(', ')}.`
                : ''}
            </p>
          </>
        );
      }}
    </Loaded>
  );
}

const outcomeTone: Record<CommandOutcome, string> = {
  waiting: 'tone-info',
  ok: 'tone-ok',
  failed: 'tone-critical',
  refused: 'tone-high',
  timeout: 'tone-medium',
};

/** The device's latest commands from its audit trail (the commands module keeps them there, nowhere else). */
function RecentCommands(props: { id: string }) {
  const { id } = props;
  const load = useCallback(
    () =>
      call(api.audit.query, {
        query: { subject: `device:${id}`, typePrefix: 'device.command_', order: 'desc', limit: 60 },
      }),
    [id],
  );
  const audit = useLoad(load, 30_000);
  return (
    <Loaded what="its commands" data={audit.data} error={audit.error}>
      {({ entries }) => {
        const commands = commandsFrom(entries).slice(0, 20);
        return commands.length === 0 ? (
          <p className="muted">No command sent recently.</p>
        ) : (
          <table className="data compact">
            <caption className="visually-hidden">Recent commands, newest first</caption>
            <ColumnHeads columns={['Sent', 'Command', 'By', 'Outcome']} />
            <tbody>
              {commands.map((c) => (
                <tr key={c.commandId}>
                  <td title={dateTime(c.sentAt)}>{ago(c.sentAt)}</td>
                  <td>
                    <code>{c.name}</code>
                  </td>
                  <td>{c.by}</td>
                  <td>
                    <Badge tone={outcomeTone[c.outcome]}>{c.outcome}</Badge>
                    {c.message ? <span className="muted small"> {c.message}</span> : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        );
      }}
    </Loaded>
  );
}

const waits = ['10s', '30s', '1m'] as const;
type Wait = (typeof waits)[number];
type Outcome = z.output<(typeof api.devices.command.response)[200]>;

/** What the form holds, checked before anything is sent: the name, and the data as JSON. */
function checkCommand(name: string, data: string): { error: string } | { name: string; data: unknown } {
  const problem = commandNameProblem(name);
  if (problem) return { error: `Command name: ${problem}.` };
  if (data.trim() === '') return { name, data: undefined };
  try {
    return { name, data: JSON.parse(data) as unknown };
  } catch {
    return { error: 'Data: not valid JSON.' };
  }
}

/** Sends the device a command after a confirmation, waits for its answer and shows how it ended. */
function SendCommand(props: { id: string; onSent: () => void }) {
  const { id, onSent } = props;
  const [name, setName] = useState('');
  const [data, setData] = useState('');
  const [wait, setWait] = useState<Wait>('30s');
  const [error, setError] = useState<string>();
  const [pending, setPending] = useState<{ name: string; data: unknown }>();
  const [busy, setBusy] = useState(false);
  const [outcome, setOutcome] = useState<Outcome & { name: string }>();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const checked = checkCommand(name.trim(), data);
    if ('error' in checked) return setError(checked.error);
    setError(undefined);
    setPending(checked);
  };
  const cancel = useCallback(() => setPending(undefined), []);
  const confirm = () => {
    if (!pending) return;
    setBusy(true);
    call(api.devices.command, {
      params: { id },
      body: {
        name: pending.name,
        timeout: wait,
        ...(pending.data === undefined ? {} : { data: pending.data }),
      },
    })
      .then(
        (answer) => setOutcome({ ...answer, name: pending.name }),
        (err: unknown) => setError(messageOf(err)),
      )
      .finally(() => {
        setBusy(false);
        setPending(undefined);
        onSent();
      });
  };
  return (
    <form className="inline-form" onSubmit={submit} aria-label="Send a command">
      <InputField
        id="command-name"
        label="Command"
        required
        value={name}
        onChange={setName}
        placeholder="ping"
      />
      <div className="field grow">
        <label htmlFor="command-data">Data (JSON, optional)</label>
        <textarea id="command-data" rows={1} value={data} onChange={(e) => setData(e.target.value)} />
      </div>
      <SelectField
        id="command-wait"
        label="Wait for the answer"
        value={wait}
        options={waits}
        onChange={setWait}
      />
      <div className="actions">
        <button type="submit" disabled={busy}>
          {busy ? 'Waiting for the answer…' : 'Send command'}
        </button>
      </div>
      <ErrorLine error={error} />
      <p role="status" className="command-outcome">
        {outcome ? (
          <>
            <code>{outcome.name}</code>: <Badge tone={outcomeTone[outcome.status]}>{outcome.status}</Badge>{' '}
            {outcome.message ?? ''}
            {outcome.result === undefined ? null : (
              <code className="result"> {JSON.stringify(outcome.result)}</code>
            )}
          </>
        ) : null}
      </p>
      {pending ? (
        <Confirm
          title={`Send ${pending.name} to ${id}?`}
          confirmLabel={busy ? 'Sending…' : `Send ${pending.name}`}
          busy={busy}
          onConfirm={confirm}
          onCancel={cancel}
        >
          <p>
            The device receives it on{' '}
            <code>
              devices/{id}/commands/{pending.name}
            </code>{' '}
            and acts on it; the console waits up to {wait} for its answer. The command and its outcome are
            recorded in the audit log.
          </p>
          {pending.data === undefined ? null : (
            <pre className="command-data">{JSON.stringify(pending.data, null, 2)}</pre>
          )}
        </Confirm>
      ) : null}
    </form>
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
                <Badge tone={severityTone(a.severity)}>{a.severity}</Badge>{' '}
                <Link to={`/alerts/${encodeURIComponent(a.id)}`}>{a.title}</Link>{' '}
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
            <ColumnHeads columns={['Time', 'Event', 'Actor']} />
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

/**
 * One device: identity, certificates, firmware, attestation, effective access and why, metrics, commands, alerts,
 * audit trail, and the actions its state and the role allow.
 */
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
  const maySendCommand = useAllows(api.devices.command);
  const [commandsShown, setCommandsShown] = useState(0);
  // Read again after each command sent, so the list shows it with its outcome at once.
  const commandSent = useCallback(() => setCommandsShown((n) => n + 1), []);
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
              <Section title="Metrics">
                <Metrics id={id} />
              </Section>
              {mayReadAudit || maySendCommand ? (
                <Section title="Commands">
                  {maySendCommand ? <SendCommand id={id} onSent={commandSent} /> : null}
                  {mayReadAudit ? <RecentCommands key={commandsShown} id={id} /> : null}
                </Section>
              ) : null}
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
