import { useState, type FormEvent } from 'react';
import type { z } from 'zod';
import { api } from '@bulwark/protocol';
import { call } from '../api.ts';
import { ErrorLine } from '../components/fields.tsx';
import {
  CheckedInput,
  inputErrors,
  problemErrors,
  TextAreaField,
  type FieldErrors,
} from '../components/form-errors.tsx';
import { Badge, Loaded } from '../components/status.tsx';
import { ColumnHeads } from '../components/table.tsx';
import { dateTime } from '../format.ts';
import { useLoad } from '../use-load.ts';

type Schema = z.output<typeof api.privacy.dataSchemaView>;
type FieldPlan = z.output<typeof api.privacy.fieldPlan>;
type TestResult = z.output<typeof api.privacy.schemaTestResult>;

const loadSchemas = () => call(api.privacy.listSchemas);

/** The columns of a data schema's fields, in the Privacy page's schemas and in the record of processing. */
export const fieldColumns = [
  'Field',
  'Category',
  'Personal',
  'Purposes in clear',
  'Lawful basis',
  'Retention',
  'Others receive',
  'Kept',
] as const;

/** A retention as a person reads it: 30 days, 12 hours, 45 minutes. */
export function retentionText(ms: number | null): string {
  if (ms === null) return 'none';
  const units: [string, number][] = [
    ['day', 86_400_000],
    ['hour', 3_600_000],
    ['minute', 60_000],
    ['second', 1000],
  ];
  for (const [unit, size] of units)
    if (ms >= size && ms % size === 0) return `${ms / size} ${unit}${ms === size ? '' : 's'}`;
  return `${ms} ms`;
}

/** A transform as written in the schema: `drop`, `pseudonymise`, `{ "generalise": { … } }` (spaced, so it wraps). */
export const transformText = (t: unknown) =>
  typeof t === 'string' ? t : JSON.stringify(t, null, 1).replace(/\s+/g, ' ');

/** A value the broker would keep or deliver, as JSON (null: nothing). */
const json = (v: unknown) => (v === null || v === undefined ? 'nothing' : JSON.stringify(v, null, 2));

