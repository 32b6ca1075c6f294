import { describe, expect, it, vi } from 'vitest';
import { COMMAND_MAX_BYTES, commandTopics } from '@bulwark/protocol';
import { createIngressRouter, splitSuffix, wildcardLevelAt } from './ingress.ts';

describe('ingress routes with a + level (command results)', () => {
  const results = { before: 'commands/', after: '/result' };

  it('splits a suffix around its + level, and refuses # or a second +', () => {
    expect(splitSuffix('metrics')).toEqual({ suffix: 'metrics' });
    expect(splitSuffix('commands/+/result')).toEqual({ wildcard: results });
    expect(splitSuffix('+/x')).toEqual({ wildcard: { before: '', after: '/x' } });
    expect(splitSuffix('x/+')).toEqual({ wildcard: { before: 'x/', after: '' } });
    expect(() => splitSuffix('a/+/+')).toThrow(/at most one/);
    expect(() => splitSuffix('a/#')).toThrow(/no #/);
    expect(() => splitSuffix('a/b+')).toThrow(/at most one/);
  });

  it('matches exactly one non-empty level, of this device only', () => {
    const at = (topic: string, id = 'd1') => wildcardLevelAt(topic, id, results);
    expect(at('devices/d1/commands/ping/result')).toBe('devices/d1/commands/'.length);
    expect(at('devices/d1/commands/a.b-c_d/result')).toBeGreaterThan(0);
    expect(at('devices/d1/commands//result')).toBe(-1);
    expect(at('devices/d1/commands/a/b/result')).toBe(-1);
    expect(at('devices/d1/commands/ping')).toBe(-1);
    expect(at('devices/d1/commands/ping/result/x')).toBe(-1);
    expect(at('devices/d2/commands/ping/result')).toBe(-1);
    expect(at('devices/d11/commands/ping/result')).toBe(-1);
    expect(at('devices/d1/command/ping/result')).toBe(-1);
    expect(at('devices/d1xcommands/ping/result')).toBe(-1);
    expect(at('other/d1/commands/ping/result')).toBe(-1);
  });

  it('gives the handler the typed result and the command name; a bad result goes to reject', () => {
    const accept = vi.fn();
    const reject = vi.fn();
    const onError = vi.fn();
    const router = createIngressRouter({ handlers: { commandResult: { accept, reject } }, onError });
    const topic = commandTopics.result('pump-1', 'ping');
    router.dispatch('pump-1', topic, JSON.stringify({ id: 'c1', status: 'ok', result: { pong: 1 } }));
    expect(accept).toHaveBeenCalledWith('pump-1', { id: 'c1', status: 'ok', result: { pong: 1 } }, 'ping');

    router.dispatch('pump-1', topic, JSON.stringify({ id: 'c2', status: 'maybe' }));
    router.dispatch('pump-1', topic, 'not json');
    router.dispatch('pump-1', topic, Buffer.alloc(COMMAND_MAX_BYTES + 1, 0x20));
    expect(reject.mock.calls.map((c) => c[1] as string)).toEqual([
      expect.stringMatching(/^status: /),
      'report is not JSON',
      `report larger than ${COMMAND_MAX_BYTES} bytes`,
    ]);
    // Another device's topic, or a request topic, is not this route.
    router.dispatch('pump-1', commandTopics.result('pump-2', 'ping'), '{}');
    router.dispatch('pump-1', commandTopics.request('pump-1', 'ping'), '{}');
    expect(accept).toHaveBeenCalledTimes(1);
    expect(reject).toHaveBeenCalledTimes(3);
    expect(onError).not.toHaveBeenCalled();
  });

  it('fixed routes get no level', () => {
    const accept = vi.fn();
    const router = createIngressRouter({ handlers: { heartbeat: { accept } }, onError: vi.fn() });
    router.dispatch('d1', 'devices/d1/heartbeat', JSON.stringify({ ts: 1, seq: 1, uptimeS: 2 }));
    expect(accept).toHaveBeenCalledWith('d1', { ts: 1, seq: 1, uptimeS: 2 }, undefined);
  });
});
