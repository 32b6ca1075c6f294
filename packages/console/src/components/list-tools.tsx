import { useCallback, useEffect, useMemo, useState } from 'react';
import type { z } from 'zod';
import { useSession } from '../session.ts';
import { ErrorLine } from './fields.tsx';

/** The page sizes a list offers. */
export const pageSizes = [25, 50, 100] as const;

export interface Paging {
  /** Index of the first item shown (0-based). */
  offset: number;
  size: number;
  total: number;
  /** The items of the current page. */
  slice: <T>(items: readonly T[]) => T[];
  setOffset: (offset: number) => void;
  setSize: (size: number) => void;
}

/**
 * Client-side paging over `total` items: the offset stays on a page boundary and inside the list when it shrinks
 * (a filter applied, a device decommissioned), so the pager never shows an empty page after the last.
 */
export function usePaging(total: number, initialSize: number = pageSizes[0]): Paging {
  const [size, setSizeState] = useState(initialSize);
  const [offset, setOffsetState] = useState(0);
  const lastStart = total === 0 ? 0 : Math.floor((total - 1) / size) * size;
  const shown = Math.min(offset, lastStart);
  const setOffset = useCallback((o: number) => setOffsetState(Math.max(0, o)), []);
  const setSize = useCallback((s: number) => {
    setSizeState(s);
    setOffsetState(0);
  }, []);
  const slice = useCallback(<T,>(items: readonly T[]) => items.slice(shown, shown + size), [shown, size]);
  return { offset: shown, size, total, slice, setOffset, setSize };
}

/**
 * Previous/next over a list, its page size and where the reader is ("26–50 of 120"). `label` names the list for
 * assistive technology (the pager is a navigation landmark named "<label> pages").
 */
export function Pager(props: { id: string; label: string; paging: Paging }) {
  const { offset, size, total, setOffset, setSize } = props.paging;
  const first = total === 0 ? 0 : offset + 1;
  const last = Math.min(offset + size, total);
  return (
    <nav className="pager" aria-label={`${props.label} pages`}>
      <label htmlFor={`${props.id}-size`}>Per page</label>
      <select id={`${props.id}-size`} value={size} onChange={(e) => setSize(Number(e.target.value))}>
        {pageSizes.map((s) => (
          <option key={s} value={s}>
            {s}
          </option>
        ))}
      </select>
      <button
        type="button"
        onClick={() => setOffset(offset - size)}
        disabled={offset === 0}
        aria-label={`Previous page of ${props.label.toLowerCase()}`}
      >
        Previous
      </button>
      <span aria-live="polite">
        {first}–{last} of {total}
      </span>
      <button
        type="button"
        onClick={() => setOffset(offset + size)}
        disabled={last >= total}
        aria-label={`Next page of ${props.label.toLowerCase()}`}
      >
        Next
      </button>
    </nav>
  );
}

export interface SavedFilter<F> {
  name: string;
  filter: F;
}

export interface SavedFilters<F> {
  saved: readonly SavedFilter<F>[];
  /** Saves `filter` under `name` (replacing a filter of that name). */
  save: (name: string, filter: F) => void;
  remove: (name: string) => void;
}

const storageKey = (username: string, listName: string) => `bulwark.filters.${username}.${listName}`;

/** What is stored under a key: the entries whose filter still parses (a list's filter may have changed shape). */
function readSaved<F>(key: string, schema: z.ZodType<F>): SavedFilter<F>[] {
  let raw: unknown;
  try {
    raw = JSON.parse(localStorage.getItem(key) ?? '[]');
  } catch {
    return [];
  }
  if (!Array.isArray(raw)) return [];
  const out: SavedFilter<F>[] = [];
  for (const entry of raw as unknown[]) {
    if (typeof entry !== 'object' || entry === null) continue;
    const { name, filter } = entry as { name?: unknown; filter?: unknown };
    const parsed = schema.safeParse(filter);
    if (typeof name === 'string' && parsed.success) out.push({ name, filter: parsed.data });
  }
  return out;
}

