import { useState, type ReactNode } from 'react';

/**
 * Copies a text to the clipboard (a secure context: the console is HTTPS only). When the browser refuses
 * (no permission, the page not focused), it says so and the text stays there to select by hand.
 */
export function CopyButton(props: { text: string; label: string }) {
  const [state, setState] = useState<'idle' | 'copied' | 'failed'>('idle');
  const copy = () => {
    // Inside the promise: where the Clipboard API is missing, the TypeError becomes the refusal.
    Promise.resolve()
      .then(() => navigator.clipboard.writeText(props.text))
      .then(
        () => setState('copied'),
        () => setState('failed'),
      );
  };
  return (
    <>
      <button type="button" onClick={copy} aria-label={props.label}>
        Copy
      </button>
      {state === 'idle' ? null : (
        <span className="muted small" role="status">
          {state === 'copied' ? 'Copied.' : 'Could not copy: select the text and copy it.'}
        </span>
      )}
    </>
  );
}

/**
 * A secret shown once (a new token): what it is, the secret with a copy button, and Done, after which it is
 * gone from the page (the server keeps only its hash).
 */
export function OneTimeSecret(props: {
  label: string;
  secret: string;
  children: ReactNode;
  onDone: () => void;
}) {
  return (
    <div className="notice one-time" role="status" aria-label={props.label}>
      {props.children}
      <code className="secret" aria-label={`${props.label}: secret`}>
        {props.secret}
      </code>
      <div className="actions">
        <CopyButton text={props.secret} label={`Copy the ${props.label.toLowerCase()}`} />
        <button type="button" onClick={props.onDone}>
          Done
        </button>
      </div>
    </div>
  );
}
