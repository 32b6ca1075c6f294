import { useCallback, useState, type FormEvent } from 'react';
import type { z } from 'zod';
import { api } from '@bulwark/protocol';
import { call, callCreated, messageOf, send } from '../api.ts';
import { Confirm } from '../components/confirm.tsx';
import { Facts, Section } from '../components/facts.tsx';
import { ErrorLine, InputField } from '../components/fields.tsx';
import {
  CheckedInput,
  FieldNote,
  inputErrors,
  invalidProps,
  problemErrors,
  TextAreaField,
  type FieldErrors,
} from '../components/form-errors.tsx';
import { CopyButton, OneTimeSecret } from '../components/one-time-secret.tsx';
import { Badge, Loaded } from '../components/status.tsx';
import { ColumnHeads } from '../components/table.tsx';
import { ago, dateTime } from '../format.ts';
import { Link } from '../router.tsx';
import { useAllows } from '../session.ts';
import { useLoad } from '../use-load.ts';
import { appFieldRules, appStatusTone, grantItems, tokenActive } from './apps.tsx';

type App = z.output<typeof api.apps.app>;
type Detail = z.output<typeof api.apps.appDetail>;
type Token = z.output<typeof api.apps.appToken>;
type CreatedToken = z.output<typeof api.apps.createdToken>;
type Issued = z.output<typeof api.apps.issuedCertificate>;

/** 1,234 B, 12.3 KiB, 4.5 MiB. */
function bytes(n: number): string {
  if (n < 1024) return `${n.toLocaleString('en')} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(1)} GiB`;
}

function About(props: { app: Detail }) {
  const a = props.app;
  return (
    <Facts
      label="About"
      rows={[
        ['Status', <Badge tone={appStatusTone[a.status]}>{a.status}</Badge>],
        ['Purpose', a.purpose ?? 'none: no device data may be granted'],
        ['Zone', a.zone ?? 'none'],
        ['Description', a.description ?? 'none'],
        ['MQTT user name and client id', <code>{`${a.name} or ${a.name}/<instance>`}</code>],
        ['Added', dateTime(a.createdAt)],
        ['Changed', dateTime(a.updatedAt)],
        ['Revoked', a.revokedAt === null ? 'no' : dateTime(a.revokedAt)],
      ]}
    />
  );
}

/** Purpose, zone and description; an emptied field is cleared (the API's null). */
function EditApp(props: { app: App; onSaved: (a: App) => void; onCancel: () => void }) {
  const { app, onSaved } = props;
  const [purpose, setPurpose] = useState(app.purpose ?? '');
  const [zone, setZone] = useState(app.zone ?? '');
  const [description, setDescription] = useState(app.description ?? '');
  const [errors, setErrors] = useState<FieldErrors>({});
  const [busy, setBusy] = useState(false);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const body = {
      purpose: purpose.trim() || null,
      zone: zone.trim() || null,
      description: description.trim() || null,
    };
    const invalid = inputErrors(api.apps.update.body, body);
    setErrors(invalid ?? {});
    if (invalid) return;
    setBusy(true);
    call(api.apps.update, { params: { name: app.name }, body }).then(onSaved, (err: unknown) => {
      setBusy(false);
      setErrors(problemErrors(err, appFieldRules));
    });
  };
  return (
    <form className="inline-form" onSubmit={submit} aria-label="Change the application" noValidate>
      <CheckedInput
        id="edit-purpose"
        label="Purpose"
        value={purpose}
        error={errors.purpose}
        onChange={setPurpose}
      />
      <CheckedInput id="edit-zone" label="Zone" value={zone} error={errors.zone} onChange={setZone} />
      <CheckedInput
        id="edit-description"
        label="Description"
        value={description}
        error={errors.description}
        onChange={setDescription}
      />
      <div className="actions">
        <button type="button" onClick={props.onCancel}>
          Cancel
        </button>
        <button type="submit" className="primary" disabled={busy}>
          Save
        </button>
      </div>
      <ErrorLine error={errors['']} />
    </form>
  );
}

