import { useCallback, useState, type FormEvent } from 'react';
import type { z } from 'zod';
import { api } from '@bulwark/protocol';
import { call, hrefOf, messageOf } from '../api.ts';
import { Facts } from '../components/facts.tsx';
import { ErrorLine, InputField, SelectField } from '../components/fields.tsx';
import { Badge, Loaded } from '../components/status.tsx';
import { ColumnHeads } from '../components/table.tsx';
import { riskTone, type Risk } from '../fleet.ts';
import { date, dateTime } from '../format.ts';
import { Link } from '../router.tsx';
import { useAllows } from '../session.ts';
import { useLoad } from '../use-load.ts';

const { impactRatings, feasibilityRatings, riskStatuses, riskTreatments } = api.riskRegister;
type Tara = z.output<typeof api.riskRegister.taraSummary>;
type ZoneLevel = z.output<typeof api.riskRegister.zoneLevel>;
type HistoryEntry = z.output<typeof api.riskRegister.riskHistoryEntry>;

const loadRegister = () => call(api.riskRegister.register);
const loadTaras = () => call(api.riskRegister.taras);
const loadZones = () => call(api.riskRegister.zones);
const riskPath = (id: string) => `/risk/${encodeURIComponent(id)}`;

/**
 * Impact × feasibility (ISO/SAE 21434 clause 15.8): each cell counts the risks not closed at their live
 * feasibility, coloured by the highest risk value among them.
 */
