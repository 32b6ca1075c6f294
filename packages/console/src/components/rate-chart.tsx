import { rateText, spanText, type RateStep } from '../device-activity.ts';

const W = 320;
const H = 120;
const PAD = { left: 8, right: 8, top: 18, bottom: 22 };

/**
 * Time runs on a square-root scale: the last 10 seconds and the last hour both stay readable (on a linear scale
 * the last minute would be a sliver). Each edge is labelled with how long ago it is.
 */
const xOf = (agoMs: number, oldestMs: number) =>
  PAD.left + (1 - Math.sqrt(agoMs / oldestMs)) * (W - PAD.left - PAD.right);
const yOf = (v: number, max: number) => PAD.top + (1 - (max > 0 ? v / max : 0)) * (H - PAD.top - PAD.bottom);

/** The stretches whose older edge gets a label: those far enough from the previous label and from "now". */
function edgeLabels(steps: readonly RateStep[], oldest: number): RateStep[] {
  const room = 40;
  const kept: RateStep[] = [];
  let lastX = -Infinity;
  for (const s of steps) {
    const x = xOf(s.fromAgoMs, oldest);
    if (x - lastX < room || W - PAD.right - x < room) continue;
    kept.push(s);
    lastX = x;
  }
  return kept;
}

/** What a screen reader hears instead of the picture: the rate in each stretch, oldest first. */
function describe(label: string, steps: readonly RateStep[]): string {
  const parts = steps.map(
    (s) =>
      `${rateText(s.perSecond)} ${s.toAgoMs === 0 ? `in the last ${spanText(s.fromAgoMs)}` : `from ${spanText(s.fromAgoMs)} to ${spanText(s.toAgoMs)} ago`}`,
  );
  return `${label} per second: ${parts.join('; ')}`;
}

/**
 * A small line chart of one rate over the last hour, as steps (a rate holds over each stretch of time), drawn in
 * SVG with classes only (no chart library, nothing inline for the CSP to refuse). The latest rate is written
 * beside the title.
 */
export function RateChart(props: { label: string; steps: readonly RateStep[]; series: number }) {
  const { steps } = props;
  const oldest = steps[0]?.fromAgoMs ?? 0;
  const latest = steps[steps.length - 1];
  const max = Math.max(0, ...steps.map((s) => s.perSecond));
  const points = steps
    .flatMap((s) => [
      [xOf(s.fromAgoMs, oldest), yOf(s.perSecond, max)],
      [xOf(s.toAgoMs, oldest), yOf(s.perSecond, max)],
    ])
    .map(([x, y]) => `${(x ?? 0).toFixed(1)},${(y ?? 0).toFixed(1)}`)
    .join(' ');
  return (
    <figure className="rate-chart">
      <figcaption>
        {props.label}{' '}
        <span className="muted">{latest ? `${rateText(latest.perSecond)} now` : 'no traffic yet'}</span>
      </figcaption>
      {steps.length === 0 ? null : (
        <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={describe(props.label, steps)}>
          <line className="grid-line" x1={PAD.left} x2={W - PAD.right} y1={yOf(0, max)} y2={yOf(0, max)} />
          <line
            className="grid-line"
            x1={PAD.left}
            x2={W - PAD.right}
            y1={yOf(max, max)}
            y2={yOf(max, max)}
          />
          <text className="axis-label" x={PAD.left} y={PAD.top - 5}>
            {`max ${rateText(max)}`}
          </text>
          {edgeLabels(steps, oldest).map((s) => (
            <text
              key={s.fromAgoMs}
              className="axis-label"
              x={xOf(s.fromAgoMs, oldest)}
              y={H - 6}
              textAnchor={s.fromAgoMs === oldest ? 'start' : 'middle'}
            >
              {spanText(s.fromAgoMs)}
            </text>
          ))}
          <text className="axis-label" x={W - PAD.right} y={H - 6} textAnchor="end">
            now
          </text>
          <g className={`series series-${props.series % 6}`}>
            <polyline points={points} />
          </g>
        </svg>
      )}
    </figure>
  );
}
