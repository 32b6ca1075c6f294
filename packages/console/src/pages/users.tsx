import { useCallback, useState, type FormEvent } from 'react';
import type { z } from 'zod';
import { api } from '@bulwark/protocol';
import { call, callCreated, messageOf, send } from '../api.ts';
import { Confirm } from '../components/confirm.tsx';
import { ErrorLine, InputField, SelectField } from '../components/fields.tsx';
import { OneTimeSecret } from '../components/one-time-secret.tsx';
import { Badge, Loaded } from '../components/status.tsx';
import { ColumnHeads } from '../components/table.tsx';
import { useAction } from '../components/use-action.ts';
import { ago, dateTime } from '../format.ts';
import { useAllows, useSession } from '../session.ts';
import { useLoad } from '../use-load.ts';

type User = z.output<typeof api.users.user>;
type Token = z.output<typeof api.users.apiToken>;
type Role = (typeof api.users.roles)[number];
type Created = z.output<(typeof api.users.createToken.response)[201]>;
const expiries = ['1d', '7d', '30d', '90d', '365d'] as const;

const loadUsers = () => call(api.users.listUsers);
/** The tokens with when they were read (whether one has expired is judged at that time). */
const loadTokens = async () => ({ tokens: await call(api.users.listTokens), at: Date.now() });

function secondFactor(u: User): string {
  const factors = [
    ...(u.twoFactor.totp ? ['TOTP'] : []),
    ...(u.twoFactor.webauthn > 0 ? [`${u.twoFactor.webauthn} passkey(s)`] : []),
  ];
  if (factors.length === 0) return u.twoFactorRequired ? 'none (required)' : 'none';
  return `${factors.join(', ')} · ${u.twoFactor.recoveryCodesLeft} recovery codes`;
}

/** Device groups as typed: empty is every group (null), else a comma-separated list. */
const groupsOf = (text: string): string[] | null => {
  const list = text
    .split(',')
    .map((g) => g.trim())
    .filter((g) => g !== '');
  return list.length === 0 ? null : list;
};
const groupsText = (groups: string[] | null) => (groups === null ? '' : groups.join(', '));

/** A one-time setup secret: the user exchanges it for a password and a second factor at first sign-in. */
interface SetupShown {
  username: string;
  setupSecret: string;
  setupExpiresAt: number;
  why: 'created' | 'reset';
}

function SetupSecret(props: { setup: SetupShown; onDone: () => void }) {
  const { setup } = props;
  return (
    <OneTimeSecret label="Setup secret" secret={setup.setupSecret} onDone={props.onDone}>
      <p>
        {setup.why === 'created' ? 'Created' : 'Reset'} <strong>{setup.username}</strong>. Give them this
        one-time setup secret through a channel you trust; at {window.location.origin}/ they choose &ldquo;Set
        up your account&rdquo;, a password and a second factor. It works once, until{' '}
        {dateTime(setup.setupExpiresAt)}, and is not shown again.
      </p>
    </OneTimeSecret>
  );
}

function AddUser(props: { onCreated: (s: SetupShown) => void }) {
  const [username, setUsername] = useState('');
  const [role, setRole] = useState<Role>('viewer');
  const [groups, setGroups] = useState('');
  const { busy, error, run } = useAction();
  const { onCreated } = props;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    run(
      () =>
        callCreated(api.users.createUser, {
          body: { username: username.trim(), role, groups: groupsOf(groups) },
        }),
      (created) => {
        setUsername('');
        setGroups('');
        onCreated({ ...created, username: created.user.username, why: 'created' });
      },
    );
  };
  return (
    <form className="inline-form" onSubmit={submit} aria-label="Add a user">
      <InputField
        id="new-username"
        label="Username"
        required
        maxLength={64}
        value={username}
        onChange={setUsername}
      />
      <SelectField
        id="new-role"
        label="Role of the new user"
        value={role}
        options={api.users.roles}
        onChange={setRole}
      />
      <InputField
        id="new-groups"
        label="Device groups (comma-separated; empty: all)"
        maxLength={2000}
        value={groups}
        onChange={setGroups}
      />
      <div className="actions">
        <button type="submit" disabled={busy}>
          Add user
        </button>
      </div>
      <ErrorLine error={error} />
    </form>
  );
}

