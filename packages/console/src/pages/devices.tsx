import { useCallback, useMemo, useState } from 'react';
import { z } from 'zod';
import { api } from '@bulwark/protocol';
import { call, messageOf } from '../api.ts';
import { Confirm } from '../components/confirm.tsx';
import { ErrorLine, InputField, LabelledSelect, SelectField } from '../components/fields.tsx';
import { Pager, SavedFilterControls, usePaging } from '../components/list-tools.tsx';
import { Badge, Loaded } from '../components/status.tsx';
import { allDevices, deviceStates, stateTone, type Device } from '../fleet.ts';
import { ago, dateTime } from '../format.ts';
import { Link } from '../router.tsx';
import { allows, useAllows, useSession } from '../session.ts';
import { useLoad } from '../use-load.ts';

type Reason = (typeof api.devices.revocationReasons)[number];
export type BulkAction = (typeof api.operations.bulkActions)[number];
export type BulkOperation = z.output<typeof api.operations.bulkOperation>;
const FINAL: readonly string[] = ['revoked', 'decommissioned'];

/** How each bulk action reads on a button and in a sentence. */
export const actionLabels: Record<BulkAction, { button: string; verb: string }> = {
  quarantine: { button: 'Quarantine', verb: 'quarantine' },
  release: { button: 'Release', verb: 'release' },
  lost: { button: 'Mark lost', verb: 'mark lost' },
  revoke: { button: 'Revoke', verb: 'revoke' },
  decommission: { button: 'Decommission', verb: 'decommission' },
};

/** What a list of devices is filtered by (saved filters keep exactly this). */
const deviceFilter = z.object({
  state: z.enum(['all', ...deviceStates]),
  group: z.string(),
  zone: z.string(),
  text: z.string(),
});
type DeviceFilter = z.output<typeof deviceFilter>;
const noFilter: DeviceFilter = { state: 'all', group: '', zone: '', text: '' };

function matches(d: Device, f: DeviceFilter): boolean {
  return (
    (f.state === 'all' || d.state === f.state) &&
    (f.group === '' || (d.group ?? '') === f.group) &&
    (f.zone === '' || (d.zone ?? '') === f.zone) &&
    (f.text === '' || d.id.toLowerCase().includes(f.text.toLowerCase()))
  );
}

const distinct = (values: (string | null)[]) =>
  [...new Set(values.filter((v): v is string => v !== null))].sort();

/** One sentence about what a bulk request came to: it ran (with its outcome), or it waits for approval. */
export function outcomeOf(op: BulkOperation): string {
  const what = `${actionLabels[op.action].button} of ${op.count} device${op.count === 1 ? '' : 's'}`;
  if (op.status === 'pending')
    return `${what} awaits a second person's approval (at least ${op.threshold} devices need one): see Approvals.`;
  const { ok, skipped, failed } = op.summary;
  return `${what} ran: ${ok} done, ${skipped} unchanged, ${failed} failed.`;
}

function RevokeDialog(props: { device: Device; onDone: (message: string) => void; onCancel: () => void }) {
  const [reason, setReason] = useState<Reason>('cessationOfOperation');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const { device, onDone } = props;
  const revoke = () => {
    setBusy(true);
    call(api.devices.revoke, { params: { id: device.id }, body: { reason } }).then(
      (r) => onDone(`${device.id} revoked (${r.revokedCertificates.length} certificate(s)).`),
      (e: unknown) => {
        setBusy(false);
        setError(messageOf(e));
      },
    );
  };
  return (
    <Confirm
      title={`Revoke ${device.id}?`}
      confirmLabel={busy ? 'Revoking…' : `Revoke ${device.id}`}
      busy={busy}
      onConfirm={revoke}
      onCancel={props.onCancel}
    >
      <p>
        Its certificates are revoked and its live session is dropped within a second. This cannot be undone:
        the device must be registered and enrolled again.
      </p>
      <SelectField
        id="revoke-reason"
        label="Reason (RFC 5280)"
        value={reason}
        options={api.devices.revocationReasons}
        onChange={setReason}
      />
      <ErrorLine error={error} />
    </Confirm>
  );
}

