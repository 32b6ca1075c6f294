import type { InputHTMLAttributes } from 'react';

/** One choice of a select: its value, shown as is, or a value with the label to show. */
export type Option<T extends string> = T | { value: T; label: string };

function optionOf<T extends string>(o: Option<T>): { value: T; label: string } {
  return typeof o === 'string' ? { value: o, label: o } : o;
}

interface SelectProps<T extends string> {
  id: string;
  label: string;
  value: T;
  options: readonly Option<T>[];
  onChange: (value: T) => void;
}

/** A label and its select, side by side (as in a toolbar); the label names the select by its id. */
export function LabelledSelect<T extends string>(props: SelectProps<T>) {
  return (
    <>
      <label htmlFor={props.id}>{props.label}</label>
      <select id={props.id} value={props.value} onChange={(e) => props.onChange(e.target.value as T)}>
        {props.options.map(optionOf).map((o) => (
          <option key={o.value} value={o.value}>
            {o.label}
          </option>
        ))}
      </select>
    </>
  );
}

/** A labelled select in a form field. */
export function SelectField<T extends string>(props: SelectProps<T>) {
  return (
    <div className="field">
      <LabelledSelect {...props} />
    </div>
  );
}

/** A labelled input in a form field; other input attributes pass through. */
export function InputField(
  props: { id: string; label: string; value: string; onChange: (value: string) => void } & Omit<
    InputHTMLAttributes<HTMLInputElement>,
    'id' | 'value' | 'onChange'
  >,
) {
  const { label, onChange, ...input } = props;
  return (
    <div className="field">
      <label htmlFor={props.id}>{label}</label>
      <input {...input} onChange={(e) => onChange(e.target.value)} />
    </div>
  );
}

/** An error to announce, or nothing. */
export function ErrorLine(props: { error: string | undefined }) {
  return props.error ? (
    <p className="error" role="alert">
      {props.error}
    </p>
  ) : null;
}