/** Role, device groups and whether the account is disabled (the user's sessions end on any change). */
function EditUser(props: { user: User; onDone: (message?: string) => void }) {
  const { user, onDone } = props;
  const [role, setRole] = useState<Role>(user.role);
  const [groups, setGroups] = useState(groupsText(user.groups));
  const [disabled, setDisabled] = useState(user.disabled);
  const { busy, error, run } = useAction();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    run(
      () =>
        call(api.users.updateUser, {
          params: { username: user.username },
          body: { role, groups: groupsOf(groups), disabled },
        }),
      () => onDone(`${user.username} updated; their sessions were ended.`),
    );
  };
  return (
    <form className="panel spaced" onSubmit={submit} aria-label={`Edit ${user.username}`}>
      <h2>Edit {user.username}</h2>
      <SelectField id="edit-role" label="Role" value={role} options={api.users.roles} onChange={setRole} />
      <InputField
        id="edit-groups"
        label="Device groups (comma-separated; empty: all)"
        maxLength={2000}
        value={groups}
        onChange={setGroups}
      />
      <div className="field">
        <label>
          <input type="checkbox" checked={disabled} onChange={(e) => setDisabled(e.target.checked)} /> Account
          disabled
        </label>
      </div>
      <ErrorLine error={error} />
      <div className="actions">
        <button type="button" onClick={() => onDone()}>
          Cancel
        </button>
        <button type="submit" disabled={busy}>
          Save changes
        </button>
      </div>
    </form>
  );
}