/**
 * Named filter sets of one list, kept in this browser's localStorage per signed-in user and list (another user of
 * the same browser does not see them). `schema` checks what is read back, so a filter saved by an older console
 * is dropped rather than applied half-understood. Other tabs' changes are picked up. `schema` must be stable
 * (defined outside the component).
 */
export function useSavedFilters<F>(listName: string, schema: z.ZodType<F>): SavedFilters<F> {
  const { username } = useSession().info;
  const key = storageKey(username, listName);
  // Bumped on every change here or in another tab: what is stored is read again.
  const [version, setVersion] = useState(0);
  const saved = useMemo(() => {
    void version;
    return readSaved(key, schema);
  }, [key, schema, version]);
  useEffect(() => {
    const onStorage = (e: StorageEvent) => {
      if (e.key === key) setVersion((v) => v + 1);
    };
    window.addEventListener('storage', onStorage);
    return () => window.removeEventListener('storage', onStorage);
  }, [key]);
  const write = useCallback(
    (next: SavedFilter<F>[]) => {
      localStorage.setItem(key, JSON.stringify(next));
      setVersion((v) => v + 1);
    },
    [key],
  );
  const save = useCallback(
    (name: string, filter: F) =>
      write([...readSaved(key, schema).filter((s) => s.name !== name), { name, filter }]),
    [key, schema, write],
  );
  const remove = useCallback(
    (name: string) => write(readSaved(key, schema).filter((s) => s.name !== name)),
    [key, schema, write],
  );
  return useMemo(() => ({ saved, save, remove }), [saved, save, remove]);
}

/**
 * The saved filters of a list as a small form: pick one to apply or delete, or save the current filter under a
 * name. `current` is what the list is filtered by now; `onApply` sets the list's filter to a saved one.
 */
export function SavedFilterControls<F>(props: {
  id: string;
  listName: string;
  schema: z.ZodType<F>;
  current: F;
  onApply: (filter: F) => void;
}) {
  const { saved, save, remove } = useSavedFilters(props.listName, props.schema);
  const [chosen, setChosen] = useState('');
  const [name, setName] = useState('');
  const [error, setError] = useState<string>();
  const selected = saved.find((s) => s.name === chosen);
  const onSave = () => {
    const trimmed = name.trim();
    if (trimmed === '') return setError('Name the filter to save it.');
    save(trimmed, props.current);
    setChosen(trimmed);
    setName('');
    setError(undefined);
  };
  return (
    <div className="saved-filters" role="group" aria-label="Saved filters">
      <label htmlFor={`${props.id}-saved`}>Saved filter</label>
      <select
        id={`${props.id}-saved`}
        value={selected ? chosen : ''}
        onChange={(e) => setChosen(e.target.value)}
      >
        <option value="">{saved.length === 0 ? 'none saved' : 'choose…'}</option>
        {saved.map((s) => (
          <option key={s.name} value={s.name}>
            {s.name}
          </option>
        ))}
      </select>
      <button type="button" disabled={!selected} onClick={() => selected && props.onApply(selected.filter)}>
        Apply
      </button>
      <button
        type="button"
        disabled={!selected}
        onClick={() => {
          if (!selected) return;
          remove(selected.name);
          setChosen('');
        }}
        aria-label={selected ? `Delete saved filter ${selected.name}` : 'Delete saved filter'}
      >
        Delete
      </button>
      <label htmlFor={`${props.id}-name`}>Save current as</label>
      <input
        id={`${props.id}-name`}
        value={name}
        maxLength={60}
        onChange={(e) => setName(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === 'Enter') onSave();
        }}
      />
      <button type="button" onClick={onSave}>
        Save filter
      </button>
      <ErrorLine error={error} />
    </div>
  );
}
