import { deviceIdOf, type EventBus } from '../events/index.ts';

export interface SentCommandsSettings {
  /** Command ids remembered at most (the oldest is forgotten first). */
  maxIds: number;
  /** How long a sent command's id is remembered. */
  windowMs: number;
  /** How long a result for an id not (yet) known waits for its `device.command_sent` (an app's command over MQTT is recorded while the device already has it). */
  graceMs: number;
  /** Results waiting so at most; beyond, an unknown id is refused at once. */
  maxPending: number;
}

export const defaultSentCommandsSettings: SentCommandsSettings = Object.freeze({
  maxIds: 10_000,
  windowMs: 15 * 60_000,
  graceMs: 2_000,
  maxPending: 1_000,
});

/**
 * The ids of the commands recently sent to each device, from `device.command_sent` (this process's, and the
 * other processes' through the audit-log tail; `via: platform` and `via: mqtt`), bounded in count and age. A
 * device's result is recorded only for one of those, once: a device cannot fill the audit log with results
 * for made-up ids.
 */
export function createSentCommands(
  events: Pick<EventBus, 'on'>,
  options: { now: () => number; settings?: Partial<SentCommandsSettings> },
) {
  const settings = { ...defaultSentCommandsSettings, ...options.settings };
  const { now } = options;
  /** Insertion order is sending order: the oldest first. */
  const recent = new Map<string, { deviceId: string; at: number }>();
  const pending = new Map<string, Set<() => void>>();
  let pendingCount = 0;

  const prune = () => {
    const oldest = now() - settings.windowMs;
    for (const [id, sent] of recent) {
      if (recent.size <= settings.maxIds && sent.at > oldest) break;
      recent.delete(id);
    }
  };

  events.on('device.command_sent', (entry) => {
    const deviceId = deviceIdOf(entry.subject);
    if (deviceId === undefined) return;
    const id = entry.data.commandId;
    recent.delete(id);
    recent.set(id, { deviceId, at: now() });
    prune();
    for (const wake of pending.get(id) ?? []) wake();
  });

  /** Whether `id` was sent to `deviceId` within the window; it is taken (one result per command). */
  function take(id: string, deviceId: string): boolean {
    prune();
    const sent = recent.get(id);
    if (!sent || sent.deviceId !== deviceId) return false;
    recent.delete(id);
    return true;
  }

  /** Waits up to `graceMs` for the id to be recorded (or not at all when too many results wait). */
  function arrival(id: string): Promise<void> {
    if (pendingCount >= settings.maxPending) return Promise.resolve();
    pendingCount += 1;
    return new Promise<void>((resolve) => {
      const waiters = pending.get(id) ?? new Set<() => void>();
      pending.set(id, waiters);
      const done = () => {
        clearTimeout(timer);
        waiters.delete(done);
        if (waiters.size === 0) pending.delete(id);
        pendingCount -= 1;
        resolve();
      };
      const timer = setTimeout(done, settings.graceMs);
      timer.unref();
      waiters.add(done);
    });
  }

  return {
    /** Takes the id when it was sent to that device recently, waiting `graceMs` for it when it is not known yet. */
    async claim(id: string, deviceId: string): Promise<boolean> {
      if (take(id, deviceId)) return true;
      if (recent.has(id)) return false;
      await arrival(id);
      return take(id, deviceId);
    },
    /** Ids remembered now (tests, metrics). */
    size: () => recent.size,
  };
}

export type SentCommands = ReturnType<typeof createSentCommands>;
