/** One part of a stacked bar: how many, and the colour class of what it counts (`tone-ok`, `tone-critical`…). */
export interface Segment {
  key: string;
  label: string;
  value: number;
  tone: string;
}

/**
 * One horizontal bar split into parts (devices of a rollout phase: succeeded, failed, in progress…), in SVG with
 * classes only; what is not counted by a part (pending) is the empty track. The picture is hidden from screen
 * readers: the counts are written beside it (`StackedCounts`).
 */
export function StackedBar(props: { segments: readonly Segment[]; total: number }) {
  const total = Math.max(props.total, 1);
  const widths = props.segments.map((s) => (s.value / total) * 100);
  const starts = widths.map((_, i) => widths.slice(0, i).reduce((sum, w) => sum + w, 0));
  return (
    <svg className="stacked" viewBox="0 0 100 10" preserveAspectRatio="none" aria-hidden="true">
      <rect className="bar-bg" x="0" y="0" width="100" height="10" rx="2" />
      {props.segments.map((s, i) =>
        (widths[i] ?? 0) > 0 ? (
          <rect
            key={s.key}
            className={`bar-fill ${s.tone}`}
            x={starts[i]}
            y="0"
            width={widths[i]}
            height="10"
          />
        ) : null,
      )}
    </svg>
  );
}

/** The counts of a stacked bar as text: "2 succeeded · 1 failed · 3 pending" (parts at zero left out). */
export function StackedCounts(props: { segments: readonly Segment[]; empty: string }) {
  const shown = props.segments.filter((s) => s.value > 0);
  if (shown.length === 0) return <span className="muted">{props.empty}</span>;
  return (
    <span className="stacked-counts">
      {shown.map((s, i) => (
        <span key={s.key}>
          {i > 0 ? ' · ' : ''}
          <span className={`dot ${s.tone}`} aria-hidden="true" />
          {s.value.toLocaleString('en')} {s.label}
        </span>
      ))}
    </span>
  );
}
