import { describe, expect, it } from 'vitest';
import type { AuditEntry } from './audit-entries.ts';
import { commandsFrom, rateSteps, rateText, spanText, type MetricWindows } from './device-activity.ts';

const w = (spanMs: number, messagesSent: number) => ({
  spanMs,
  messagesSent,
  bytesSent: messagesSent * 100,
  messagesReceived: 0,
  bytesReceived: 0,
});

describe('rate steps from nested windows', () => {
  it('turns nested counts into the rate of each stretch, oldest first, ending now', () => {
    const windows: MetricWindows = {
      '10s': w(10_000, 20),
      '1m': w(60_000, 70),
      '1h': w(3_600_000, 70 + 3_540),
    };
    expect(rateSteps(windows, 'messagesSent')).toEqual([
      { fromAgoMs: 3_600_000, toAgoMs: 60_000, perSecond: 1 },
      { fromAgoMs: 60_000, toAgoMs: 10_000, perSecond: 1 },
      { fromAgoMs: 10_000, toAgoMs: 0, perSecond: 2 },
    ]);
    expect(rateSteps(windows, 'bytesSent').at(-1)?.perSecond).toBe(200);
  });

  it('skips windows without history (no span, or no longer than the one inside)', () => {
    expect(rateSteps({ '10s': w(0, 0), '1m': w(0, 0) }, 'messagesSent')).toEqual([]);
    expect(rateSteps({ '10s': w(8_000, 8), '1m': w(8_000, 8), '5m': w(0, 0) }, 'messagesSent')).toEqual([
      { fromAgoMs: 8_000, toAgoMs: 0, perSecond: 1 },
    ]);
  });

  it('writes spans and rates short', () => {
    expect([spanText(3_600_000), spanText(900_000), spanText(10_000)]).toEqual(['1 h', '15 min', '10 s']);
    expect([rateText(1234.4), rateText(12.34), rateText(0.25), rateText(0)]).toEqual([
      '1,234/s',
      '12.3/s',
      '0.25/s',
      '0/s',
    ]);
  });
});

const entry = (seq: number, type: string, data: Record<string, unknown>, actor = 'user:ada'): AuditEntry => ({
  seq,
  ts: seq * 1000,
  type,
  actor,
  subject: 'device:pump-1',
  data,
  prevHash: '',
  hash: '',
});

describe('commands from the audit trail', () => {
  it('pairs each command with its answer or timeout, newest first', () => {
    const commands = commandsFrom([
      entry(5, 'device.command_timed_out', {
        commandId: 'c2',
        name: 'reboot',
        timeoutMs: 1000,
        online: false,
      }),
      entry(1, 'device.command_sent', { commandId: 'c1', name: 'ping', via: 'platform' }),
      entry(
        2,
        'device.command_result',
        { commandId: 'c1', name: 'ping', status: 'ok', message: 'pong' },
        'device:pump-1',
      ),
      entry(3, 'device.command_sent', { commandId: 'c2', name: 'reboot', via: 'platform' }),
      entry(4, 'device.command_sent', { commandId: 'c3', name: 'status', via: 'mqtt' }, 'app:fleet'),
      entry(6, 'device.command_result', { commandId: 'old', name: 'x', status: 'ok' }),
    ]);
    expect(commands.map((c) => [c.commandId, c.name, c.outcome, c.by])).toEqual([
      ['c3', 'status', 'waiting', 'app:fleet'],
      ['c2', 'reboot', 'timeout', 'user:ada'],
      ['c1', 'ping', 'ok', 'user:ada'],
    ]);
    expect(commands[1]?.message).toBe('the device was offline');
    expect(commands[2]?.message).toBe('pong');
  });

  it('reads an unknown answer status as failed', () => {
    const [c] = commandsFrom([
      entry(1, 'device.command_sent', { commandId: 'c1', name: 'ping' }),
      entry(2, 'device.command_result', { commandId: 'c1', status: 'exploded' }),
    ]);
    expect(c?.outcome).toBe('failed');
  });
});
