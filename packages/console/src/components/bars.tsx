/** One bar: a label, its value, and the colour class of what it measures (`tone-critical`, `tone-active`…). */
export interface Bar {
  key: string;
  label: string;
  value: number;
  tone: string;
  /** What the value reads as (default: the number). */
  text?: string;
}

/**
 * Horizontal bars drawn in SVG (no chart library, nothing inline for the CSP to refuse): a list a screen reader
 * reads as "label: value", each row with its bar scaled to `max` (default: the largest value).
 */
export function Bars(props: { label: string; bars: readonly Bar[]; max?: number; empty?: string }) {
  const max = props.max ?? Math.max(1, ...props.bars.map((b) => b.value));
  if (props.bars.length === 0) return <p className="muted">{props.empty ?? 'Nothing to show.'}</p>;
  return (
    <ul className="bars" aria-label={props.label}>
      {props.bars.map((bar) => (
        <li key={bar.key}>
          <span className="bar-label">{bar.label}</span>
          <svg className="bar-track" viewBox="0 0 100 10" preserveAspectRatio="none" aria-hidden="true">
            <rect className="bar-bg" x="0" y="0" width="100" height="10" rx="2" />
            <rect
              className={`bar-fill ${bar.tone}`}
              x="0"
              y="0"
              width={max > 0 ? Math.max(bar.value > 0 ? 1.5 : 0, (bar.value / max) * 100) : 0}
              height="10"
              rx="2"
            />
          </svg>
          <span className="bar-value">{bar.text ?? bar.value.toLocaleString('en')}</span>
        </li>
      ))}
    </ul>
  );
}
