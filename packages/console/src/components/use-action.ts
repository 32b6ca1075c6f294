import { useState } from 'react';
import { messageOf } from '../api.ts';

/**
 * A control's call to the API: `busy` while it runs (to disable the control), and the refusal's message in
 * `error` (cleared when it runs again) for an <ErrorLine>; `done` gets the answer.
 */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  function run<T>(request: () => Promise<T>, done: (answer: T) => void) {
    setBusy(true);
    setError(undefined);
    void request()
      .then(done, (err: unknown) => setError(messageOf(err)))
      .finally(() => setBusy(false));
  }
  return { busy, error, setError, run };
}
