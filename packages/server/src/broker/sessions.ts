import { actorOf, subjectOf } from '../events/index.ts';
import type { Firewall } from '../firewall/index.ts';
import type { Emit } from './emit.ts';
import type { BrokerSession, IdentifiedDevice } from './stages.ts';

/** Why a session is dropped, and what caused it (`audit:<seq>`, `policy change`, `firewall`, …). */
export interface DropCause {
  reason: string;
  trigger: string;
  /** Drop only the session of this certificate (a certificate revoked while the device has another). */
  serial?: string | undefined;
}

export interface SessionRegistryDeps<C extends object> {
  firewall: Pick<Firewall, 'forgetDevice' | 'recordTakeover' | 'limits'>;
  emit: Emit;
  /** Ends the client's connection (the transport's own close). */
  close(client: C): void;
}

/**
 * Live sessions, by connection and by device (one per device [MQTT-3.1.4-2]), and when each device or
 * certificate was last blocked: a connection whose check started before a revocation is refused, closing
 * the window between the store read in identify and the session being registered.
 */
export function createSessionRegistry<C extends object>(deps: SessionRegistryDeps<C>) {
  const { firewall, emit } = deps;
  const sessions = new WeakMap<C, BrokerSession>();
  const byDevice = new Map<string, C>();
  // When each device, and each certificate, was last revoked or disabled.
  const blockedDevices = new Map<string, number>();
  const blockedSerials = new Map<string, number>();

  function block(blocked: Map<string, number>, key: string): void {
    const t = Date.now();
    blocked.set(key, t);
    if (blocked.size > 10_000) for (const [id, at] of blocked) if (t - at > 60_000) blocked.delete(id);
  }

  /** No further publish, subscribe or delivery, even before the socket closes. */
  function forget(client: C, session: BrokerSession): void {
    session.active = false;
    sessions.delete(client);
    if (byDevice.get(session.deviceId) === client) {
      byDevice.delete(session.deviceId);
      // Its quota state goes with its last session (reconnect churn is bounded by the flapping detector).
      firewall.forgetDevice(session.deviceId);
    }
  }

  function drop(deviceId: string, cause: DropCause): void {
    if (cause.serial === undefined) block(blockedDevices, deviceId);
    else block(blockedSerials, cause.serial);
    const client = byDevice.get(deviceId);
    const session = client && sessions.get(client);
    if (!client || !session || (cause.serial !== undefined && session.serial !== cause.serial)) return;
    byDevice.delete(deviceId);
    session.active = false;
    sessions.delete(client);
    deps.close(client);
    emit({
      type: 'mqtt.session_dropped',
      actor: 'system',
      subject: subjectOf.device(deviceId),
      data: { reason: cause.reason, trigger: cause.trigger },
    });
  }

  /**
   * A new session of a device whose session is still open takes it over ([MQTT-3.1.4-2]). Done again and
   * again, that is two agents with one identity: the device is banned for a while (stored, listed, an alert)
   * and both sessions end. Returns whether this connection is refused for it.
   */
  function takenOver(client: C, device: IdentifiedDevice, remoteAddress: string): boolean {
    const { deviceId } = device;
    const previous = byDevice.get(deviceId);
    const previousSession = previous && previous !== client ? sessions.get(previous) : undefined;
    if (!previousSession) return false;
    const conflict = firewall.recordTakeover(deviceId, remoteAddress);
    if (!conflict) return false;
    emit({
      type: 'mqtt.identity_conflict',
      actor: actorOf.device(deviceId),
      subject: subjectOf.device(deviceId),
      data: {
        remoteAddresses: [...new Set([previousSession.remoteAddress, ...conflict.addresses])],
        takeovers: conflict.takeovers,
        windowMs: firewall.limits.takeoverWindowMs,
        certSerial: device.serial,
      },
    });
    drop(deviceId, { reason: conflict.ban.reason, trigger: 'firewall' });
    return true;
  }

  return {
    get: (client: C): BrokerSession | undefined => sessions.get(client),
    has: (client: C): boolean => sessions.has(client),
    clientOf: (deviceId: string): C | undefined => byDevice.get(deviceId),
    sessionOf(deviceId: string): BrokerSession | undefined {
      const client = byDevice.get(deviceId);
      return client && sessions.get(client);
    },
    get size() {
      return byDevice.size;
    },
    deviceIds: (): string[] => [...byDevice.keys()],
    /** Sessions by device, as a copy (safe to drop while iterating). */
    list(): [string, BrokerSession][] {
      const out: [string, BrokerSession][] = [];
      for (const [id, client] of byDevice) {
        const s = sessions.get(client);
        if (s) out.push([id, s]);
      }
      return out;
    },
    clients: (): C[] => [...byDevice.values()],
    /** Registered before anything is awaited, so a revocation from then on finds and drops it. */
    register(client: C, session: BrokerSession): void {
      sessions.set(client, session);
      byDevice.set(session.deviceId, client);
    },
    /** Was this device or certificate revoked or disabled at or after `since`? */
    blockedSince(device: IdentifiedDevice, since: number): boolean {
      const at = Math.max(blockedDevices.get(device.deviceId) ?? 0, blockedSerials.get(device.serial) ?? 0);
      return at >= since;
    },
    drop,
    takenOver,
    /** The session ends now, like a drop, with its own event (a packet over the size limit). */
    end(client: C, reason: string): BrokerSession | undefined {
      const session = sessions.get(client);
      if (!session) return undefined;
      forget(client, session);
      emit({
        type: 'mqtt.session_dropped',
        actor: 'system',
        subject: subjectOf.device(session.deviceId),
        data: { reason, trigger: 'packet_size' },
      });
      return session;
    },
    /** The client went away: its session no longer counts; the session object stays for late deliveries. */
    disconnected(client: C): void {
      const session = sessions.get(client);
      if (!session) return;
      if (byDevice.get(session.deviceId) === client) {
        byDevice.delete(session.deviceId);
        firewall.forgetDevice(session.deviceId);
      }
      emit({
        type: 'mqtt.disconnected',
        actor: actorOf.device(session.deviceId),
        subject: subjectOf.device(session.deviceId),
        data: { remoteAddress: session.remoteAddress, reason: 'disconnected' },
      });
    },
  };
}

export type SessionRegistry<C extends object> = ReturnType<typeof createSessionRegistry<C>>;
