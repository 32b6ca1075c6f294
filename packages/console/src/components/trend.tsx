import { percent } from '../format.ts';

/** One line of the chart: a label and a value (0..1, null: none) per point in time. */
export interface TrendSeries {
  key: string;
  label: string;
  values: readonly (number | null)[];
}

const W = 640;
const H = 220;
const PAD = { left: 44, right: 12, top: 10, bottom: 26 };
/** Distinct colours (styles.css `.series-N`), in turn. */
const PALETTE = 6;

const xOf = (i: number, n: number) =>
  PAD.left + (n <= 1 ? (W - PAD.left - PAD.right) / 2 : (i * (W - PAD.left - PAD.right)) / (n - 1));
const yOf = (v: number) => PAD.top + (1 - v) * (H - PAD.top - PAD.bottom);

/** The runs of points with a value, as polyline coordinates: a null breaks the line. */
function segments(values: readonly (number | null)[]): string[] {
  const runs: string[][] = [[]];
  values.forEach((v, i) => {
    if (v === null) runs.push([]);
    else runs[runs.length - 1]?.push(`${xOf(i, values.length).toFixed(1)},${yOf(v).toFixed(1)}`);
  });
  return runs.filter((r) => r.length > 0).map((r) => r.join(' '));
}

/** What a screen reader hears instead of the picture: each line from its first value to its last. */
function describe(label: string, series: readonly TrendSeries[], points: number): string {
  const lines = series.map((s) => {
    const known = s.values.filter((v): v is number => v !== null);
    const [first, last] = [known[0], known[known.length - 1]];
    return first === undefined || last === undefined
      ? `${s.label}: no score`
      : `${s.label} from ${percent(first)} to ${percent(last)}`;
  });
  return `${label} over ${points} runs: ${lines.join('; ')}`;
}

/**
 * A line chart of scores (0..1) over time, drawn in SVG with classes only (no chart library, nothing inline for
 * the CSP to refuse): one line per series, a point per value with its exact figure as a tooltip, and a legend
 * with the latest value of each.
 */
export function TrendChart(props: {
  label: string;
  /** What each point in time is called (a date), oldest first. */
  points: readonly string[];
  series: readonly TrendSeries[];
}) {
  const n = props.points.length;
  const ticks = [0, 0.5, 1];
  const first = props.points[0];
  const last = props.points[n - 1];
  return (
    <figure className="trend">
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={describe(props.label, props.series, n)}>
        {ticks.map((t) => (
          <g key={t}>
            <line className="grid-line" x1={PAD.left} x2={W - PAD.right} y1={yOf(t)} y2={yOf(t)} />
            <text className="axis-label" x={PAD.left - 6} y={yOf(t) + 4} textAnchor="end">
              {percent(t)}
            </text>
          </g>
        ))}
        {first !== undefined ? (
          <text className="axis-label" x={xOf(0, n)} y={H - 6} textAnchor={n > 1 ? 'start' : 'middle'}>
            {first}
          </text>
        ) : null}
        {last !== undefined && n > 1 ? (
          <text className="axis-label" x={xOf(n - 1, n)} y={H - 6} textAnchor="end">
            {last}
          </text>
        ) : null}
        {props.series.map((s, i) => (
          <g key={s.key} className={`series series-${i % PALETTE}`}>
            {segments(s.values).map((points) => (
              <polyline key={points} points={points} />
            ))}
            {s.values.map((v, j) =>
              v === null ? null : (
                <circle key={j} cx={xOf(j, n)} cy={yOf(v)} r="3.5">
                  <title>{`${s.label}, ${props.points[j] ?? ''}: ${percent(v)}`}</title>
                </circle>
              ),
            )}
          </g>
        ))}
      </svg>
      <figcaption>
        <ul className="legend" aria-label={`${props.label}: latest`}>
          {props.series.map((s, i) => (
            <li key={s.key}>
              <svg className={`swatch series series-${i % PALETTE}`} viewBox="0 0 16 4" aria-hidden="true">
                <line x1="0" x2="16" y1="2" y2="2" />
              </svg>
              {s.label} <span className="muted">{percent(s.values[s.values.length - 1] ?? null)}</span>
            </li>
          ))}
        </ul>
      </figcaption>
    </figure>
  );
}
