import { useCallback, useEffect, useMemo, useRef, useState, type FormEvent } from 'react';
import { api } from '@bulwark/protocol';
import { call, messageOf } from '../api.ts';
import {
  dataSummary,
  emptyList,
  withLive,
  withOlder,
  type AuditEntry,
  type AuditFilter,
  type AuditList,
} from '../audit-entries.ts';
import { ErrorNote, Loaded, Loading } from '../components/status.tsx';
import { ColumnHeads } from '../components/table.tsx';
import { ago, dateTime, plural } from '../format.ts';
import { useAllows } from '../session.ts';
import { follow, type FollowState } from '../sse.ts';
import { useLoad } from '../use-load.ts';

const PAGE = 50;

function pageOf(filter: AuditFilter, before?: number) {
  return call(api.audit.query, {
    query: {
      order: 'desc',
      limit: PAGE,
      ...(filter.typePrefix ? { typePrefix: filter.typePrefix } : {}),
      ...(filter.subject ? { subject: filter.subject } : {}),
      ...(before === undefined ? {} : { before }),
    },
  });
}

const loadVerify = async () => ({ ...(await call(api.audit.verify)), at: Date.now() });

/** The hash chain walked end to end by the server: intact, or where it breaks. */
function ChainStatus() {
  const verified = useLoad(loadVerify);
  return (
    <section className="panel chain" aria-labelledby="chain">
      <h2 id="chain">Chain verification</h2>
      <Loaded what="the verification" data={verified.data} error={verified.error}>
        {(v) =>
          v.ok ? (
            <p className="chain-ok" role="status">
              Chain intact: {plural(v.entries, 'entry', 'entries')} up to #{v.headSeq}, verified{' '}
              {dateTime(v.at)}.
            </p>
          ) : (
            <p className="error" role="alert">
              Chain broken at entry #{v.badSeq ?? '?'}: {v.reason ?? 'no reason given'}.
            </p>
          )
        }
      </Loaded>
      <button type="button" onClick={verified.reload}>
        Verify again
      </button>
    </section>
  );
}

/**
 * The newest entries of the filter applied, older pages on demand, and the live stream on top when the role may
 * follow it.
 */
function useAuditList(mayFollow: boolean) {
  const [filter, setFilter] = useState<AuditFilter>({ typePrefix: '', subject: '' });
  const [list, setList] = useState<AuditList>(emptyList);
  const [state, setState] = useState<{ loading: boolean; error?: unknown }>({ loading: true });
  const [generation, setGeneration] = useState(0);
  const [live, setLive] = useState<{ state: FollowState; error?: unknown }>();
  // Set when a first page arrives: the stream starts after its newest entry, for the filter it was read with.
  const [stream, setStream] = useState<{ filter: AuditFilter; after: string | undefined }>();
  const current = useRef(0);

  useEffect(() => {
    const mine = ++current.current;
    pageOf(filter).then(
      (page) => {
        if (mine !== current.current) return;
        setList(page);
        setState({ loading: false });
        setStream({ filter, after: page.entries[0] ? String(page.entries[0].seq) : undefined });
      },
      (error: unknown) => mine === current.current && setState({ loading: false, error }),
    );
  }, [filter, generation]);

  useEffect(() => {
    if (!mayFollow || !stream) return;
    return follow(api.audit.events, {
      schema: api.audit.auditEntry,
      lastEventId: stream.after,
      onEvent: (entry) => setList((l) => withLive(l, entry, stream.filter)),
      onState: (state, error) => setLive({ state, error }),
    });
  }, [mayFollow, stream]);

  const apply = useCallback((next: AuditFilter) => {
    setFilter(next);
    setList(emptyList);
    setState({ loading: true });
  }, []);

  const refresh = useCallback(() => {
    setState((s) => ({ ...s, loading: true }));
    setGeneration((g) => g + 1);
  }, []);

  const older = useCallback(() => {
    if (list.next === null) return;
    const mine = current.current;
    setState({ loading: true });
    pageOf(filter, list.next).then(
      (page) => {
        if (mine !== current.current) return;
        setList((l) => withOlder(l, page));
        setState({ loading: false });
      },
      (error: unknown) => mine === current.current && setState({ loading: false, error }),
    );
  }, [filter, list.next]);

  return { filter, apply, list, ...state, live, older, refresh };
}

function LiveStatus(props: { live: { state: FollowState; error?: unknown } | undefined }) {
  const { live } = props;
  const text =
    !live || live.state === 'connecting'
      ? 'Connecting to the live stream…'
      : live.state === 'live'
        ? 'Live: new entries appear as they are written.'
        : live.state === 'retrying'
          ? 'The live stream was interrupted: reconnecting…'
          : `Live updates stopped: ${messageOf(live.error)}`;
  return (
    <p role="status" className={`live live-${live?.state ?? 'connecting'}`}>
      {text}
    </p>
  );
}

