import { useCallback, useState, type FormEvent } from 'react';
import type { z } from 'zod';
import { api } from '@bulwark/protocol';
import { ApiError, call, messageOf, send } from '../api.ts';
import { Confirm, useModal } from '../components/confirm.tsx';
import { ErrorLine, InputField } from '../components/fields.tsx';
import { Badge, Loaded } from '../components/status.tsx';
import { ColumnHeads } from '../components/table.tsx';
import { ago, dateTime, plural } from '../format.ts';
import { useSession, type SessionInfo } from '../session.ts';
import { useLoad } from '../use-load.ts';
import { passkeyPromptError, passkeysSupported, registerPasskey } from '../webauthn.ts';
import { RecoveryCodeList, SecondFactorForm, TotpSecret, type Factors, type Totp } from './sign-in.tsx';

type Passkey = z.output<typeof api.users.passkey>;

/** Runs an action that may need a recent second factor: see useStepUp. */
type Guarded = <T>(action: () => Promise<T>) => Promise<T>;

/** Read once when the page opens and after each change: no refresh timer, which would keep an idle session alive. */
const loadAccount = async () => {
  const [info, passkeys] = await Promise.all([call(api.users.currentSession), call(api.users.listPasskeys)]);
  return { info, passkeys };
};

/** "30 minutes", "45 seconds". */
const duration = (ms: number) =>
  ms >= 60_000 ? plural(Math.round(ms / 60_000), 'minute') : plural(Math.round(ms / 1000), 'second');

/** Whether a step-up can be done here: the account has a factor left to prove. */
const canStepUp = (f: Factors) => f.totp || f.webauthn > 0 || f.recoveryCodesLeft > 0;

/** The one dialog of a step-up: the second factor again (TOTP, recovery code or passkey), or cancel. */
function StepUpDialog(props: { factors: Factors; onVerified: () => void; onCancel: () => void }) {
  const ref = useModal(props.onCancel);
  const session = useSession();
  // The session itself is gone: asking for it again shows the sign-in page (onSessionEnded).
  const expired = () => void call(api.users.currentSession).catch(() => undefined);
  return (
    <dialog ref={ref} className="confirm" aria-labelledby="step-up-title">
      <h2 id="step-up-title">Confirm it is you</h2>
      {canStepUp(props.factors) ? (
        <>
          <p>
            Changing your sign-in factors or sessions needs your second factor verified in the last minutes.
          </p>
          <SecondFactorForm
            factors={props.factors}
            onTicket={props.onVerified}
            onExpired={expired}
            submitLabel="Verify"
          />
        </>
      ) : (
        <p>
          Your account has no second factor: sign out and sign in again, then retry.{' '}
          <button type="button" className="link" onClick={() => void session.signOut()}>
            Sign out
          </button>
        </p>
      )}
      <div className="actions">
        <button type="button" onClick={props.onCancel}>
          Cancel
        </button>
      </div>
    </dialog>
  );
}

/**
 * Factor and session management needs a second factor verified within auth.stepUpWindow: when the server asks
 * for one (`step_up_required`), the dialog takes it (the session gets a new id) and the action runs again.
 */
function useStepUp(factors: Factors | undefined) {
  const [pending, setPending] = useState<{ verified: (yes: boolean) => void }>();
  const guarded = useCallback<Guarded>(async (action) => {
    for (;;) {
      try {
        return await action();
      } catch (error) {
        if (!(error instanceof ApiError) || error.code !== 'step_up_required') throw error;
        const verified = await new Promise<boolean>((resolve) => setPending({ verified: resolve }));
        setPending(undefined);
        if (!verified)
          throw new ApiError({ status: 403, code: error.code, detail: 'Not done: it was not confirmed.' });
      }
    }
  }, []);
  const onVerified = useCallback(() => pending?.verified(true), [pending]);
  const onCancel = useCallback(() => pending?.verified(false), [pending]);
  const dialog =
    pending && factors ? (
      <StepUpDialog factors={factors} onVerified={onVerified} onCancel={onCancel} />
    ) : null;
  return { guarded, dialog };
}

/** An action's state: busy while it runs, then what it did or why it failed. */
function useAction() {
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState<string>();
  const [error, setError] = useState<string>();
  const run = async <T,>(action: () => Promise<T>, said: (result: T) => string | undefined) => {
    setBusy(true);
    setDone(undefined);
    setError(undefined);
    try {
      setDone(said(await action()));
    } catch (e) {
      setError(passkeyPromptError(e) ?? messageOf(e));
    } finally {
      setBusy(false);
    }
  };
  const lines = (
    <>
      <ErrorLine error={error} />
      <p role="status" className="status-line">
        {done}
      </p>
    </>
  );
  return { busy, run, lines };
}