/** What a bulk request is about: its action and either the chosen devices or a zone. */
interface BulkIntent {
  action: BulkAction;
  ids?: string[];
  zone?: string;
  /** The devices it selects as this page knows them (the server resolves the selection again). */
  deviceIds: string[];
}

const SHOWN_IDS = 20;

/** The ids a confirmation names: all of them when few, else the first ones and how many more. */
export function IdList(props: { ids: readonly string[] }) {
  const shown = props.ids.slice(0, SHOWN_IDS);
  const more = props.ids.length - shown.length;
  return (
    <p className="small">
      <code>{shown.join(', ')}</code>
      {more > 0 ? ` and ${more} more` : ''}
    </p>
  );
}

/** Confirms a bulk action, naming how many devices and which; the answer says whether it ran or waits. */
function BulkDialog(props: {
  intent: BulkIntent;
  onDone: (op: BulkOperation) => void;
  onCancel: () => void;
}) {
  const { intent, onDone } = props;
  const [reason, setReason] = useState('');
  const [revocationReason, setRevocationReason] = useState<Reason>('cessationOfOperation');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const label = actionLabels[intent.action];
  const n = intent.deviceIds.length;
  const noun = `${n} device${n === 1 ? '' : 's'}`;
  const run = () => {
    setBusy(true);
    const selection = intent.zone !== undefined ? { zone: intent.zone } : { ids: intent.ids ?? [] };
    call(api.operations.createBulk, {
      body: {
        action: intent.action,
        ...selection,
        ...(reason.trim() ? { reason: reason.trim() } : {}),
        ...(intent.action === 'revoke' ? { revocationReason } : {}),
      },
    }).then(onDone, (e: unknown) => {
      setBusy(false);
      setError(messageOf(e));
    });
  };
  const title =
    intent.zone !== undefined ? `${label.button} zone ${intent.zone} (${noun})?` : `${label.button} ${noun}?`;
  return (
    <Confirm
      title={title}
      confirmLabel={busy ? 'Sending…' : `${label.button} ${noun}`}
      busy={busy}
      onConfirm={run}
      onCancel={props.onCancel}
    >
      <p>
        This will {label.verb} {noun}
        {intent.zone !== undefined ? ` in zone ${intent.zone}` : ''}. A large selection waits for a second
        person&apos;s approval before anything changes.
      </p>
      <IdList ids={intent.deviceIds} />
      <InputField
        id="bulk-reason"
        label="Reason (recorded in the audit log)"
        value={reason}
        maxLength={256}
        onChange={setReason}
      />
      {intent.action === 'revoke' ? (
        <SelectField
          id="bulk-revocation-reason"
          label="Revocation reason (RFC 5280)"
          value={revocationReason}
          options={api.devices.revocationReasons}
          onChange={setRevocationReason}
        />
      ) : null}
      <ErrorLine error={error} />
    </Confirm>
  );
}

function DeviceRow(props: {
  device: Device;
  mayRevoke: boolean;
  selectable: boolean;
  selected: boolean;
  onSelect: (id: string, selected: boolean) => void;
  onRevoke: (d: Device) => void;
}) {
  const d = props.device;
  return (
    <tr>
      {props.selectable ? (
        <td className="select">
          <input
            type="checkbox"
            checked={props.selected}
            onChange={(e) => props.onSelect(d.id, e.target.checked)}
            aria-label={`Select ${d.id}`}
          />
        </td>
      ) : null}
      <th scope="row">
        <Link to={`/devices/${encodeURIComponent(d.id)}`}>{d.id}</Link>
      </th>
      <td>
        <Badge tone={stateTone[d.state]}>{d.state}</Badge>
      </td>
      <td>{d.online ? 'online' : <span className="muted">offline</span>}</td>
      <td>{d.group ?? <span className="muted">none</span>}</td>
      <td>{d.zone ?? <span className="muted">none</span>}</td>
      <td>{d.firmwareVersion ?? <span className="muted">unknown</span>}</td>
      <td title={d.lastSeenAt === null ? undefined : dateTime(d.lastSeenAt)}>{ago(d.lastSeenAt)}</td>
      <td>
        {props.mayRevoke && !FINAL.includes(d.status) ? (
          <button
            type="button"
            className="danger"
            onClick={() => props.onRevoke(d)}
            aria-label={`Revoke ${d.id}`}
          >
            Revoke
          </button>
        ) : null}
      </td>
    </tr>
  );
}

