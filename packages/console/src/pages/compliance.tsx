import { useCallback, useState } from 'react';
import type { z } from 'zod';
import { api, severities } from '@bulwark/protocol';
import { call, hrefOf, messageOf } from '../api.ts';
import { Bars } from '../components/bars.tsx';
import { Badge, Loaded } from '../components/status.tsx';
import { ColumnHeads } from '../components/table.tsx';
import { TrendChart } from '../components/trend.tsx';
import { scoreTone, severityTone, standardName } from '../fleet.ts';
import { date, dateTime, percent, plural } from '../format.ts';
import { useAllows } from '../session.ts';
import { useLoad } from '../use-load.ts';

type Runs = z.output<(typeof api.compliance.listRuns.response)[200]>;
type Run = z.output<typeof api.compliance.runResult>;
type Check = z.output<typeof api.compliance.checkResult>;
type Standard = z.output<typeof api.compliance.standardResult>;

/** How many recent runs the trend covers. */
const TREND_RUNS = 30;
const loadRuns = () => call(api.compliance.listRuns, { query: { limit: TREND_RUNS } });

/** Failing first by severity (critical first), then by id. */
function failingChecks(run: Run): Check[] {
  const rank = (c: Check) => severities.length - severities.indexOf(c.severity);
  return run.checks
    .filter((c) => c.status !== 'pass')
    .sort((a, b) => rank(a) - rank(b) || a.id.localeCompare(b.id));
}

function ScoreBars(props: { scores: Record<string, number | null> }) {
  return (
    <Bars
      label="Score per standard"
      max={1}
      bars={Object.entries(props.scores).map(([id, score]) => ({
        key: id,
        label: standardName(id),
        value: score ?? 0,
        text: percent(score),
        tone: scoreTone(score),
      }))}
    />
  );
}

function Trend(props: { trend: Runs['trend'] }) {
  const { trend } = props;
  if (trend.length < 2)
    return <p className="muted">One run so far: the trend appears from the second run on.</p>;
  const ids = [...new Set(trend.flatMap((p) => Object.keys(p.scores)))];
  return (
    <TrendChart
      label="Score per standard"
      points={trend.map((p) => dateTime(p.finishedAt))}
      series={ids.map((id) => ({
        key: id,
        label: standardName(id),
        values: trend.map((p) => p.scores[id] ?? null),
      }))}
    />
  );
}

