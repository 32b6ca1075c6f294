import type { z } from 'zod';
import type { api } from '@bulwark/protocol';
import { Badge } from './status.tsx';
import { ColumnHeads } from './table.tsx';

export type Access = z.output<typeof api.access.deviceAccess>;

/**
 * What a device may do now and why (GET /api/v1/devices/:id/access): its zone or quarantine, the statements that
 * apply with their policy, and those that do not with the reason. The device page and the policies page's
 * "explain" show it alike.
 */
export function EffectiveAccess(props: { access: Access }) {
  const a = props.access;
  return (
    <>
      <p>
        {a.quarantined ? (
          <Badge tone="tone-high">quarantined: only its quarantine and command topics</Badge>
        ) : (
          <>
            Zone <strong>{a.zone ?? 'none'}</strong>
          </>
        )}
        {a.held ? <span className="error"> {a.held}</span> : null}
      </p>
      {a.statements.length === 0 ? (
        <p className="muted">No statement applies: everything is denied (deny by default).</p>
      ) : (
        <div className="table-scroll">
          <table className="data">
            <caption>Statements that apply now</caption>
            <ColumnHeads columns={['Policy', 'Statement', 'Effect', 'Actions', 'Topics']} />
            <tbody>
              {a.statements.map((s) => (
                <tr key={`${s.policy}/${s.sid}`}>
                  <td>{s.policy}</td>
                  <td>{s.sid}</td>
                  <td>
                    <Badge tone={s.effect === 'allow' ? 'tone-ok' : 'tone-critical'}>{s.effect}</Badge>
                  </td>
                  <td>{s.actions.join(', ')}</td>
                  <td>
                    <code>{s.resources.join(' ')}</code>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {a.dropped.length > 0 ? (
        <ul aria-label="Statements that do not apply">
          {a.dropped.map((x) => (
            <li key={`${x.policy}/${x.statement}`}>
              {x.policy}/{x.statement}: <span className="muted">{x.reason}</span>
            </li>
          ))}
        </ul>
      ) : null}
    </>
  );
}