function DeviceTable(props: {
  devices: Device[];
  mayRevoke: boolean;
  selectable: boolean;
  selected: ReadonlySet<string>;
  onSelect: (ids: string[], selected: boolean) => void;
  onRevoke: (d: Device) => void;
}) {
  const { devices, selected, onSelect } = props;
  const selectOne = useCallback((id: string, on: boolean) => onSelect([id], on), [onSelect]);
  if (devices.length === 0) return <p className="muted">No devices in this view.</p>;
  const allOnPage = devices.every((d) => selected.has(d.id));
  return (
    <table className="data">
      <caption className="visually-hidden">Devices</caption>
      <thead>
        <tr>
          {props.selectable ? (
            <th scope="col" className="select">
              <input
                type="checkbox"
                checked={allOnPage}
                onChange={(e) =>
                  onSelect(
                    devices.map((d) => d.id),
                    e.target.checked,
                  )
                }
                aria-label="Select all devices on this page"
              />
            </th>
          ) : null}
          <th scope="col">Device</th>
          <th scope="col">State</th>
          <th scope="col">Connection</th>
          <th scope="col">Group</th>
          <th scope="col">Zone</th>
          <th scope="col">Firmware</th>
          <th scope="col">Last seen</th>
          <th scope="col">
            <span className="visually-hidden">Actions</span>
          </th>
        </tr>
      </thead>
      <tbody>
        {devices.map((d) => (
          <DeviceRow
            key={d.id}
            device={d}
            mayRevoke={props.mayRevoke}
            selectable={props.selectable}
            selected={selected.has(d.id)}
            onSelect={selectOne}
            onRevoke={props.onRevoke}
          />
        ))}
      </tbody>
    </table>
  );
}

/** The actions the role may run in bulk: the bulk request and each device operation's own permission. */
function useBulkActions(): BulkAction[] {
  const { info } = useSession();
  if (!allows(info, api.operations.createBulk)) return [];
  return api.operations.bulkActions.filter((a) => allows(info, api.operations.bulkActionContracts[a]));
}

/** The bar over a selection: how many are chosen and what can be done to all of them at once. */
function BulkBar(props: {
  count: number;
  actions: BulkAction[];
  onAction: (a: BulkAction) => void;
  onClear: () => void;
}) {
  if (props.count === 0) return null;
  return (
    <div className="bulk-bar" role="region" aria-label="Bulk actions">
      <strong>{props.count} selected</strong>
      {props.actions.map((a) => (
        <button
          key={a}
          type="button"
          className={a === 'release' ? undefined : 'danger'}
          onClick={() => props.onAction(a)}
        >
          {actionLabels[a].button} selected
        </button>
      ))}
      <button type="button" className="link" onClick={props.onClear}>
        Clear selection
      </button>
    </div>
  );
}

/** Quarantine every device of a zone (the devices this page knows in it, counted in the confirmation). */
function ZoneQuarantine(props: { zones: string[]; onPick: (zone: string) => void }) {
  const [zone, setZone] = useState('');
  const chosen = props.zones.includes(zone) ? zone : (props.zones[0] ?? '');
  if (props.zones.length === 0) return null;
  return (
    <div className="toolbar">
      <LabelledSelect
        id="quarantine-zone"
        label="Zone to quarantine"
        value={chosen}
        options={props.zones}
        onChange={setZone}
      />
      <button type="button" className="danger" onClick={() => props.onPick(chosen)}>
        Quarantine zone
      </button>
    </div>
  );
}