function Matrix(props: { risks: Risk[] }) {
  const live = props.risks.filter((r) => r.status !== 'closed');
  const impacts = [...impactRatings].reverse();
  return (
    <table className="matrix">
      <caption>Impact × attack feasibility (live)</caption>
      <thead>
        <tr>
          <td className="corner" />
          {feasibilityRatings.map((f) => (
            <th key={f} scope="col">
              {f}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>
        {impacts.map((impact) => (
          <tr key={impact}>
            <th scope="row">{impact}</th>
            {feasibilityRatings.map((f) => {
              const here = live.filter((r) => r.impact === impact && r.feasibility === f);
              const worst = Math.max(0, ...here.map((r) => r.risk));
              return (
                <td key={f} className={here.length > 0 ? riskTone(worst) : 'empty'}>
                  <span className="visually-hidden">
                    {impact} impact, {f} feasibility:{' '}
                  </span>
                  {here.length > 0 ? here.length : ''}
                </td>
              );
            })}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function RegisterTable(props: { risks: Risk[] }) {
  if (props.risks.length === 0)
    return <p className="muted">The register is empty: save a TARA (`bulwark risk tara FILE --save ID`).</p>;
  return (
    <table className="data">
      <caption className="visually-hidden">The risk register, highest live risk first</caption>
      <ColumnHeads
        columns={['Risk', 'Title', 'Status', 'Impact', 'Feasibility', 'Treatment', 'Owner', 'Review due']}
      />
      <tbody>
        {props.risks.map((r) => (
          <tr key={r.id}>
            <td>
              <Badge tone={riskTone(r.risk)}>{r.risk}</Badge>
              {r.risk !== r.baseRisk ? <span className="muted small"> (assessed {r.baseRisk})</span> : null}
            </td>
            <td>
              <Link to={riskPath(r.id)}>{r.id}</Link> {r.title}
              {r.raised ? (
                <>
                  {' '}
                  <Badge tone="tone-critical">raised</Badge>
                </>
              ) : null}
              {r.factors.length > 0 ? (
                <div className="muted small">{r.factors.map((f) => f.detail).join(' · ')}</div>
              ) : null}
            </td>
            <td>{r.status}</td>
            <td>{r.impact}</td>
            <td>{r.feasibility}</td>
            <td>{r.treatment}</td>
            <td>{r.owner ?? <span className="muted">nobody</span>}</td>
            <td>{date(r.reviewDueAt)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** The saved TARAs: item, version, threat scenarios by risk value, and each one's HTML report. */
function Taras(props: { taras: Tara[] }) {
  if (props.taras.length === 0)
    return <p className="muted">No TARA saved yet (`bulwark risk tara FILE --save ID`).</p>;
  return (
    <table className="data">
      <caption className="visually-hidden">Saved threat analyses and risk assessments</caption>
      <ColumnHeads columns={['TARA', 'Item', 'Version', 'Threat scenarios', 'Saved', 'Report']} />
      <tbody>
        {props.taras.map((t) => (
          <tr key={t.id}>
            <td>{t.id}</td>
            <td>{t.item}</td>
            <td>{t.version}</td>
            <td>
              {t.threats}{' '}
              {Object.entries(t.risks)
                .sort(([a], [b]) => Number(b) - Number(a))
                .map(([value, count]) => (
                  <Badge key={value} tone={riskTone(Number(value))}>
                    {count} × risk {value}
                  </Badge>
                ))}
            </td>
            <td>
              {dateTime(t.savedAt)} <span className="muted">by {t.savedBy}</span>
            </td>
            <td>
              <a
                href={hrefOf(api.riskRegister.taraReport, { params: { id: t.id } })}
                target="_blank"
                rel="noreferrer"
                aria-label={`TARA ${t.id} report (HTML, opens in a new tab)`}
              >
                HTML
              </a>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** IEC 62443-3-2: each zone's target and achieved security level and what holds it back. */
function ZoneLevels(props: { zones: ZoneLevel[] }) {
  if (props.zones.length === 0) return <p className="muted">No zones defined.</p>;
  return (
    <table className="data">
      <caption className="visually-hidden">Target and achieved security level per zone</caption>
      <ColumnHeads columns={['Zone', 'SL-T', 'SL-A', 'Gap', 'Devices', 'Holding it back']} />
      <tbody>
        {props.zones.map((z) => (
          <tr key={z.zone}>
            <td>{z.zone}</td>
            <td>{z.target}</td>
            <td>{z.achieved ?? <span className="muted">not measured</span>}</td>
            <td>
              {z.gap === null ? (
                '—'
              ) : (
                <Badge tone={z.gap === 0 ? 'tone-ok' : z.gap === 1 ? 'tone-medium' : 'tone-high'}>
                  {z.gap}
                </Badge>
              )}
            </td>
            <td>{z.devices}</td>
            <td className="small">{z.blocking.length > 0 ? z.blocking.join(', ') : '—'}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** Re-evaluates the register now (risk:write), saying what moved. */
function Reassess(props: { onDone: () => void }) {
  const [state, setState] = useState<string>();
  const { onDone } = props;
  const run = useCallback(() => {
    setState('Re-assessing…');
    call(api.riskRegister.reassess).then(
      (r) => {
        setState(
          `${r.examined} risks examined: ${r.raised} raised, ${r.lowered} lowered, ${r.changed} changed.`,
        );
        onDone();
      },
      (e: unknown) => setState(`Re-assessment failed: ${messageOf(e)}`),
    );
  }, [onDone]);
  return (
    <>
      <button type="button" onClick={run} disabled={state === 'Re-assessing…'}>
        Re-assess now
      </button>{' '}
      {state ? <span role="status">{state}</span> : null}
    </>
  );
}

/** The live risk register and its impact × feasibility matrix, the saved TARAs and the zones' levels. */
export function RiskPage() {
  const register = useLoad(loadRegister, 30_000);
  const taras = useLoad(loadTaras);
  const zones = useLoad(loadZones, 60_000);
  const mayWrite = useAllows(api.riskRegister.reassess);
  return (
    <>
      <h1>Risk</h1>
      <p className="toolbar">
        {mayWrite ? <Reassess onDone={register.reload} /> : null}{' '}
        <a href={hrefOf(api.riskRegister.registerReport)} target="_blank" rel="noreferrer">
          Register report (HTML)
        </a>{' '}
        <a href={hrefOf(api.riskRegister.registerReportJson)} download>
          Register report (JSON)
        </a>
      </p>
      <Loaded what="the risk register" data={register.data} error={register.error}>
        {({ risks }) => (
          <div className="risk-layout">
            <section className="panel" aria-label="Risk matrix">
              <Matrix risks={risks} />
            </section>
            <section aria-label="Risk register">
              <RegisterTable risks={risks} />
            </section>
          </div>
        )}
      </Loaded>
      <section className="block" aria-labelledby="taras">
        <h2 id="taras">Threat analyses (TARA)</h2>
        <Loaded what="the saved TARAs" data={taras.data} error={taras.error}>
          {(t) => <Taras taras={t.taras} />}
        </Loaded>
      </section>
      <section className="block" aria-labelledby="zone-levels">
        <h2 id="zone-levels">Zone security levels</h2>
        <Loaded what="the zones' security levels" data={zones.data} error={zones.error}>
          {(z) => <ZoneLevels zones={z.zones} />}
        </Loaded>
      </section>
    </>
  );
}

function History(props: { history: HistoryEntry[] }) {
  if (props.history.length === 0) return <p className="muted">No history yet.</p>;
  return (
    <table className="data">
      <caption className="visually-hidden">The risk's history, newest first</caption>
      <ColumnHeads columns={['When', 'Who', 'Change', 'Risk', 'Detail']} />
      <tbody>
        {[...props.history]
          .sort((a, b) => b.at - a.at)
          .map((h, i) => (
            <tr key={`${h.at}-${i}`}>
              <td>{dateTime(h.at)}</td>
              <td>{h.actor}</td>
              <td>{h.change}</td>
              <td>{h.from === null && h.to === null ? '—' : `${h.from ?? '—'} → ${h.to ?? '—'}`}</td>
              <td className="small">
                {Object.entries(h.detail)
                  .map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`)
                  .join(' · ')}
              </td>
            </tr>
          ))}
      </tbody>
    </table>
  );
}

/** Owner, treatment, due date and status, with a note for the history (risk:write). */
function EditRisk(props: { risk: Risk; onSaved: (notice: string) => void }) {
  const { risk, onSaved } = props;
  const [owner, setOwner] = useState(risk.owner ?? '');
  const [treatment, setTreatment] = useState(risk.treatment);
  const [due, setDue] = useState(risk.due ?? '');
  const [status, setStatus] = useState(risk.status);
  const [note, setNote] = useState('');
  const [error, setError] = useState<string>();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    const body = {
      ...(owner.trim() !== (risk.owner ?? '') ? { owner: owner.trim() === '' ? null : owner.trim() } : {}),
      ...(treatment !== risk.treatment ? { treatment } : {}),
      ...(due !== (risk.due ?? '') ? { due: due === '' ? null : due } : {}),
      ...(status !== risk.status ? { status } : {}),
      ...(note.trim() ? { note: note.trim() } : {}),
    };
    call(api.riskRegister.updateRisk, { params: { id: risk.id }, body }).then(
      () => onSaved('Saved.'),
      (err: unknown) => setError(messageOf(err)),
    );
  };
  return (
    <form className="panel" onSubmit={submit} aria-labelledby="edit-risk">
      <h2 id="edit-risk">Treatment</h2>
      <InputField id="risk-owner" label="Owner" value={owner} onChange={setOwner} maxLength={200} />
      <SelectField
        id="risk-treatment"
        label="Treatment"
        value={treatment}
        options={riskTreatments}
        onChange={setTreatment}
      />
      <InputField id="risk-due" label="Due" type="date" value={due} onChange={setDue} />
      <SelectField
        id="risk-status"
        label="Status"
        value={status}
        options={riskStatuses}
        onChange={setStatus}
      />
      <InputField
        id="risk-note"
        label="Note for the history (optional)"
        value={note}
        onChange={setNote}
        maxLength={2000}
      />
      <ErrorLine error={error} />
      <p>
        <button type="submit">Save</button>
      </p>
    </form>
  );
}

/** Records a re-assessment with its note: the review is due again after the baseline's interval. */
function ReviewRisk(props: { risk: Risk; onSaved: (notice: string) => void }) {
  const { risk, onSaved } = props;
  const [note, setNote] = useState('');
  const [error, setError] = useState<string>();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    call(api.riskRegister.reviewRisk, { params: { id: risk.id }, body: { note } }).then(
      () => {
        setNote('');
        onSaved('Review recorded.');
      },
      (err: unknown) => setError(messageOf(err)),
    );
  };
  return (
    <form className="panel" onSubmit={submit} aria-labelledby="review-risk">
      <h2 id="review-risk">Review</h2>
      <p className="muted">Review due {date(risk.reviewDueAt)}.</p>
      <InputField
        id="review-note"
        label="What was re-assessed"
        value={note}
        onChange={setNote}
        required
        maxLength={2000}
      />
      <ErrorLine error={error} />
      <p>
        <button type="submit">Record the review</button>
      </p>
    </form>
  );
}

/** One risk: its live value and why, its source and assets, its history; treatment and review for risk:write. */
export function RiskDetail(props: { id: string }) {
  const load = useCallback(() => call(api.riskRegister.getRisk, { params: { id: props.id } }), [props.id]);
  const loaded = useLoad(load, 30_000);
  const mayWrite = useAllows(api.riskRegister.updateRisk);
  const [notice, setNotice] = useState<string>();
  const { reload } = loaded;
  const saved = useCallback(
    (text: string) => {
      setNotice(text);
      reload();
    },
    [reload],
  );
  return (
    <Loaded what={`risk ${props.id}`} data={loaded.data} error={loaded.error}>
      {({ risk, history }) => (
        <>
          <h1>
            {risk.id}: {risk.title}
          </h1>
          <p>
            <Badge tone={riskTone(risk.risk)}>risk {risk.risk}</Badge>{' '}
            {risk.raised ? <Badge tone="tone-critical">raised</Badge> : null}{' '}
            <span className="muted">
              assessed {risk.baseRisk} ({risk.impact} impact, {risk.baseFeasibility} feasibility); live
              feasibility {risk.feasibility}
            </span>
          </p>
          <Facts
            label="The risk"
            rows={[
              [
                'Source',
                risk.source.kind === 'tara'
                  ? `TARA ${risk.source.tara}, threat scenario ${risk.source.threat}`
                  : risk.source.kind === 'zone'
                    ? `zone ${risk.source.zone} (security level gap)`
                    : 'entered by hand',
              ],
              ['Assets', risk.assets.join(', ') || '—'],
              ['Controls', risk.controls.join(', ') || '—'],
              ['Treatment checks', risk.checks.join(', ') || '—'],
              ['Owner', risk.owner ?? 'nobody'],
              ['Status', `${risk.status} · ${risk.treatment}${risk.due ? ` · due ${risk.due}` : ''}`],
            ]}
          />
          <section className="block" aria-labelledby="risk-factors">
            <h2 id="risk-factors">Why it is at {risk.risk} now</h2>
            {risk.factors.length === 0 ? (
              <p className="muted">Nothing in the live fleet moves it from its assessed value.</p>
            ) : (
              <ul>
                {risk.factors.map((f) => (
                  <li key={`${f.kind}:${f.ref}`}>
                    <strong>{f.kind}</strong> {f.detail}{' '}
                    <span className="muted">(feasibility {f.feasibility})</span>
                  </li>
                ))}
              </ul>
            )}
          </section>
          {mayWrite ? (
            <>
              {notice ? <p role="status">{notice}</p> : <p />}
              <div className="grid">
                {/* A new form when the risk changed, so its fields show what is stored now. */}
                <EditRisk
                  key={`${risk.owner}|${risk.treatment}|${risk.due}|${risk.status}`}
                  risk={risk}
                  onSaved={saved}
                />
                <ReviewRisk risk={risk} onSaved={saved} />
              </div>
            </>
          ) : null}
          <section className="block" aria-labelledby="risk-history">
            <h2 id="risk-history">History</h2>
            <History history={history} />
          </section>
          <p>
            <Link to="/risk">Back to the register</Link>
          </p>
        </>
      )}
    </Loaded>
  );
}
