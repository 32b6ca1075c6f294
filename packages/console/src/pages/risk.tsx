import { api } from '@bulwark/protocol';
import { call } from '../api.ts';
import { Badge, Loaded } from '../components/status.tsx';
import { riskTone, type Risk } from '../fleet.ts';
import { date } from '../format.ts';
import { useLoad } from '../use-load.ts';

const { impactRatings, feasibilityRatings } = api.riskRegister;
const loadRegister = () => call(api.riskRegister.register);

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
      <thead>
        <tr>
          <th scope="col">Risk</th>
          <th scope="col">Title</th>
          <th scope="col">Status</th>
          <th scope="col">Impact</th>
          <th scope="col">Feasibility</th>
          <th scope="col">Treatment</th>
          <th scope="col">Owner</th>
          <th scope="col">Review due</th>
        </tr>
      </thead>
      <tbody>
        {props.risks.map((r) => (
          <tr key={r.id}>
            <td>
              <Badge tone={riskTone(r.risk)}>{r.risk}</Badge>
              {r.risk !== r.baseRisk ? <span className="muted small"> (assessed {r.baseRisk})</span> : null}
            </td>
            <td>
              {r.title}
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

/** The live risk register and its impact × feasibility matrix. */
export function RiskPage() {
  const register = useLoad(loadRegister, 30_000);
  return (
    <>
      <h1>Risk</h1>
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
    </>
  );
}
