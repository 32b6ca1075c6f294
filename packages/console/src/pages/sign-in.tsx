import { useEffect, useState, type FormEvent, type ReactNode } from 'react';
import type { z } from 'zod';
import { api } from '@bulwark/protocol';
import { ApiError, call, messageOf, setCsrfToken } from '../api.ts';
import { ErrorLine } from '../components/fields.tsx';
import type { SessionInfo } from '../session.ts';
import { passkeyPromptError, passkeysSupported, registerPasskey, verifyWithPasskey } from '../webauthn.ts';

export type Ticket = z.output<(typeof api.users.signIn.response)[200]>;
type Step = 'password' | 'setup' | 'code' | 'passkey' | 'enrol';
/** The account's second factors, as the session answer tells them. */
export type Factors = SessionInfo['twoFactor'];

/** What a person should read for a refused sign-in step (the API's own detail otherwise). */
export function signInError(error: unknown, step: Step): string {
  const prompt = step === 'passkey' ? passkeyPromptError(error) : undefined;
  if (prompt) return prompt;
  if (!(error instanceof ApiError)) return messageOf(error);
  if (error.code === 'rate_limited') {
    const minutes = error.retryAfterS ? Math.max(1, Math.ceil(error.retryAfterS / 60)) : undefined;
    return `Locked out after too many failed attempts. Try again ${minutes ? `in ${minutes} minute${minutes === 1 ? '' : 's'}` : 'later'}.`;
  }
  if (error.code === 'invalid_credentials' && step === 'password') return 'Wrong username or password.';
  if (error.code === 'invalid_credentials' && step === 'passkey')
    return 'That passkey was not accepted. Try again, or use a code.';
  if (
    (error.code === 'invalid_credentials' || error.code === 'validation_failed') &&
    (step === 'code' || step === 'enrol')
  )
    return 'Wrong code, or a code already used. Enter the current code from your authenticator app.';
  if (error.code === 'token_invalid' || error.code === 'token_expired')
    return 'That setup secret is wrong or has expired. Ask an administrator for a new one.';
  return error.message;
}

function Field(props: {
  id: string;
  label: string;
  type?: string;
  value: string;
  autoComplete: string;
  onChange: (value: string) => void;
  inputMode?: 'numeric' | 'text';
  hint?: string;
  /** The first field of a step: a keyboard user types at once. */
  first?: boolean;
}) {
  return (
    <div className="field">
      <label htmlFor={props.id}>{props.label}</label>
      <input
        id={props.id}
        name={props.id}
        type={props.type ?? 'text'}
        value={props.value}
        autoComplete={props.autoComplete}
        inputMode={props.inputMode}
        autoFocus={props.first}
        required
        aria-describedby={props.hint ? `${props.id}-hint` : undefined}
        onChange={(e) => props.onChange(e.target.value)}
      />
      {props.hint ? (
        <small id={`${props.id}-hint`} className="muted">
          {props.hint}
        </small>
      ) : null}
    </div>
  );
}

function Card(props: { title: string; error: string | undefined; notice?: string; children: ReactNode }) {
  return (
    <main className="sign-in" id="main">
      <section className="card" aria-labelledby="sign-in-title">
        <p className="brand">Bulwark</p>
        <h1 id="sign-in-title">{props.title}</h1>
        {props.notice ? (
          <p className="notice" role="status">
            {props.notice}
          </p>
        ) : null}
        <ErrorLine error={props.error} />
        {props.children}
      </section>
    </main>
  );
}

/** Runs one sign-in step: busy while it runs, its error in words, the next step from the session's state. */
function useStep(onTicket: (ticket: Ticket) => void) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const run = async (step: Step, action: () => Promise<Ticket>) => {
    setBusy(true);
    setError(undefined);
    try {
      const ticket = await action();
      setCsrfToken(ticket.csrfToken);
      onTicket(ticket);
    } catch (e) {
      setError(signInError(e, step));
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, setError, run };
}

function PasswordStep(props: { notice?: string; onTicket: (t: Ticket) => void; onSetup: () => void }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const { busy, error, run } = useStep(props.onTicket);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void run('password', () => call(api.users.signIn, { body: { username, password } }));
  };
  return (
    <Card title="Sign in" error={error} notice={props.notice}>
      <form onSubmit={submit}>
        <Field
          id="username"
          label="Username"
          value={username}
          autoComplete="username"
          onChange={setUsername}
        />
        <Field
          id="password"
          label="Password"
          type="password"
          value={password}
          autoComplete="current-password"
          onChange={setPassword}
        />
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Continue'}
        </button>
      </form>
      <p className="muted">
        First time here?{' '}
        <button type="button" className="link" onClick={props.onSetup}>
          Set up your account with a setup secret
        </button>
      </p>
    </Card>
  );
}

