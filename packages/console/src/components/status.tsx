import type { ReactNode } from 'react';
import { messageOf } from '../api.ts';

export function Loading(props: { what: string }) {
  return (
    <p className="muted" role="status">
      Loading {props.what}…
    </p>
  );
}

export function ErrorNote(props: { error: unknown; what?: string }) {
  return (
    <p className="error" role="alert">
      {props.what ? `Could not load ${props.what}: ` : ''}
      {messageOf(props.error)}
    </p>
  );
}

/** A small label whose colour class says what it is (`tone-high`, `tone-revoked`…), with its text for everyone. */
export function Badge(props: { tone: string; children: ReactNode }) {
  return <span className={`badge ${props.tone}`}>{props.children}</span>;
}

/** What a view shows while loading, on error, or when loaded. */
export function Loaded<T>(props: {
  what: string;
  data: T | undefined;
  error: unknown;
  children: (data: T) => ReactNode;
}) {
  if (props.data === undefined) {
    return props.error ? <ErrorNote error={props.error} what={props.what} /> : <Loading what={props.what} />;
  }
  return (
    <>
      {props.error ? <ErrorNote error={props.error} what={`the latest ${props.what}`} /> : null}
      {props.children(props.data)}
    </>
  );
}