/**
 * The app's grants (its policy `app.<name>`), edited as a list and saved as a whole (PUT …/grants): each
 * grant's error is shown under it, from the contract's check or from the server's (`grant 2 ("…"): …`). The
 * page remounts it with the grants saved.
 */
function GrantsEditor(props: { app: App; onSaved: (a: App) => void }) {
  const { app, onSaved } = props;
  const [grants, setGrants] = useState<string[]>(app.grants);
  const [errors, setErrors] = useState<FieldErrors>({});
  const [busy, setBusy] = useState(false);
  const change = (i: number, value: string) => setGrants((g) => g.map((x, j) => (j === i ? value : x)));
  const remove = (i: number) => {
    setGrants((g) => g.filter((_, j) => j !== i));
    setErrors({});
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const body = { grants: grants.map((g) => g.trim()).filter(Boolean) };
    const invalid = inputErrors(api.apps.putGrants.body, body);
    setErrors(invalid ?? {});
    if (invalid) return;
    setBusy(true);
    call(api.apps.putGrants, { params: { name: app.name }, body }).then(
      (saved) => {
        setBusy(false);
        setGrants(saved.grants);
        onSaved(saved);
      },
      (err: unknown) => {
        setBusy(false);
        setErrors(problemErrors(err, [], grantItems));
      },
    );
  };
  return (
    <form onSubmit={submit} aria-label="Grants" noValidate>
      <p className="muted small">
        One grant a line: <code>subscribe|publish|pubsub FILTER [group:G]… [zone:Z]… [device:D]…</code>. An
        app without a purpose is granted no topic under <code>devices/</code>.
      </p>
      {grants.length === 0 ? (
        <p className="muted">No grants: only its own apps/{app.name}/# topics.</p>
      ) : null}
      <ol className="grant-list">
        {grants.map((g, i) => {
          const id = `grant-${i}`;
          const error = errors[`grants.${i}`];
          return (
            <li key={i}>
              <label htmlFor={id} className="visually-hidden">
                Grant {i + 1}
              </label>
              <input
                id={id}
                value={g}
                maxLength={512}
                onChange={(e) => change(i, e.target.value)}
                {...invalidProps(id, error)}
              />
              <button type="button" onClick={() => remove(i)} aria-label={`Remove grant ${i + 1}`}>
                Remove
              </button>
              <FieldNote id={id} error={error} />
            </li>
          );
        })}
      </ol>
      <div className="toolbar">
        <button type="button" onClick={() => setGrants((g) => [...g, ''])}>
          Add a grant
        </button>
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Saving…' : 'Save grants'}
        </button>
      </div>
      <ErrorLine error={errors[''] ?? errors.grants} />
    </form>
  );
}

function ReadOnlyGrants(props: { app: App }) {
  if (props.app.grants.length === 0)
    return <p className="muted">No grants: only its own apps/{props.app.name}/# topics.</p>;
  return (
    <ol className="grant-list" aria-label="Grants">
      {props.app.grants.map((g, i) => (
        <li key={i}>
          <code>{g}</code>
        </li>
      ))}
    </ol>
  );
}

function tokenStatus(t: Token, at: number) {
  if (t.revokedAt !== null) return <Badge tone="tone-muted">revoked</Badge>;
  if (!tokenActive(t, at)) return <Badge tone="tone-muted">expired</Badge>;
  return <Badge tone="tone-ok">active</Badge>;
}

/** Issues an MQTT token: its lifetime (a duration; empty: no expiry), then the secret shown once. */
function IssueToken(props: { app: string; onIssued: (t: CreatedToken) => void }) {
  const [ttl, setTtl] = useState('90d');
  const [errors, setErrors] = useState<FieldErrors>({});
  const [busy, setBusy] = useState(false);
  const { app, onIssued } = props;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const body = ttl.trim() ? { ttl: ttl.trim() } : {};
    const invalid = inputErrors(api.apps.createToken.body, body);
    setErrors(invalid ?? {});
    if (invalid) return;
    setBusy(true);
    callCreated(api.apps.createToken, { params: { name: app }, body })
      .then(onIssued, (err: unknown) => setErrors(problemErrors(err, ['ttl'])))
      .finally(() => setBusy(false));
  };
  return (
    <form className="inline-form" onSubmit={submit} aria-label="New token" noValidate>
      <CheckedInput
        id="token-ttl"
        label="Expires after (empty: never)"
        placeholder="90d"
        value={ttl}
        error={errors.ttl}
        onChange={setTtl}
      />
      <div className="actions">
        <button type="submit" disabled={busy}>
          Issue token
        </button>
      </div>
      <ErrorLine error={errors['']} />
    </form>
  );
}