function FieldsTable(props: { schema: Schema }) {
  const s = props.schema;
  return (
    <table className="data">
      <caption>Fields of {s.name}</caption>
      <ColumnHeads columns={fieldColumns} />
      <tbody>
        {s.fields.map((f: FieldPlan) => (
          <tr key={f.path}>
            <th scope="row">
              <code>{f.path}</code>
              {f.description ? <div className="muted small">{f.description}</div> : null}
            </th>
            <td>{f.category}</td>
            <td>
              {f.special ? (
                <Badge tone="tone-high">{`special (${f.specialCondition ?? 'no condition'})`}</Badge>
              ) : f.personal ? (
                <Badge tone="tone-medium">personal</Badge>
              ) : (
                'no'
              )}
              {f.quasiIdentifier ? <div className="muted small">quasi-identifier</div> : null}
            </td>
            <td>{f.uses === null ? 'every consumer' : f.uses.join(', ')}</td>
            <td>{f.lawfulBasis ?? <span className="muted">none</span>}</td>
            <td>{retentionText(f.retentionMs)}</td>
            <td>
              <code>{transformText(f.transform)}</code>
            </td>
            <td>{f.store}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function SchemaTable(props: {
  schemas: Schema[];
  shown: string | undefined;
  onShow: (name: string) => void;
}) {
  if (props.schemas.length === 0)
    return (
      <p className="muted">No data schemas: payloads are delivered as sent (`bulwark data-schema put`).</p>
    );
  return (
    <table className="data">
      <caption className="visually-hidden">Data schemas</caption>
      <ColumnHeads
        columns={[
          'Schema',
          'Topic',
          { label: 'Version', num: true },
          { label: 'Fields', num: true },
          { label: 'Personal', num: true },
          { label: 'Special', num: true },
          'Changed',
        ]}
      />
      <tbody>
        {props.schemas.map((s) => (
          <tr key={s.name}>
            <th scope="row">
              <button
                type="button"
                className="link"
                aria-expanded={props.shown === s.name}
                onClick={() => props.onShow(s.name)}
              >
                {s.name}
              </button>
            </th>
            <td>
              <code>{s.topic}</code>
            </td>
            <td className="num">{s.version}</td>
            <td className="num">{s.fields.length}</td>
            <td className="num">{s.fields.filter((f) => f.personal).length}</td>
            <td className="num">{s.fields.filter((f) => f.special).length}</td>
            <td>
              {dateTime(s.updatedAt)} <span className="muted small">by {s.updatedBy}</span>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function TestOutcome(props: { result: TestResult; purpose: string }) {
  const r = props.result;
  return (
    <div role="status" aria-label="Test result" className="decision">
      <p>
        <Badge tone={r.valid ? 'tone-ok' : 'tone-critical'}>{r.valid ? 'valid' : 'refused'}</Badge>{' '}
        {r.schema === null ? 'no data schema matches the topic: delivered as sent' : `by schema ${r.schema}`}
        {r.subject ? `, about subject ${r.subject}` : ''}
      </p>
      {r.reason ? <p className="error">{r.reason}</p> : null}
      {r.valid ? (
        <div className="grid">
          <div>
            <h3>Kept (telemetry store, retained)</h3>
            <pre className="payload" aria-label="Kept">
              {json(r.kept)}
            </pre>
          </div>
          <div>
            <h3>{props.purpose ? `A consumer for ${props.purpose} receives` : 'A device receives'}</h3>
            <pre className="payload" aria-label="Delivered">
              {json(r.view)}
            </pre>
          </div>
        </div>
      ) : null}
      {r.note ? <p className="muted small">{r.note}</p> : null}
    </div>
  );
}

/** What the broker would do with a payload on a topic (POST /privacy/schemas/test): nothing is published. */
function TestPayload() {
  const [topic, setTopic] = useState('');
  const [payload, setPayload] = useState('');
  const [purpose, setPurpose] = useState('');
  const [device, setDevice] = useState('');
  const [errors, setErrors] = useState<FieldErrors>({});
  const [result, setResult] = useState<{ result: TestResult; purpose: string }>();
  const [busy, setBusy] = useState(false);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const body = {
      topic: topic.trim(),
      payload,
      ...(purpose.trim() ? { purpose: purpose.trim() } : {}),
      ...(device.trim() ? { device: device.trim() } : {}),
    };
    const invalid = inputErrors(api.privacy.testSchema.body, body);
    setErrors(invalid ?? {});
    if (invalid) return;
    setBusy(true);
    call(api.privacy.testSchema, { body })
      .then(
        (r) => setResult({ result: r, purpose: body.purpose ?? '' }),
        (err: unknown) => {
          setResult(undefined);
          setErrors(problemErrors(err, ['topic', 'payload', 'purpose', 'device']));
        },
      )
      .finally(() => setBusy(false));
  };
  return (
    <form onSubmit={submit} aria-label="Test a payload" noValidate>
      <div className="inline-form">
        <CheckedInput
          id="test-topic"
          label="Topic"
          placeholder="devices/sensor-1/telemetry"
          value={topic}
          error={errors.topic}
          onChange={setTopic}
        />
        <CheckedInput
          id="test-purpose"
          label="Consumer's purpose (empty: a device)"
          placeholder="analytics.reporting"
          value={purpose}
          error={errors.purpose}
          onChange={setPurpose}
        />
        <CheckedInput
          id="test-device"
          label="Publishing device (optional)"
          value={device}
          error={errors.device}
          onChange={setDevice}
        />
      </div>
      <TextAreaField
        id="test-payload"
        label="Payload"
        rows={4}
        value={payload}
        error={errors.payload}
        onChange={setPayload}
        placeholder='{"user_id":"u-17","temp":21.5}'
      />
      <div className="actions">
        <button type="submit" disabled={busy}>
          Test
        </button>
      </div>
      <ErrorLine error={errors['']} />
      {result ? <TestOutcome result={result.result} purpose={result.purpose} /> : null}
    </form>
  );
}

/** Data schemas with each field's classification, and a payload tried against them. */
export function Schemas() {
  const schemas = useLoad(loadSchemas, 60_000);
  const [shown, setShown] = useState<string>();
  return (
    <section className="block" aria-labelledby="schemas">
      <h2 id="schemas">Data schemas</h2>
      <Loaded what="data schemas" data={schemas.data} error={schemas.error}>
        {(list) => {
          const schema = list.find((s) => s.name === shown);
          return (
            <>
              <SchemaTable
                schemas={list}
                shown={shown}
                onShow={(name) => setShown((s) => (s === name ? undefined : name))}
              />
              {schema ? (
                <div className="spaced">
                  <p className="muted small">
                    {schema.name} v{schema.version} describes <code>{schema.topic}</code>
                    {typeof schema.document.description === 'string'
                      ? `: ${schema.document.description}`
                      : ''}
                  </p>
                  <FieldsTable schema={schema} />
                </div>
              ) : null}
            </>
          );
        }}
      </Loaded>
      <section className="panel spaced" aria-label="Test a payload">
        <h3>Test a payload</h3>
        <TestPayload />
      </section>
    </section>
  );
}
