import type { ComponentProps, TextareaHTMLAttributes } from 'react';
import type { z } from 'zod';
import { messageOf } from '../api.ts';
import { InputField } from './fields.tsx';

/**
 * A form's errors by field: `name`, `grants.1` (an item of a list field, counted from 0), and `''` for what
 * belongs to no field (the form as a whole).
 */
export type FieldErrors = Readonly<Record<string, string>>;

/** A zod issue path as a field key: `['grants', 1]` is `grants.1`, the body itself `''`. */
const keyOf = (path: readonly PropertyKey[]) => path.map(String).join('.');

/**
 * The errors by field of a form's input checked against its operation's own body schema (the one the server
 * checks it with), before anything is sent; undefined when the input is valid.
 *
 * @example
 * inputErrors(api.apps.create.body, { name: 'Bad Name' }); // { name: 'app name must be 1-48 characters…' }
 */
export function inputErrors(schema: z.ZodType, input: unknown): FieldErrors | undefined {
  const result = schema.safeParse(input);
  if (result.success) return undefined;
  const errors: Record<string, string> = {};
  for (const issue of result.error.issues) errors[keyOf(issue.path)] ??= issue.message;
  return errors;
}

/**
 * A field the server's refusal may name: by the field name its detail starts with (`purpose: unknown data use…`,
 * `zone plant does not exist`), or by a pattern of its own (`app dashboard already exists` is the name's).
 */
export type FieldRule = string | { field: string; match: RegExp };

function fieldOf(detail: string, rules: readonly FieldRule[]): string | undefined {
  const lower = detail.toLowerCase();
  for (const rule of rules) {
    if (typeof rule === 'string') {
      if (lower.startsWith(`${rule.toLowerCase()}:`) || lower.startsWith(`${rule.toLowerCase()} `))
        return rule;
    } else if (rule.match.test(detail)) return rule.field;
  }
  return undefined;
}

/**
 * A list field's items named in a refusal, each with its part of the detail: `invalid grant: grant 2 ("…"):
 * unknown action; grant 3 ("…"): …` gives `grants.1` and `grants.2` (`item` matches an item's number, from 1,
 * where its part starts).
 */
function itemErrors(detail: string, list: { field: string; item: RegExp }): Record<string, string> {
  const pattern = new RegExp(list.item.source, 'g');
  const starts = [...detail.matchAll(pattern)];
  const errors: Record<string, string> = {};
  starts.forEach((m, i) => {
    const end = starts[i + 1]?.index ?? detail.length;
    const part = detail
      .slice(m.index, end)
      .replace(/[;\s]+$/, '')
      .trim();
    const n = Number(m[1]);
    if (Number.isInteger(n) && n >= 1) errors[`${list.field}.${n - 1}`] ??= part;
  });
  return errors;
}

/**
 * A refused call's message by field: the items of a list field it names, else the field it names, else the
 * form as a whole (`''`). The message is the server's own (RFC 9457 `detail`).
 */
export function problemErrors(
  error: unknown,
  rules: readonly FieldRule[],
  list?: { field: string; item: RegExp },
): FieldErrors {
  const detail = messageOf(error);
  const items = list ? itemErrors(detail, list) : {};
  if (Object.keys(items).length > 0) return items;
  return { [fieldOf(detail, rules) ?? '']: detail };
}

/** The error under one field, announced; its id is what the field's `aria-describedby` names. */
export function FieldNote(props: { id: string; error: string | undefined }) {
  return props.error ? (
    <p id={`${props.id}-error`} className="error field-note" role="alert">
      {props.error}
    </p>
  ) : null;
}

/** What makes a control name its error: invalid, described by the note under it. */
export function invalidProps(id: string, error: string | undefined) {
  return error ? { 'aria-invalid': true, 'aria-describedby': `${id}-error` } : {};
}

/** A labelled input (fields.tsx) with its error under it. */
export function CheckedInput(props: ComponentProps<typeof InputField> & { error: string | undefined }) {
  const { error, ...field } = props;
  return (
    <div className="checked-field">
      <InputField {...field} {...invalidProps(field.id, error)} />
      <FieldNote id={field.id} error={error} />
    </div>
  );
}

/** A labelled text area (a payload, a CSR) with its error under it; other attributes pass through. */
export function TextAreaField(
  props: {
    id: string;
    label: string;
    value: string;
    error?: string | undefined;
    onChange: (value: string) => void;
  } & Omit<TextareaHTMLAttributes<HTMLTextAreaElement>, 'id' | 'value' | 'onChange'>,
) {
  const { label, onChange, error, ...area } = props;
  return (
    <div className="field checked-field wide-field">
      <label htmlFor={props.id}>{label}</label>
      <textarea {...area} {...invalidProps(props.id, error)} onChange={(e) => onChange(e.target.value)} />
      <FieldNote id={props.id} error={error} />
    </div>
  );
}