/** New recovery codes (shown once), until the user says they are saved. */
function ShownOnce(props: { codes: string[] | undefined; onSaved: () => void }) {
  if (!props.codes) return null;
  return (
    <div className="notice">
      <RecoveryCodeList codes={props.codes} />
      <div className="actions">
        <button type="button" className="primary" onClick={props.onSaved}>
          I have saved them
        </button>
      </div>
    </div>
  );
}

function TotpSection(props: { info: SessionInfo; guarded: Guarded; onChanged: () => void }) {
  const { guarded, onChanged } = props;
  const [totp, setTotp] = useState<Totp>();
  const [code, setCode] = useState('');
  const [codes, setCodes] = useState<string[]>();
  const { busy, run, lines } = useAction();
  const begin = () =>
    void run(
      () => guarded(() => call(api.users.beginTotp)),
      (t) => void setTotp(t),
    );
  const confirm = (e: FormEvent) => {
    e.preventDefault();
    void run(
      () => guarded(() => call(api.users.confirmTotp, { body: { code: code.replace(/\s/g, '') } })),
      (confirmed) => {
        setTotp(undefined);
        setCode('');
        setCodes(confirmed.recoveryCodes);
        onChanged();
        return 'TOTP is on. Your recovery codes were replaced by the new ones below.';
      },
    );
  };
  return (
    <section className="panel" aria-labelledby="totp-title">
      <h2 id="totp-title">Authenticator app (TOTP)</h2>
      {props.info.twoFactor.totp ? (
        <p>
          <Badge tone="tone-ok">on</Badge> Sign-in asks for the 6-digit code from your authenticator app.
        </p>
      ) : totp ? (
        <>
          <p>Scan this code with an authenticator app, then enter the code it shows.</p>
          <TotpSecret totp={totp} />
          <form onSubmit={confirm} className="spaced">
            <InputField
              id="totp-code"
              label="Code from your authenticator app"
              value={code}
              onChange={setCode}
              autoComplete="one-time-code"
              inputMode="numeric"
              required
            />
            <button type="submit" className="primary" disabled={busy}>
              Confirm
            </button>
            <button type="button" onClick={() => setTotp(undefined)}>
              Cancel
            </button>
          </form>
        </>
      ) : (
        <p>
          <Badge tone="tone-muted">off</Badge>{' '}
          <button type="button" onClick={begin} disabled={busy}>
            Set up TOTP
          </button>
        </p>
      )}
      {lines}
      <ShownOnce codes={codes} onSaved={() => setCodes(undefined)} />
    </section>
  );
}

