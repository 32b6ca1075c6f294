/** A column's heading: its text, or its text and `num` for a column of numbers (aligned right). */
export type Column = string | { label: string; num: true };

/**
 * The header row of a data table: a heading per column and, with `actions`, a last column for the row's
 * buttons, named for screen readers only.
 */
export function ColumnHeads(props: { columns: readonly Column[]; actions?: boolean }) {
  return (
    <thead>
      <tr>
        {props.columns.map((c) =>
          typeof c === 'string' ? (
            <th key={c} scope="col">
              {c}
            </th>
          ) : (
            <th key={c.label} scope="col" className="num">
              {c.label}
            </th>
          ),
        )}
        {props.actions ? (
          <th scope="col">
            <span className="visually-hidden">Actions</span>
          </th>
        ) : null}
      </tr>
    </thead>
  );
}