function DeviceList(props: { devices: Device[]; reload: () => void }) {
  const { devices, reload } = props;
  const mayRevoke = useAllows(api.devices.revoke);
  const actions = useBulkActions();
  const [filter, setFilter] = useState<DeviceFilter>(noFilter);
  const [selected, setSelected] = useState<ReadonlySet<string>>(new Set());
  const [revoking, setRevoking] = useState<Device>();
  const [intent, setIntent] = useState<BulkIntent>();
  const [message, setMessage] = useState<string>();
  const shown = useMemo(() => devices.filter((d) => matches(d, filter)), [devices, filter]);
  const paging = usePaging(shown.length);
  const groups = useMemo(() => distinct(devices.map((d) => d.group)), [devices]);
  const zones = useMemo(() => distinct(devices.map((d) => d.zone)), [devices]);
  // Only what is still listed stays selected (a device may leave the list after an action).
  const known = useMemo(() => new Set(devices.map((d) => d.id)), [devices]);
  const chosen = [...selected].filter((id) => known.has(id));
  const select = useCallback((ids: string[], on: boolean) => {
    setSelected((prev) => {
      const next = new Set(prev);
      for (const id of ids) {
        if (on) next.add(id);
        else next.delete(id);
      }
      return next;
    });
  }, []);
  const closeRevoke = useCallback(() => setRevoking(undefined), []);
  const closeBulk = useCallback(() => setIntent(undefined), []);
  const revoked = useCallback(
    (text: string) => {
      setRevoking(undefined);
      setMessage(text);
      reload();
    },
    [reload],
  );
  const bulkDone = useCallback(
    (op: BulkOperation) => {
      setIntent(undefined);
      setSelected(new Set());
      setMessage(outcomeOf(op));
      reload();
    },
    [reload],
  );
  const set = (change: Partial<DeviceFilter>) => setFilter((f) => ({ ...f, ...change }));
  const zoneDevices = (zone: string) =>
    devices.filter((d) => d.zone === zone && !FINAL.includes(d.status)).map((d) => d.id);
  return (
    <>
      <div className="toolbar">
        <LabelledSelect
          id="device-state"
          label="State"
          value={filter.state}
          options={['all', ...deviceStates]}
          onChange={(state) => set({ state })}
        />
        <LabelledSelect
          id="device-group"
          label="Group"
          value={filter.group}
          options={[{ value: '', label: 'all' }, ...groups]}
          onChange={(group) => set({ group })}
        />
        <LabelledSelect
          id="device-zone"
          label="Zone"
          value={filter.zone}
          options={[{ value: '', label: 'all' }, ...zones]}
          onChange={(zone) => set({ zone })}
        />
        <label htmlFor="device-search">Id contains</label>
        <input
          id="device-search"
          value={filter.text}
          maxLength={64}
          onChange={(e) => set({ text: e.target.value })}
        />
      </div>
      <SavedFilterControls
        id="device-filters"
        listName="devices"
        schema={deviceFilter}
        current={filter}
        onApply={setFilter}
      />
      {actions.includes('quarantine') ? (
        <ZoneQuarantine
          zones={zones}
          onPick={(zone) => setIntent({ action: 'quarantine', zone, deviceIds: zoneDevices(zone) })}
        />
      ) : null}
      <p role="status" className="status-line">
        {message}
      </p>
      <BulkBar
        count={chosen.length}
        actions={actions}
        onAction={(action) => setIntent({ action, ids: chosen, deviceIds: chosen })}
        onClear={() => setSelected(new Set())}
      />
      <DeviceTable
        devices={paging.slice(shown)}
        mayRevoke={mayRevoke}
        selectable={actions.length > 0}
        selected={selected}
        onSelect={select}
        onRevoke={setRevoking}
      />
      <Pager id="devices-pager" label="Devices" paging={paging} />
      {revoking ? <RevokeDialog device={revoking} onDone={revoked} onCancel={closeRevoke} /> : null}
      {intent ? <BulkDialog intent={intent} onDone={bulkDone} onCancel={closeBulk} /> : null}
    </>
  );
}

/**
 * Every device the role sees, filtered (saved filters), page by page; revoke one after a confirmation, or select
 * several (or a zone) for a bulk action, which waits for a second person's approval when the baseline says so.
 */
export function Devices() {
  const devices = useLoad(allDevices, 30_000);
  return (
    <>
      <h1>Devices</h1>
      <Loaded what="devices" data={devices.data} error={devices.error}>
        {(d) => (
          <>
            {d.truncated ? (
              <p className="notice">Only the first {d.devices.length} devices are shown.</p>
            ) : null}
            <DeviceList devices={d.devices} reload={devices.reload} />
          </>
        )}
      </Loaded>
    </>
  );
}