function PasskeyRows(props: { passkeys: Passkey[]; onRemove: (p: Passkey) => void }) {
  return (
    <table className="data">
      <caption className="visually-hidden">Your passkeys</caption>
      <ColumnHeads columns={['Name', 'Added', 'Last used']} actions />
      <tbody>
        {props.passkeys.map((p) => (
          <tr key={p.id}>
            <th scope="row">{p.name}</th>
            <td>{dateTime(p.createdAt)}</td>
            <td>{ago(p.lastUsedAt)}</td>
            <td>
              <button type="button" aria-label={`Remove passkey ${p.name}`} onClick={() => props.onRemove(p)}>
                Remove
              </button>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function PasskeySection(props: { passkeys: Passkey[]; guarded: Guarded; onChanged: () => void }) {
  const { guarded, onChanged } = props;
  const [name, setName] = useState('');
  const [removing, setRemoving] = useState<Passkey>();
  const [codes, setCodes] = useState<string[]>();
  const { busy, run, lines } = useAction();
  const register = (e: FormEvent) => {
    e.preventDefault();
    void run(
      () => guarded(() => registerPasskey(name.trim() || 'Passkey')),
      (registered) => {
        setName('');
        setCodes(registered.recoveryCodes);
        onChanged();
        return `Passkey ${registered.credential.name} registered.`;
      },
    );
  };
  const cancel = useCallback(() => setRemoving(undefined), []);
  const remove = () => {
    if (!removing) return;
    setRemoving(undefined);
    void run(
      () => guarded(() => send(api.users.removePasskey, { params: { id: removing.id } })),
      () => {
        onChanged();
        return `Passkey ${removing.name} removed.`;
      },
    );
  };
  return (
    <section className="panel" aria-labelledby="passkeys-title">
      <h2 id="passkeys-title">Passkeys</h2>
      {props.passkeys.length === 0 ? (
        <p className="muted">You have no passkey.</p>
      ) : (
        <PasskeyRows passkeys={props.passkeys} onRemove={setRemoving} />
      )}
      {passkeysSupported() ? (
        <form onSubmit={register} className="spaced">
          <InputField
            id="passkey-name"
            label="Passkey name"
            value={name}
            onChange={setName}
            maxLength={64}
            placeholder="e.g. laptop, security key"
          />
          <button type="submit" disabled={busy}>
            Register a passkey
          </button>
        </form>
      ) : (
        <p className="muted">
          This browser cannot use passkeys (they need HTTPS and a browser with WebAuthn).
        </p>
      )}
      {lines}
      <ShownOnce codes={codes} onSaved={() => setCodes(undefined)} />
      {removing ? (
        <Confirm
          title={`Remove passkey ${removing.name}?`}
          confirmLabel={`Remove ${removing.name}`}
          onConfirm={remove}
          onCancel={cancel}
        >
          <p>It no longer signs you in. The authenticator may keep it until you delete it there too.</p>
        </Confirm>
      ) : null}
    </section>
  );
}

function RecoverySection(props: { info: SessionInfo; guarded: Guarded; onChanged: () => void }) {
  const { guarded, onChanged } = props;
  const [asking, setAsking] = useState(false);
  const [codes, setCodes] = useState<string[]>();
  const { busy, run, lines } = useAction();
  const cancel = useCallback(() => setAsking(false), []);
  const regenerate = () => {
    setAsking(false);
    void run(
      () => guarded(() => call(api.users.recoveryCodes)),
      (answer) => {
        setCodes(answer.recoveryCodes);
        onChanged();
        return 'New recovery codes: the old ones no longer work.';
      },
    );
  };
  return (
    <section className="panel" aria-labelledby="recovery-title">
      <h2 id="recovery-title">Recovery codes</h2>
      {props.info.twoFactor.totp || props.info.twoFactor.webauthn > 0 ? (
        <p>
          {plural(props.info.twoFactor.recoveryCodesLeft, 'recovery code')} left. Each signs you in once
          instead of your second factor.{' '}
          <button type="button" onClick={() => setAsking(true)} disabled={busy}>
            Generate new recovery codes
          </button>
        </p>
      ) : (
        <p className="muted">Recovery codes come with your first second factor (TOTP or a passkey).</p>
      )}
      {lines}
      <ShownOnce codes={codes} onSaved={() => setCodes(undefined)} />
      {asking ? (
        <Confirm
          title="Replace your recovery codes?"
          confirmLabel="Generate new codes"
          onConfirm={regenerate}
          onCancel={cancel}
        >
          <p>The recovery codes you have now stop working.</p>
        </Confirm>
      ) : null}
    </section>
  );
}

function SessionsSection(props: { guarded: Guarded }) {
  const { guarded } = props;
  const session = useSession();
  const [asking, setAsking] = useState(false);
  const { busy, run, lines } = useAction();
  const cancel = useCallback(() => setAsking(false), []);
  const idleMs = session.info.idleTimeoutMs;
  const idle = idleMs === undefined ? undefined : duration(idleMs);
  const everywhere = () => {
    setAsking(false);
    void run(
      () => guarded(() => call(api.users.signOut, { body: { everywhere: true } })),
      ({ sessionsEnded }) => {
        session.signedOut(`Signed out everywhere: ${plural(sessionsEnded, 'session')} ended.`);
        return undefined;
      },
    );
  };
  return (
    <section className="panel" aria-labelledby="sessions-title">
      <h2 id="sessions-title">Sessions</h2>
      <p>
        {idle ? `A session ends after ${idle} without use. ` : null} Lost a device, or signed in somewhere you
        should not have?{' '}
        <button type="button" className="danger" onClick={() => setAsking(true)} disabled={busy}>
          Sign out everywhere
        </button>
      </p>
      {lines}
      {asking ? (
        <Confirm
          title="Sign out everywhere?"
          confirmLabel="Sign out everywhere"
          onConfirm={everywhere}
          onCancel={cancel}
        >
          <p>Every session of your account ends, in every browser, this one too.</p>
        </Confirm>
      ) : null}
    </section>
  );
}

/** The signed-in user's own account: second factors, recovery codes, and ending every session. */
export function AccountPage() {
  const account = useLoad(loadAccount);
  const { guarded, dialog } = useStepUp(account.data?.info.twoFactor);
  const { reload } = account;
  const session = useSession();
  return (
    <>
      <h1>Your account</h1>
      <p className="muted">
        {session.info.username} · {session.info.role}
      </p>
      <Loaded what="your account" data={account.data} error={account.error}>
        {({ info, passkeys }) => (
          <div className="account">
            <TotpSection info={info} guarded={guarded} onChanged={reload} />
            <PasskeySection passkeys={passkeys} guarded={guarded} onChanged={reload} />
            <RecoverySection info={info} guarded={guarded} onChanged={reload} />
            <SessionsSection guarded={guarded} />
          </div>
        )}
      </Loaded>
      {dialog}
    </>
  );
}