function Users(props: { users: User[]; onEdit?: (u: User) => void; onReset?: (u: User) => void }) {
  const { onEdit, onReset } = props;
  const actions = onEdit !== undefined && onReset !== undefined;
  return (
    <table className="data">
      <caption>Users</caption>
      <ColumnHeads
        columns={['User', 'Role', 'Second factor', 'Device groups', 'Account', 'Created']}
        actions={actions}
      />
      <tbody>
        {props.users.map((u) => (
          <tr key={u.username}>
            <th scope="row">{u.username}</th>
            <td>{u.role}</td>
            <td>{secondFactor(u)}</td>
            <td>{u.groups === null ? 'all' : u.groups.join(', ') || 'none'}</td>
            <td>
              {u.disabled ? (
                <Badge tone="tone-muted">disabled</Badge>
              ) : u.setupPending ? (
                <Badge tone="tone-info">setup pending</Badge>
              ) : (
                'active'
              )}
            </td>
            <td>{dateTime(u.createdAt)}</td>
            {actions ? (
              <td className="row-actions">
                <button type="button" onClick={() => onEdit(u)} aria-label={`Edit ${u.username}`}>
                  Edit
                </button>{' '}
                <button
                  type="button"
                  className="danger"
                  onClick={() => onReset(u)}
                  aria-label={`Reset ${u.username}`}
                >
                  Reset
                </button>
              </td>
            ) : null}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function CreateToken(props: { role: Role; onCreated: (t: Created) => void }) {
  const roles = api.users.roles.slice(api.users.roles.indexOf(props.role));
  const [name, setName] = useState('');
  const [role, setRole] = useState<Role>(props.role);
  const [expiresIn, setExpiresIn] = useState<string>('30d');
  const { busy, error, run } = useAction();
  const { onCreated } = props;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    run(
      () => callCreated(api.users.createToken, { body: { name, role, expiresIn } }),
      (t) => {
        setName('');
        onCreated(t);
      },
    );
  };
  return (
    <form className="inline-form" onSubmit={submit} aria-label="New API token">
      <InputField
        id="token-name"
        label="Token name"
        required
        maxLength={64}
        value={name}
        onChange={setName}
      />
      <SelectField id="token-role" label="Token role" value={role} options={roles} onChange={setRole} />
      <SelectField
        id="token-expiry"
        label="Expires in"
        value={expiresIn}
        options={expiries}
        onChange={setExpiresIn}
      />
      <div className="actions">
        <button type="submit" disabled={busy}>
          Create token
        </button>
      </div>
      <ErrorLine error={error} />
    </form>
  );
}

function TokenRow(props: { token: Token; now: number; onRevoke: (t: Token) => void }) {
  const t = props.token;
  const expired = t.expiresAt <= props.now;
  return (
    <tr>
      <th scope="row">{t.name}</th>
      <td>{t.role}</td>
      <td>{dateTime(t.createdAt)}</td>
      <td>{dateTime(t.expiresAt)}</td>
      <td>{t.lastUsedAt === null ? 'never' : `${ago(t.lastUsedAt)} from ${t.lastUsedAddress ?? '?'}`}</td>
      <td>{t.revoked ? <Badge tone="tone-muted">revoked</Badge> : expired ? 'expired' : 'active'}</td>
      <td>
        {t.revoked || expired ? null : (
          <button
            type="button"
            className="danger"
            onClick={() => props.onRevoke(t)}
            aria-label={`Revoke token ${t.name}`}
          >
            Revoke
          </button>
        )}
      </td>
    </tr>
  );
}

/** The signed-in user's own API tokens: create one (its secret shown once), revoke one. */
function Tokens() {
  const session = useSession();
  const tokens = useLoad(loadTokens);
  const [created, setCreated] = useState<Created>();
  const [revoking, setRevoking] = useState<Token>();
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<string>();
  const { reload } = tokens;
  const onCreated = useCallback(
    (t: Created) => {
      setCreated(t);
      setMessage(undefined);
      reload();
    },
    [reload],
  );
  const cancel = useCallback(() => setRevoking(undefined), []);
  const revoke = () => {
    if (!revoking) return;
    setBusy(true);
    send(api.users.revokeToken, { params: { id: revoking.id } })
      .then(
        () => setMessage(`Token ${revoking.name} revoked.`),
        (e: unknown) => setMessage(`Could not revoke ${revoking.name}: ${messageOf(e)}`),
      )
      .finally(() => {
        setBusy(false);
        setRevoking(undefined);
        if (created?.id === revoking.id) setCreated(undefined);
        reload();
      });
  };
  return (
    <section className="panel spaced" aria-label="Your API tokens">
      <h2>Your API tokens</h2>
      <p className="muted small">
        A token acts with its role (no larger than yours) until it expires or is revoked. Creating or revoking
        one needs a recent second factor: sign in again when asked.
      </p>
      <CreateToken role={session.info.role} onCreated={onCreated} />
      {created ? (
        <OneTimeSecret label="New token" secret={created.token} onDone={() => setCreated(undefined)}>
          <p>
            Token <strong>{created.name}</strong> ({created.role}, expires {dateTime(created.expiresAt)}).
            Copy it now: it is not shown again.
          </p>
        </OneTimeSecret>
      ) : null}
      <p role="status" className="status-line">
        {message}
      </p>
      <Loaded what="your tokens" data={tokens.data} error={tokens.error}>
        {({ tokens: list, at }) =>
          list.length === 0 ? (
            <p className="muted">You have no API tokens.</p>
          ) : (
            <table className="data">
              <caption className="visually-hidden">Your API tokens</caption>
              <ColumnHeads columns={['Name', 'Role', 'Created', 'Expires', 'Last used', 'Status']} actions />
              <tbody>
                {list.map((t) => (
                  <TokenRow key={t.id} token={t} now={at} onRevoke={setRevoking} />
                ))}
              </tbody>
            </table>
          )
        }
      </Loaded>
      {revoking ? (
        <Confirm
          title={`Revoke token ${revoking.name}?`}
          confirmLabel={busy ? 'Revoking…' : `Revoke ${revoking.name}`}
          busy={busy}
          onConfirm={revoke}
          onCancel={cancel}
        >
          <p>Anything using it is refused from now on.</p>
        </Confirm>
      ) : null}
    </section>
  );
}

/** Adds, edits and resets users (users:write); every change is the server's to allow and is audited. */
function ManagedUsers(props: { users: User[]; reload: () => void }) {
  const { reload } = props;
  const [setup, setSetup] = useState<SetupShown>();
  const [editing, setEditing] = useState<User>();
  const [resetting, setResetting] = useState<User>();
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<string>();
  const cancelReset = useCallback(() => setResetting(undefined), []);
  const onCreated = useCallback(
    (shown: SetupShown) => {
      setSetup(shown);
      setMessage(undefined);
      reload();
    },
    [reload],
  );
  const reset = () => {
    if (!resetting) return;
    const { username } = resetting;
    setBusy(true);
    call(api.users.resetUser, { params: { username } })
      .then(
        (answer) => {
          setSetup({ ...answer, username, why: 'reset' });
          setMessage(undefined);
        },
        (e: unknown) => setMessage(`Could not reset ${username}: ${messageOf(e)}`),
      )
      .finally(() => {
        setBusy(false);
        setResetting(undefined);
        reload();
      });
  };
  return (
    <>
      <AddUser onCreated={onCreated} />
      {setup ? <SetupSecret setup={setup} onDone={() => setSetup(undefined)} /> : null}
      <p role="status" className="status-line">
        {message}
      </p>
      <Users
        users={props.users}
        onEdit={(u) => {
          setMessage(undefined);
          setEditing(u);
        }}
        onReset={setResetting}
      />
      {editing ? (
        <EditUser
          key={editing.username}
          user={editing}
          onDone={(done) => {
            setEditing(undefined);
            if (done) {
              setMessage(done);
              reload();
            }
          }}
        />
      ) : null}
      {resetting ? (
        <Confirm
          title={`Reset ${resetting.username}?`}
          confirmLabel={busy ? 'Resetting…' : `Reset ${resetting.username}`}
          busy={busy}
          onConfirm={reset}
          onCancel={cancelReset}
        >
          <p>
            Their password, second factors and recovery codes are removed and their sessions end; they set the
            account up again with the new one-time secret.
          </p>
        </Confirm>
      ) : null}
    </>
  );
}

/** Users with their role and second factor (added, edited and reset by those allowed); your own API tokens. */
export function UsersPage() {
  const users = useLoad(loadUsers, 60_000);
  const mayWrite = useAllows(api.users.createUser);
  return (
    <>
      <h1>Users and tokens</h1>
      <Loaded what="users" data={users.data} error={users.error}>
        {(list) => (mayWrite ? <ManagedUsers users={list} reload={users.reload} /> : <Users users={list} />)}
      </Loaded>
      <Tokens />
    </>
  );
}
