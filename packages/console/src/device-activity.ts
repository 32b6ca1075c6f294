import { z } from 'zod';
import type { AuditEntry } from './audit-entries.ts';

/**
 * What the device page derives from the API's answers: message and byte rates over time from the rolling windows
 * of GET /api/v1/devices/:id/metrics, and the device's recent commands from its audit trail.
 */

/** One rolling window of the metrics answer: its real span and the counts within it. */
const windowFigures = z.object({
  spanMs: z.number(),
  messagesSent: z.number(),
  bytesSent: z.number(),
  messagesReceived: z.number(),
  bytesReceived: z.number(),
});
/** The windows the monitor reports (`10s`, `1m`, `5m`, `15m`, `1h`), by name; absent before any traffic. */
export const metricWindows = z.record(z.string(), windowFigures);
export type MetricWindows = z.output<typeof metricWindows>;

export const metricNames = ['messagesSent', 'messagesReceived', 'bytesSent', 'bytesReceived'] as const;
export type MetricName = (typeof metricNames)[number];
export const metricLabels: Record<MetricName, string> = {
  messagesSent: 'Messages sent',
  messagesReceived: 'Messages received',
  bytesSent: 'Bytes sent',
  bytesReceived: 'Bytes received',
};

/** A stretch of time (ms before now, older edge first) and the metric's rate within it, per second. */
export interface RateStep {
  fromAgoMs: number;
  toAgoMs: number;
  perSecond: number;
}

/**
 * The windows are nested (each counts from its start until now), so the difference of two neighbours is what
 * happened between their starts: rates per stretch of time, oldest first, ending now. A window no longer than the
 * one inside it (no history yet) adds no stretch.
 */
export function rateSteps(windows: MetricWindows, metric: MetricName): RateStep[] {
  const nested = Object.values(windows)
    .filter((w) => w.spanMs > 0)
    .sort((a, b) => a.spanMs - b.spanMs);
  const steps: RateStep[] = [];
  let inner = { spanMs: 0, count: 0 };
  for (const w of nested) {
    const span = w.spanMs - inner.spanMs;
    if (span <= 0) continue;
    const count = Math.max(0, w[metric] - inner.count);
    steps.push({ fromAgoMs: w.spanMs, toAgoMs: inner.spanMs, perSecond: (count * 1000) / span });
    inner = { spanMs: w.spanMs, count: w[metric] };
  }
  return steps.reverse();
}

/** "1 h", "15 min", "10 s": a stretch of time, short. */
export function spanText(ms: number): string {
  if (ms >= 3_600_000) return `${Math.round(ms / 360_000) / 10} h`;
  if (ms >= 60_000) return `${Math.round(ms / 6_000) / 10} min`;
  return `${Math.round(ms / 1000)} s`;
}

/** A rate with the precision it deserves: 1,234/s, 12.3/s, 0.25/s. */
export function rateText(perSecond: number): string {
  if (perSecond >= 100) return `${Math.round(perSecond).toLocaleString('en')}/s`;
  if (perSecond >= 10) return `${perSecond.toFixed(1)}/s`;
  return `${Number(perSecond.toFixed(2))}/s`;
}

export type CommandOutcome = 'waiting' | 'ok' | 'failed' | 'refused' | 'timeout';

/** A command sent to the device, as its audit trail tells it: who sent what, and how it ended. */
export interface SentCommand {
  commandId: string;
  name: string;
  sentAt: number;
  by: string;
  via: string;
  outcome: CommandOutcome;
  message: string | undefined;
}

const text = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const answers = ['ok', 'failed', 'refused'] as const;

/**
 * The device's commands from its audit entries (`device.command_sent`, `_result`, `_timed_out`, any order), newest
 * first; an answer without its sending in the entries read is left out (it was sent before them).
 */
export function commandsFrom(entries: readonly AuditEntry[]): SentCommand[] {
  const byId = new Map<string, SentCommand>();
  const sorted = [...entries].sort((a, b) => a.seq - b.seq);
  for (const e of sorted) {
    const id = text(e.data.commandId);
    if (id === undefined) continue;
    if (e.type === 'device.command_sent') {
      byId.set(id, {
        commandId: id,
        name: text(e.data.name) ?? '?',
        sentAt: e.ts,
        by: e.actor,
        via: text(e.data.via) ?? 'platform',
        outcome: 'waiting',
        message: undefined,
      });
      continue;
    }
    const sent = byId.get(id);
    if (!sent) continue;
    if (e.type === 'device.command_result') {
      sent.outcome = answers.find((a) => a === e.data.status) ?? 'failed';
      sent.message = text(e.data.message);
    } else if (e.type === 'device.command_timed_out') {
      sent.outcome = 'timeout';
      sent.message = e.data.online === true ? 'the device was online' : 'the device was offline';
    }
  }
  return [...byId.values()].sort((a, b) => b.sentAt - a.sentAt);
}