function SetupStep(props: { onTicket: (t: Ticket) => void; onBack: () => void }) {
  const [username, setUsername] = useState('');
  const [setupSecret, setSecret] = useState('');
  const [password, setPassword] = useState('');
  const { busy, error, run } = useStep(props.onTicket);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void run('setup', () => call(api.users.setupAccount, { body: { username, setupSecret, password } }));
  };
  return (
    <Card title="Set up your account" error={error}>
      <form onSubmit={submit}>
        <Field
          id="username"
          label="Username"
          value={username}
          autoComplete="username"
          onChange={setUsername}
        />
        <Field
          id="setup-secret"
          label="Setup secret"
          value={setupSecret}
          autoComplete="off"
          onChange={setSecret}
          hint="Printed by `bulwark admin create` or given by an administrator; it works once."
        />
        <Field
          id="new-password"
          label="New password"
          type="password"
          value={password}
          autoComplete="new-password"
          onChange={setPassword}
          hint="At least 12 characters; a passphrase is best."
        />
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Setting up…' : 'Set password'}
        </button>
      </form>
      <p>
        <button type="button" className="link" onClick={props.onBack}>
          Back to sign-in
        </button>
      </p>
    </Card>
  );
}

/**
 * The second factor, at sign-in or to confirm it is you again (step-up): "Use your passkey" when the account has
 * one, and a TOTP code or a recovery code. `onTicket` gets the session with its new id; `onExpired` is told when
 * the session waiting for this step is gone.
 */
export function SecondFactorForm(props: {
  factors: Factors | undefined;
  onTicket: (t: Ticket) => void;
  onExpired: (message: string) => void;
  submitLabel: string;
}) {
  const { factors, onExpired } = props;
  const hasTotp = factors?.totp ?? true;
  const [code, setCode] = useState('');
  const [recovery, setRecovery] = useState(!hasTotp);
  const { busy, error, run } = useStep(props.onTicket);
  const passkey = (factors?.webauthn ?? 0) > 0 && passkeysSupported();
  const expiring = async (action: () => Promise<Ticket>) => {
    try {
      return await action();
    } catch (err) {
      // The half-signed-in session expired: start again from the password.
      if (err instanceof ApiError && err.code === 'unauthenticated')
        onExpired('Sign-in took too long. Enter your password again.');
      throw err;
    }
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const body = recovery ? { recoveryCode: code.trim() } : { code: code.replace(/\s/g, '') };
    void run('code', () => expiring(() => call(api.users.secondFactor, { body })));
  };
  return (
    <>
      <ErrorLine error={error} />
      {passkey ? (
        <>
          <button
            type="button"
            className="primary"
            disabled={busy}
            onClick={() => void run('passkey', () => expiring(verifyWithPasskey))}
          >
            Use your passkey
          </button>
          <p className="muted small">Or enter a code:</p>
        </>
      ) : null}
      <form onSubmit={submit}>
        <Field
          id="code"
          label={recovery ? 'Recovery code' : 'Code from your authenticator app'}
          value={code}
          autoComplete="one-time-code"
          inputMode={recovery ? 'text' : 'numeric'}
          onChange={setCode}
          first={!passkey}
        />
        <button type="submit" className={passkey ? undefined : 'primary'} disabled={busy}>
          {busy ? 'Checking…' : props.submitLabel}
        </button>
      </form>
      {hasTotp ? (
        <p>
          <button type="button" className="link" onClick={() => setRecovery(!recovery)}>
            {recovery ? 'Use a code from the app' : 'Use a recovery code instead'}
          </button>
        </p>
      ) : null}
    </>
  );
}

function CodeStep(props: { onTicket: (t: Ticket) => void; onRestart: (message: string) => void }) {
  // The session waiting for its second factor says which factors the account has (a passkey, TOTP).
  const [factors, setFactors] = useState<Factors | null>();
  useEffect(() => {
    call(api.users.currentSession).then(
      (info) => setFactors(info.twoFactor),
      () => setFactors(null), // not known: offer the codes, and the step itself says what is wrong
    );
  }, []);
  return (
    <Card title="Second factor" error={undefined}>
      {factors === undefined ? (
        <p className="muted" role="status">
          Loading…
        </p>
      ) : (
        <SecondFactorForm
          factors={factors ?? undefined}
          onTicket={props.onTicket}
          onExpired={props.onRestart}
          submitLabel="Sign in"
        />
      )}
    </Card>
  );
}

