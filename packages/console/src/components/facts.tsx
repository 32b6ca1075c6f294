import type { ReactNode } from 'react';

/** Facts about one thing: a label and its value per line, named for assistive technology. */
export function Facts(props: { label: string; rows: readonly (readonly [string, ReactNode])[] }) {
  return (
    <dl className="facts" aria-label={props.label}>
      {props.rows.map(([k, v]) => (
        <div key={k}>
          <dt>{k}</dt>
          <dd>{v}</dd>
        </div>
      ))}
    </dl>
  );
}

/** A titled panel of a detail page: a region named by its heading. */
export function Section(props: { title: string; children: ReactNode; className?: string }) {
  return (
    <section className={`panel spaced ${props.className ?? ''}`.trim()} aria-label={props.title}>
      <h2>{props.title}</h2>
      {props.children}
    </section>
  );
}