/** Suggestions for the type prefix: the areas and types among the entries shown (`device.`, `device.revoked`). */
function TypeSuggestions(props: { entries: readonly AuditEntry[] }) {
  const options = useMemo(() => {
    const types = new Set<string>();
    for (const e of props.entries) {
      types.add(`${e.type.split('.')[0] ?? e.type}.`);
      types.add(e.type);
    }
    return [...types].sort();
  }, [props.entries]);
  return (
    <datalist id="audit-types">
      {options.map((t) => (
        <option key={t} value={t} />
      ))}
    </datalist>
  );
}

function FilterForm(props: { filter: AuditFilter; onApply: (f: AuditFilter) => void }) {
  const [draft, setDraft] = useState(props.filter);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    props.onApply({ typePrefix: draft.typePrefix.trim(), subject: draft.subject.trim() });
  };
  const clear = () => {
    const none = { typePrefix: '', subject: '' };
    setDraft(none);
    props.onApply(none);
  };
  return (
    <form className="toolbar filters" onSubmit={submit} aria-label="Filter the audit log">
      <label htmlFor="audit-type">Type starts with</label>
      <input
        id="audit-type"
        list="audit-types"
        placeholder="device."
        value={draft.typePrefix}
        maxLength={64}
        onChange={(e) => setDraft({ ...draft, typePrefix: e.target.value })}
      />
      <label htmlFor="audit-subject">Subject</label>
      <input
        id="audit-subject"
        placeholder="device:pump-1"
        value={draft.subject}
        maxLength={256}
        onChange={(e) => setDraft({ ...draft, subject: e.target.value })}
      />
      <button type="submit">Apply</button>
      <button type="button" onClick={clear}>
        Clear
      </button>
    </form>
  );
}

function EntryRow(props: { entry: AuditEntry }) {
  const e = props.entry;
  const hasData = Object.keys(e.data).length > 0;
  return (
    <tr>
      <td className="num">{e.seq}</td>
      <td className="when" title={dateTime(e.ts)}>
        {ago(e.ts)}
      </td>
      <td>
        <code>{e.type}</code>
      </td>
      <td>{e.actor}</td>
      <td>{e.subject ?? <span className="muted">none</span>}</td>
      <td>
        <details className="entry-data">
          <summary>{hasData ? dataSummary(e.data) : <span className="muted">no data</span>}</summary>
          <pre>{JSON.stringify(e.data, null, 2)}</pre>
          <p className="muted small hash">
            hash <code>{e.hash}</code>
            <br />
            after <code>{e.prevHash}</code>
          </p>
        </details>
      </td>
    </tr>
  );
}

function EntryTable(props: { entries: readonly AuditEntry[] }) {
  if (props.entries.length === 0) return <p className="muted">No entries match.</p>;
  return (
    <table className="data audit">
      <caption className="visually-hidden">Audit log entries, newest first</caption>
      <ColumnHeads columns={[{ label: '#', num: true }, 'When', 'Type', 'Actor', 'Subject', 'Data']} />
      <tbody>
        {props.entries.map((e) => (
          <EntryRow key={e.seq} entry={e} />
        ))}
      </tbody>
    </table>
  );
}

/** The audit log, newest first: filters, older pages, the chain's verification, live updates. */
export function AuditLog() {
  const mayVerify = useAllows(api.audit.verify);
  const mayFollow = useAllows(api.audit.events);
  const audit = useAuditList(mayFollow);
  const { list } = audit;
  return (
    <>
      <h1>Audit log</h1>
      {mayVerify ? <ChainStatus /> : null}
      <FilterForm filter={audit.filter} onApply={audit.apply} />
      <TypeSuggestions entries={list.entries} />
      <div className="toolbar">
        {mayFollow ? (
          <LiveStatus live={audit.live} />
        ) : (
          <button type="button" onClick={audit.refresh}>
            Refresh
          </button>
        )}
      </div>
      {audit.error ? <ErrorNote error={audit.error} what="the audit log" /> : null}
      {audit.loading && list.entries.length === 0 ? (
        <Loading what="the audit log" />
      ) : (
        <EntryTable entries={list.entries} />
      )}
      <p className="pager">
        {list.next !== null ? (
          <button type="button" onClick={audit.older} disabled={audit.loading}>
            Older entries
          </button>
        ) : list.entries.length > 0 ? (
          <span className="muted">No older entries.</span>
        ) : null}
      </p>
    </>
  );
}
