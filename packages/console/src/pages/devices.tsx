import { useCallback, useState } from 'react';
import { api } from '@bulwark/protocol';
import { call, messageOf } from '../api.ts';
import { Confirm } from '../components/confirm.tsx';
import { ErrorLine, LabelledSelect, SelectField } from '../components/fields.tsx';
import { Badge, Loaded } from '../components/status.tsx';
import { allDevices, deviceStates, stateTone, type Device, type DeviceState } from '../fleet.ts';
import { ago, dateTime } from '../format.ts';
import { Link } from '../router.tsx';
import { useAllows } from '../session.ts';
import { useLoad } from '../use-load.ts';

type Reason = (typeof api.devices.revocationReasons)[number];
const FINAL: readonly string[] = ['revoked', 'decommissioned'];

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

function DeviceRow(props: { device: Device; mayRevoke: boolean; onRevoke: (d: Device) => void }) {
  const d = props.device;
  return (
    <tr>
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

function DeviceTable(props: { devices: Device[]; mayRevoke: boolean; onRevoke: (d: Device) => void }) {
  if (props.devices.length === 0) return <p className="muted">No devices in this view.</p>;
  return (
    <table className="data">
      <caption className="visually-hidden">Devices</caption>
      <thead>
        <tr>
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
        {props.devices.map((d) => (
          <DeviceRow key={d.id} device={d} mayRevoke={props.mayRevoke} onRevoke={props.onRevoke} />
        ))}
      </tbody>
    </table>
  );
}

/** Every device the role sees, with its state, group and zone; revoke one after a confirmation. */
export function Devices() {
  const devices = useLoad(allDevices, 30_000);
  const mayRevoke = useAllows(api.devices.revoke);
  const [state, setState] = useState<DeviceState | 'all'>('all');
  const [revoking, setRevoking] = useState<Device>();
  const [message, setMessage] = useState<string>();
  const { reload } = devices;
  const cancel = useCallback(() => setRevoking(undefined), []);
  const done = useCallback(
    (text: string) => {
      setRevoking(undefined);
      setMessage(text);
      reload();
    },
    [reload],
  );
  return (
    <>
      <h1>Devices</h1>
      <div className="toolbar">
        <LabelledSelect
          id="device-state"
          label="State"
          value={state}
          options={['all', ...deviceStates]}
          onChange={setState}
        />
        <p role="status" className="status-line">
          {message}
        </p>
      </div>
      <Loaded what="devices" data={devices.data} error={devices.error}>
        {(d) => (
          <DeviceTable
            devices={state === 'all' ? d.devices : d.devices.filter((x) => x.state === state)}
            mayRevoke={mayRevoke}
            onRevoke={setRevoking}
          />
        )}
      </Loaded>
      {revoking ? <RevokeDialog device={revoking} onDone={done} onCancel={cancel} /> : null}
    </>
  );
}