function Tokens(props: { app: Detail; at: number; mayWrite: boolean; onChanged: () => void }) {
  const { app, onChanged } = props;
  const [issued, setIssued] = useState<CreatedToken>();
  const [revoking, setRevoking] = useState<Token>();
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<string>();
  const cancel = useCallback(() => setRevoking(undefined), []);
  const onIssued = (t: CreatedToken) => {
    setIssued(t);
    setMessage(undefined);
    onChanged();
  };
  const revoke = () => {
    if (!revoking) return;
    setBusy(true);
    send(api.apps.revokeToken, { params: { name: app.name, id: revoking.id } })
      .then(
        () => setMessage(`Token ${revoking.id} revoked: its sessions end within a second.`),
        (e: unknown) => setMessage(`Could not revoke token ${revoking.id}: ${messageOf(e)}`),
      )
      .finally(() => {
        setBusy(false);
        setRevoking(undefined);
        if (issued?.id === revoking.id) setIssued(undefined);
        onChanged();
      });
  };
  const writable = props.mayWrite && app.status === 'active';
  return (
    <>
      <p className="muted small">
        An MQTT password over TLS: user name <code>{app.name}</code>, client id <code>{app.name}</code> or{' '}
        <code>{app.name}/&lt;instance&gt;</code>. Stored as a hash: the secret is shown once.
      </p>
      {writable ? <IssueToken app={app.name} onIssued={onIssued} /> : null}
      {issued ? (
        <OneTimeSecret label="New token" secret={issued.token} onDone={() => setIssued(undefined)}>
          <p>
            Token <code>{issued.id}</code>,{' '}
            {issued.expiresAt === null ? 'no expiry' : `expires ${dateTime(issued.expiresAt)}`}. Copy it now:
            it is not shown again.
          </p>
        </OneTimeSecret>
      ) : null}
      <p role="status" className="status-line">
        {message}
      </p>
      {app.tokens.length === 0 ? (
        <p className="muted">No tokens.</p>
      ) : (
        <table className="data">
          <caption className="visually-hidden">Tokens of {app.name}</caption>
          <ColumnHeads columns={['Token', 'Created', 'Expires', 'Last used', 'Status']} actions />
          <tbody>
            {app.tokens.map((t) => (
              <tr key={t.id}>
                <th scope="row">
                  <code>{t.id}</code>
                </th>
                <td>
                  {dateTime(t.createdAt)} <span className="muted small">by {t.createdBy}</span>
                </td>
                <td>{t.expiresAt === null ? 'never' : dateTime(t.expiresAt)}</td>
                <td>
                  {t.lastUsedAt === null ? 'never' : `${ago(t.lastUsedAt)} from ${t.lastUsedFrom ?? '?'}`}
                </td>
                <td>{tokenStatus(t, props.at)}</td>
                <td>
                  {writable && tokenActive(t, props.at) ? (
                    <button
                      type="button"
                      className="danger"
                      onClick={() => setRevoking(t)}
                      aria-label={`Revoke token ${t.id}`}
                    >
                      Revoke
                    </button>
                  ) : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {revoking ? (
        <Confirm
          title="Revoke this token?"
          confirmLabel={busy ? 'Revoking…' : 'Revoke the token'}
          busy={busy}
          onConfirm={revoke}
          onCancel={cancel}
        >
          <p>
            Token <code>{revoking.id}</code> of {app.name} is refused from now on, and the sessions it
            authenticated end within a second.
          </p>
        </Confirm>
      ) : null}
    </>
  );
}

/** Signs a client certificate from a PKCS#10 request made where the app's key lives. */
function IssueCertificate(props: { app: string; onIssued: (c: Issued) => void }) {
  const [csr, setCsr] = useState('');
  const [errors, setErrors] = useState<FieldErrors>({});
  const [busy, setBusy] = useState(false);
  const { app, onIssued } = props;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const body = { csr: csr.trim() };
    const invalid = body.csr ? inputErrors(api.apps.issueCertificate.body, body) : { csr: 'paste a CSR' };
    setErrors(invalid ?? {});
    if (invalid) return;
    setBusy(true);
    callCreated(api.apps.issueCertificate, { params: { name: app }, body }).then(
      (c) => {
        setBusy(false);
        setCsr('');
        onIssued(c);
      },
      (err: unknown) => {
        setBusy(false);
        // Whatever the CA refuses is about the request pasted.
        setErrors({ csr: messageOf(err) });
      },
    );
  };
  return (
    <form onSubmit={submit} aria-label="New certificate" noValidate>
      <TextAreaField
        id="app-csr"
        label="Certificate signing request (PEM or base64 DER)"
        rows={5}
        value={csr}
        error={errors.csr}
        onChange={setCsr}
        placeholder={`openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ${app}.key -subj /CN=${app}`}
      />
      <div className="actions">
        <button type="submit" disabled={busy}>
          Sign the request
        </button>
      </div>
    </form>
  );
}

function Certificates(props: { app: Detail; at: number; mayWrite: boolean; onChanged: () => void }) {
  const { app, onChanged } = props;
  const [issued, setIssued] = useState<Issued>();
  const writable = props.mayWrite && app.status === 'active';
  return (
    <>
      <p className="muted small">
        Subject <code>CN={app.name}, OU=bulwark-apps</code>; revoked with the app.{' '}
        <code>bulwark app cert</code> makes the key and the request in one step.
      </p>
      {writable ? (
        <IssueCertificate
          app={app.name}
          onIssued={(c) => {
            setIssued(c);
            onChanged();
          }}
        />
      ) : null}
      {issued ? (
        <div className="notice" role="status" aria-label="New certificate">
          <p>
            Certificate <code>{issued.serial}</code>, valid until {dateTime(issued.notAfter)}.
          </p>
          <pre className="pem" aria-label="Certificate (PEM)">
            {issued.certificatePem}
          </pre>
          <div className="actions">
            <CopyButton text={issued.certificatePem} label="Copy the certificate" />
            <CopyButton text={issued.chainPem} label="Copy the CA chain" />
            <button type="button" onClick={() => setIssued(undefined)}>
              Done
            </button>
          </div>
        </div>
      ) : null}
      {app.certificates.length === 0 ? (
        <p className="muted">No certificates.</p>
      ) : (
        <table className="data">
          <caption className="visually-hidden">Certificates of {app.name}</caption>
          <ColumnHeads columns={['Serial', 'Valid from', 'Valid until', 'Status']} />
          <tbody>
            {app.certificates.map((c) => (
              <tr key={c.serial}>
                <th scope="row">
                  <code>{c.serial}</code>
                </th>
                <td>{dateTime(c.notBefore)}</td>
                <td>{dateTime(c.notAfter)}</td>
                <td>
                  {c.revokedAt !== null ? (
                    <Badge tone="tone-muted">revoked {dateTime(c.revokedAt)}</Badge>
                  ) : c.notAfter <= props.at ? (
                    <Badge tone="tone-muted">expired</Badge>
                  ) : (
                    <Badge tone="tone-ok">valid</Badge>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}

function Delivery(props: { app: Detail }) {
  const d = props.app.delivery;
  return (
    <Facts
      label="Delivery"
      rows={[
        ['Connections', d.connections],
        ['Messages delivered', d.messages.toLocaleString('en')],
        ['Delivered', bytes(d.bytes)],
        ['Dropped (could not keep up)', d.dropped.toLocaleString('en')],
        ['Waiting in its connections', bytes(d.queuedBytes)],
        ['Last report', d.updatedAt === null ? 'never delivered' : ago(d.updatedAt)],
      ]}
    />
  );
}

function RevokeApp(props: { app: string; onDone: (message: string) => void; onCancel: () => void }) {
  const [reason, setReason] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const { app, onDone } = props;
  const revoke = () => {
    setBusy(true);
    call(api.apps.revoke, {
      params: { name: app },
      query: reason.trim() ? { reason: reason.trim() } : {},
    }).then(
      () => onDone(`${app} revoked, with its tokens and certificates.`),
      (e: unknown) => {
        setBusy(false);
        setError(messageOf(e));
      },
    );
  };
  return (
    <Confirm
      title={`Revoke ${app}?`}
      confirmLabel={busy ? 'Revoking…' : `Revoke ${app}`}
      busy={busy}
      onConfirm={revoke}
      onCancel={props.onCancel}
    >
      <p>
        Its tokens and certificates are revoked with it and its live sessions end within a second. It keeps
        its name and records, and gets no new credentials or grants. This cannot be undone.
      </p>
      <InputField
        id="revoke-app-reason"
        label="Reason (recorded in the audit log)"
        value={reason}
        maxLength={256}
        onChange={setReason}
      />
      <ErrorLine error={error} />
    </Confirm>
  );
}

/** One application: what it is for, its grants, its tokens and certificates, what it was delivered. */
export function AppPage(props: { name: string }) {
  const { name } = props;
  const load = useCallback(
    async () => ({ app: await call(api.apps.show, { params: { name } }), at: Date.now() }),
    [name],
  );
  const detail = useLoad(load, 30_000);
  const mayWrite = useAllows(api.apps.update);
  const [editing, setEditing] = useState(false);
  const [revoking, setRevoking] = useState(false);
  const [message, setMessage] = useState<string>();
  const { reload } = detail;
  const cancelRevoke = useCallback(() => setRevoking(false), []);
  const revoked = useCallback(
    (text: string) => {
      setRevoking(false);
      setMessage(text);
      reload();
    },
    [reload],
  );
  return (
    <>
      <p className="small">
        <Link to="/apps">← Applications</Link>
      </p>
      <h1>{name}</h1>
      <Loaded what="the application" data={detail.data} error={detail.error}>
        {({ app, at }) => {
          const writable = mayWrite && app.status === 'active';
          return (
            <>
              <div className="toolbar">
                {writable && !editing ? (
                  <button type="button" onClick={() => setEditing(true)}>
                    Change purpose, zone or description
                  </button>
                ) : null}
                {writable ? (
                  <button type="button" className="danger" onClick={() => setRevoking(true)}>
                    Revoke application
                  </button>
                ) : null}
                <p role="status" className="status-line">
                  {message}
                </p>
              </div>
              <div className="grid">
                <Section title="About">
                  {editing ? (
                    <EditApp
                      app={app}
                      onCancel={() => setEditing(false)}
                      onSaved={() => {
                        setEditing(false);
                        setMessage(`${name} changed.`);
                        reload();
                      }}
                    />
                  ) : (
                    <About app={app} />
                  )}
                </Section>
                <Section title="Delivery">
                  <Delivery app={app} />
                </Section>
              </div>
              <Section title="Grants">
                {writable ? (
                  // Remounted when the saved grants change elsewhere, so the editor starts from them.
                  <GrantsEditor
                    key={app.grants.join('\n')}
                    app={app}
                    onSaved={(saved) => {
                      setMessage(`Grants of ${name} saved: ${saved.grants.length}.`);
                      reload();
                    }}
                  />
                ) : (
                  <ReadOnlyGrants app={app} />
                )}
              </Section>
              <Section title="Tokens">
                <Tokens app={app} at={at} mayWrite={mayWrite} onChanged={reload} />
              </Section>
              <Section title="Certificates">
                <Certificates app={app} at={at} mayWrite={mayWrite} onChanged={reload} />
              </Section>
            </>
          );
        }}
      </Loaded>
      {revoking ? <RevokeApp app={name} onDone={revoked} onCancel={cancelRevoke} /> : null}
    </>
  );
}