/** The HTML and OSCAL report of each standard for this run, as downloads (the API answers attachments). */
function Reports(props: { run: Run }) {
  const link = (s: Standard, format: 'html' | 'oscal', text: string) => (
    <a
      href={hrefOf(api.compliance.getReport, {
        params: { standard: s.id },
        query: { format, run: props.run.id },
      })}
      download
      aria-label={`${s.title} report, ${text}`}
    >
      {text}
    </a>
  );
  return (
    <table className="data">
      <caption className="visually-hidden">Reports per standard</caption>
      <ColumnHeads
        columns={[
          'Standard',
          { label: 'Score', num: true },
          { label: 'Failing clauses', num: true },
          { label: 'Manual', num: true },
          'Report',
        ]}
      />
      <tbody>
        {props.run.standards.map((s) => (
          <tr key={s.id}>
            <th scope="row">
              {s.title} <span className="muted small">{s.version}</span>
            </th>
            <td className="num">
              <Badge tone={scoreTone(s.score)}>{percent(s.score)}</Badge>
            </td>
            <td className="num">{s.counts.fail + s.counts.error}</td>
            <td className="num">{s.counts.manual}</td>
            <td>
              {link(s, 'html', 'HTML')} · {link(s, 'oscal', 'OSCAL')}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function clausesText(clauses: Check['clauses']): string {
  return Object.entries(clauses)
    .map(([standard, ids]) => `${standardName(standard)} ${ids.join(', ')}`)
    .join(' · ');
}

function FailingCheck(props: { check: Check }) {
  const c = props.check;
  return (
    <li>
      <details className="check">
        <summary>
          <Badge tone={severityTone(c.severity)}>{c.severity}</Badge> <strong>{c.title}</strong>{' '}
          {c.status === 'error' ? <Badge tone="tone-critical">could not run</Badge> : null}
          {c.waiver ? <Badge tone="tone-muted">waived until {date(c.waiver.expiresAt)}</Badge> : null}
          <span className="muted"> {c.summary}</span>
        </summary>
        <div className="check-body">
          <p>{c.rationale}</p>
          <p>
            <strong>To fix:</strong> {c.remediation}
          </p>
          <p className="muted small">
            <code>{c.id}</code> · {clausesText(c.clauses)}
          </p>
          {c.evidence.length > 0 ? (
            <table className="data evidence">
              <caption>
                Evidence: {plural(c.evidence.length, 'object')}
                {c.examined >= c.evidence.length ? ` of ${c.examined.toLocaleString('en')} examined` : ''}
              </caption>
              <ColumnHeads columns={['Kind', 'Object', 'Detail']} />
              <tbody>
                {c.evidence.map((e, i) => (
                  <tr key={`${e.kind}:${e.id}:${i}`}>
                    <td>{e.kind}</td>
                    <td>
                      <code>{e.id}</code>
                    </td>
                    <td>{e.detail}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : null}
        </div>
      </details>
    </li>
  );
}

/** The latest run in full: the reports of each standard and every failing check with its evidence. */
function LatestRun(props: { id: string }) {
  const { id } = props;
  const load = useCallback(() => call(api.compliance.getRun, { params: { id } }), [id]);
  const run = useLoad(load);
  return (
    <Loaded what="the latest run" data={run.data} error={run.error}>
      {(r) => {
        const failing = failingChecks(r);
        return (
          <>
            <section className="block" aria-labelledby="reports">
              <h2 id="reports">Reports</h2>
              <Reports run={r} />
            </section>
            <section className="block" aria-labelledby="failing-checks">
              <h2 id="failing-checks">Failing checks ({failing.length})</h2>
              {failing.length === 0 ? (
                <p className="calm">Every automated check passes.</p>
              ) : (
                <ul className="checks">
                  {failing.map((c) => (
                    <FailingCheck key={c.id} check={c} />
                  ))}
                </ul>
              )}
            </section>
          </>
        );
      }}
    </Loaded>
  );
}

function RunNow(props: { onDone: () => void }) {
  const [state, setState] = useState<{ busy: boolean; message?: string }>({ busy: false });
  const { onDone } = props;
  const run = () => {
    setState({ busy: true, message: 'Running the checks…' });
    call(api.compliance.runCompliance).then(
      (r) => {
        const failing = r.checks.filter((c) => c.status !== 'pass' && !c.waiver).length;
        setState({ busy: false, message: `Run finished: ${plural(failing, 'failing check')}.` });
        onDone();
      },
      (e: unknown) => setState({ busy: false, message: `The run failed: ${messageOf(e)}` }),
    );
  };
  return (
    <>
      <button type="button" className="primary" onClick={run} disabled={state.busy}>
        Run now
      </button>
      <p role="status" className="status-line">
        {state.message}
      </p>
    </>
  );
}

/** Compliance: the score per standard, its trend, the reports, and the failing checks with their evidence. */
export function Compliance() {
  const runs = useLoad(loadRuns, 60_000);
  const mayRun = useAllows(api.compliance.runCompliance);
  return (
    <>
      <h1>Compliance</h1>
      {mayRun ? (
        <div className="toolbar">
          <RunNow onDone={runs.reload} />
        </div>
      ) : null}
      <Loaded what="compliance runs" data={runs.data} error={runs.error}>
        {({ runs: list, trend }) => {
          const latest = list[0];
          if (!latest)
            return (
              <p className="muted">No compliance run yet{mayRun ? ': Run now checks the live fleet' : ''}.</p>
            );
          return (
            <>
              <p className="muted">
                Latest run {dateTime(latest.finishedAt)} ({latest.trigger}, by {latest.createdBy}) against
                baseline {latest.baseline.name} v{latest.baseline.version}:{' '}
                {plural(latest.counts.fail, 'failing check')}, {latest.counts.pass.toLocaleString('en')}{' '}
                passing
                {latest.counts.waived > 0 ? `, ${latest.counts.waived.toLocaleString('en')} waived` : ''}.
              </p>
              <div className="grid">
                <section className="panel" aria-labelledby="scores">
                  <h2 id="scores">Score per standard</h2>
                  <ScoreBars scores={latest.scores} />
                </section>
                <section className="panel" aria-labelledby="trend">
                  <h2 id="trend">Trend over the last {plural(trend.length, 'run')}</h2>
                  <Trend trend={trend} />
                </section>
              </div>
              {latest.hasResults ? (
                <LatestRun key={latest.id} id={latest.id} />
              ) : (
                <p className="muted">
                  The results of this run were pruned: run the checks again for details.
                </p>
              )}
            </>
          );
        }}
      </Loaded>
    </>
  );
}