/** New recovery codes, shown once. */
export function RecoveryCodeList(props: { codes: readonly string[] }) {
  return (
    <>
      <p>Each works once if you lose your authenticator. They are not shown again.</p>
      <ul className="codes" aria-label="Recovery codes">
        {props.codes.map((c) => (
          <li key={c}>
            <code>{c}</code>
          </li>
        ))}
      </ul>
    </>
  );
}

export type Totp = z.output<(typeof api.users.beginTotp.response)[200]>;

/** A TOTP secret being enrolled: its QR code, the secret to type by hand and the otpauth URI. */
export function TotpSecret(props: { totp: Totp }) {
  const { totp } = props;
  return (
    <>
      <img
        className="qr"
        alt="QR code of your TOTP secret"
        src={`data:image/svg+xml;charset=utf-8,${encodeURIComponent(totp.qrSvg)}`}
      />
      <p>
        Or enter this secret by hand: <code className="secret">{totp.secret}</code>
      </p>
      <p className="small secret">
        Its otpauth URI: <code>{totp.otpauthUri}</code>
      </p>
    </>
  );
}

function EnrolStep(props: { onDone: () => void }) {
  const [totp, setTotp] = useState<Totp>();
  const [code, setCode] = useState('');
  const [codes, setCodes] = useState<string[]>();
  const { busy, error, setError, run } = useStep(() => undefined);
  useEffect(() => {
    call(api.users.beginTotp).then(setTotp, (e: unknown) => setError(signInError(e, 'enrol')));
  }, [setError]);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void run('enrol', async () => {
      const confirmed = await call(api.users.confirmTotp, { body: { code: code.replace(/\s/g, '') } });
      setCodes(confirmed.recoveryCodes);
      if (!confirmed.session)
        throw new ApiError({ status: 500, code: 'internal', detail: 'the server gave no session' });
      return confirmed.session;
    });
  };
  // A passkey instead of TOTP: the first factor brings the recovery codes and makes the session active.
  const enrolPasskey = () =>
    void run('passkey', async () => {
      const registered = await registerPasskey('Passkey');
      setCodes(registered.recoveryCodes ?? []);
      if (!registered.session)
        throw new ApiError({ status: 500, code: 'internal', detail: 'the server gave no session' });
      return registered.session;
    });
  if (codes) {
    return (
      <Card title="Save your recovery codes" error={undefined}>
        <RecoveryCodeList codes={codes} />
        <button type="button" className="primary" onClick={props.onDone}>
          I have saved them
        </button>
      </Card>
    );
  }
  return (
    <Card title="Set up two-factor sign-in" error={error}>
      <p>Your role needs a second factor. Scan this code with an authenticator app, then enter its code.</p>
      {totp ? <TotpSecret totp={totp} /> : null}
      <form onSubmit={submit}>
        <Field
          id="enrol-code"
          label="Code from your authenticator app"
          value={code}
          autoComplete="one-time-code"
          inputMode="numeric"
          onChange={setCode}
          first
        />
        <button type="submit" className="primary" disabled={busy || !totp}>
          Confirm
        </button>
      </form>
      {passkeysSupported() ? (
        <p>
          Or{' '}
          <button type="button" className="link" onClick={enrolPasskey} disabled={busy}>
            register a passkey instead
          </button>{' '}
          (a security key, or this device&apos;s own).
        </p>
      ) : null}
    </Card>
  );
}

/** Password, then the second factor (or its enrolment, or first-time setup); `onSignedIn` once active. */
export function SignIn(props: { notice?: string; onSignedIn: () => void }) {
  const [step, setStep] = useState<Step>('password');
  const [notice, setNotice] = useState(props.notice);
  const { onSignedIn } = props;
  const next = (ticket: Ticket) => {
    setNotice(undefined);
    if (ticket.state === 'active') onSignedIn();
    else setStep(ticket.state === 'second_factor' ? 'code' : 'enrol');
  };
  if (step === 'setup') return <SetupStep onTicket={next} onBack={() => setStep('password')} />;
  if (step === 'code') {
    const restart = (message: string) => {
      setNotice(message);
      setStep('password');
    };
    return <CodeStep onTicket={next} onRestart={restart} />;
  }
  if (step === 'enrol') return <EnrolStep onDone={onSignedIn} />;
  return <PasswordStep notice={notice} onTicket={next} onSetup={() => setStep('setup')} />;
}
