import { useCallback, useEffect, useState } from 'react';

export interface Loaded<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  /** Loads again now (after an action changed what is shown). */
  reload: () => void;
}

/**
 * Loads what a view shows, again every `refreshMs` when given (so a view left open stays current and an expired
 * session is noticed). `load` must be stable (useCallback) or defined outside the component.
 */
export function useLoad<T>(load: () => Promise<T>, refreshMs?: number): Loaded<T> {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: true });
  const [generation, setGeneration] = useState(0);
  const reload = useCallback(() => setGeneration((g) => g + 1), []);

  useEffect(() => {
    let live = true;
    load().then(
      (data) => live && setState({ data, loading: false }),
      (error: unknown) => live && setState((s) => ({ data: s.data, error, loading: false })),
    );
    const timer = refreshMs ? window.setTimeout(reload, refreshMs) : undefined;
    return () => {
      live = false;
      window.clearTimeout(timer);
    };
  }, [load, refreshMs, reload, generation]);

  return { data: state.data, error: state.error, loading: state.loading, reload };
}
