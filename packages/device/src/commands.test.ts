import { describe, expect, it } from 'vitest';
import {
  commandResultSchema,
  commandTopics,
  type CommandRequest,
  type CommandResult,
} from '@bulwark/protocol';
import {
  CommandRefusal,
  createCommandRouter,
  type CommandHandler,
  type CommandRouterOptions,
} from './commands.ts';

const NOW = 1_750_000_000_000;

interface Sent {
  topic: string;
  result: CommandResult;
}

function setup(handlers: Record<string, CommandHandler> = {}, options: Partial<CommandRouterOptions> = {}) {
  const sent: Sent[] = [];
  const errors: string[] = [];
  let now = NOW;
  const router = createCommandRouter({
    deviceId: 'pump-17',
    handlers,
    now: () => now,
    publish: (topic, payload) => {
      sent.push({ topic, result: commandResultSchema.parse(JSON.parse(payload)) });
      return Promise.resolve();
    },
    onError: (err) => errors.push(err.message),
    ...options,
  });
  return { router, sent, errors, advance: (ms: number) => (now += ms) };
}

const request = (overrides: Partial<CommandRequest> = {}): string =>
  JSON.stringify({
    id: 'c-1',
    issuedBy: 'user:ana',
    issuedAt: NOW - 10,
    expiresAt: NOW + 30_000,
    ...overrides,
  });

const topic = (name: string) => commandTopics.request('pump-17', name);

describe('command router', () => {
  it('runs the handler and publishes ok with its value on the result topic', async () => {
    const seen: unknown[] = [];
    const { router, sent } = setup({
      'set-speed': (req, context) => {
        seen.push([req.data, context.name, context.deviceId]);
        return { rpm: 1200 };
      },
    });
    const result = await router.handle(topic('set-speed'), request({ data: { rpm: 1200 } }));
    expect(result).toEqual({ id: 'c-1', status: 'ok', result: { rpm: 1200 } });
    expect(sent).toEqual([{ topic: 'devices/pump-17/commands/set-speed/result', result }]);
    expect(seen).toEqual([[{ rpm: 1200 }, 'set-speed', 'pump-17']]);
  });

  it('answers ok without a result when the handler returns nothing', async () => {
    const { router } = setup({ noop: () => Promise.resolve(undefined) });
    expect(await router.handle(topic('noop'), request())).toEqual({ id: 'c-1', status: 'ok' });
  });

  it('answers failed with the message of what the handler threw', async () => {
    const { router, sent } = setup({
      jam: () => {
        throw new Error('valve stuck');
      },
    });
    expect(await router.handle(topic('jam'), request())).toEqual({
      id: 'c-1',
      status: 'failed',
      message: 'valve stuck',
    });
    expect(sent).toHaveLength(1);
  });

  it('answers refused when the handler throws a CommandRefusal', async () => {
    const { router } = setup({
      reboot: () => {
        throw new CommandRefusal('reboot not configured on this device');
      },
    });
    expect(await router.handle(topic('reboot'), request())).toMatchObject({
      status: 'refused',
      message: 'reboot not configured on this device',
    });
  });

  it('refuses an unknown command, naming the known ones', async () => {
    const { router, sent } = setup({ ping: () => 'pong', 'report-state': () => ({}) });
    expect(await router.handle(topic('self-destruct'), request())).toEqual({
      id: 'c-1',
      status: 'refused',
      message: 'unknown command self-destruct (known: ping, report-state)',
    });
    expect(sent[0]?.topic).toBe('devices/pump-17/commands/self-destruct/result');
  });

  it('refuses an expired command without running it; no expiry means never expired', async () => {
    let runs = 0;
    const { router } = setup({ ping: () => ++runs });
    expect(await router.handle(topic('ping'), request({ expiresAt: NOW - 1 }))).toEqual({
      id: 'c-1',
      status: 'refused',
      message: 'expired',
    });
    expect(runs).toBe(0);
    expect(await router.handle(topic('ping'), request({ id: 'c-2', expiresAt: null }))).toMatchObject({
      status: 'ok',
    });
    expect(runs).toBe(1);
  });

  it('refuses a malformed request when it has an id, and ignores one without (with a log line)', async () => {
    const { router, sent, errors } = setup({ ping: () => 'pong' });
    expect(
      await router.handle(topic('ping'), JSON.stringify({ id: 'c-9', issuedAt: 'yesterday' })),
    ).toMatchObject({
      id: 'c-9',
      status: 'refused',
      message: expect.stringMatching(/^malformed request: /) as unknown,
    });
    expect(await router.handle(topic('ping'), 'not json')).toBeUndefined();
    expect(await router.handle(topic('ping'), JSON.stringify({ issuedBy: 'x' }))).toBeUndefined();
    expect(sent).toHaveLength(1);
    expect(errors).toEqual([
      'ignored a command on ping: not JSON',
      expect.stringMatching(/^ignored a command on ping: no command id/),
    ]);
  });

  it('ignores topics that are not a command of this device', async () => {
    const { router, sent } = setup({ ping: () => 'pong' });
    expect(await router.handle(commandTopics.request('pump-18', 'ping'), request())).toBeUndefined();
    expect(await router.handle('devices/pump-17/commands/ping/result', request())).toBeUndefined();
    expect(await router.handle('devices/pump-17/heartbeat', request())).toBeUndefined();
    expect(sent).toEqual([]);
  });

  it('never runs a retained command: ignored with a log line, nothing published', async () => {
    const ran: string[] = [];
    const { router, sent, errors } = setup({ reboot: (req) => void ran.push(req.id) });
    expect(await router.handle(topic('reboot'), request(), { retain: true })).toBeUndefined();
    expect(ran).toEqual([]);
    expect(sent).toEqual([]);
    expect(errors).toEqual([
      'ignored a retained message on devices/pump-17/commands/reboot: commands are never run from retained messages',
    ]);
    // Not a command topic of this device: no line. Not retained: run as usual.
    expect(await router.handle('devices/other/commands/reboot', request(), { retain: true })).toBeUndefined();
    expect(errors).toHaveLength(1);
    expect(await router.handle(topic('reboot'), request(), { retain: false })).toMatchObject({
      status: 'ok',
    });
    expect(ran).toEqual(['c-1']);
  });

  it('runs a command id once: a redelivery re-sends the earlier result', async () => {
    let runs = 0;
    const { router, sent, advance } = setup({ count: () => ++runs }, { rememberMs: 60_000 });
    const first = await router.handle(topic('count'), request());
    const again = await router.handle(topic('count'), request());
    expect(again).toEqual(first);
    expect(runs).toBe(1);
    expect(sent.map((s) => s.result)).toEqual([first, first]);

    // Past the memory window the id is forgotten (the server would have given up long before).
    advance(61_000);
    await router.handle(topic('count'), request({ expiresAt: null }));
    expect(runs).toBe(2);
  });

  it('does not run a redelivered command that is still running', async () => {
    let release: () => void = () => undefined;
    let runs = 0;
    const { router, sent } = setup({
      slow: () => {
        runs++;
        return new Promise((resolve) => (release = () => resolve('done')));
      },
    });
    const first = router.handle(topic('slow'), request());
    expect(await router.handle(topic('slow'), request())).toBeUndefined();
    release();
    expect(await first).toMatchObject({ status: 'ok', result: 'done' });
    expect(runs).toBe(1);
    expect(sent).toHaveLength(1);
  });

  it('fails a result that is not JSON-serializable or too large', async () => {
    const { router } = setup({ big: () => 'x'.repeat(20_000), bigint: () => 1n });
    expect(await router.handle(topic('big'), request())).toMatchObject({
      status: 'failed',
      message: expect.stringMatching(/^result too large/) as unknown,
    });
    expect(await router.handle(topic('bigint'), request({ id: 'c-2' }))).toMatchObject({
      status: 'failed',
      message: expect.stringMatching(/^result is not JSON/) as unknown,
    });
  });

  it('refuses beyond maxRunning commands at once', async () => {
    let release: () => void = () => undefined;
    const { router } = setup(
      { slow: () => new Promise((resolve) => (release = () => resolve(1))) },
      { maxRunning: 1 },
    );
    const first = router.handle(topic('slow'), request());
    expect(await router.handle(topic('slow'), request({ id: 'c-2' }))).toMatchObject({
      status: 'refused',
      message: 'busy: 1 commands running',
    });
    release();
    expect(await first).toMatchObject({ status: 'ok' });
  });

  it('runs afterResult actions once the result is published, and not when the handler failed', async () => {
    const order: string[] = [];
    const { router } = setup(
      {
        reboot: (_req, context) => {
          context.afterResult(() => void order.push('rebooted'));
          return { rebooting: true };
        },
        broken: (_req, context) => {
          context.afterResult(() => void order.push('must not run'));
          throw new Error('no');
        },
      },
      {
        publish: (t) => {
          order.push(`published ${t}`);
          return Promise.resolve();
        },
      },
    );
    await router.handle(topic('reboot'), request());
    await router.handle(topic('broken'), request({ id: 'c-2' }));
    expect(order).toEqual([
      'published devices/pump-17/commands/reboot/result',
      'rebooted',
      'published devices/pump-17/commands/broken/result',
    ]);
  });

  it('registers and removes handlers, validating names', async () => {
    const { router } = setup();
    const remove = router.register('blink', () => 'on');
    expect(router.names()).toEqual(['blink']);
    expect(await router.handle(topic('blink'), request())).toMatchObject({ status: 'ok', result: 'on' });
    remove();
    expect(router.names()).toEqual([]);
    expect(() => router.register('result', () => 1)).toThrow(/reserved/);
    expect(() => router.register('a/b', () => 1)).toThrow(/command name must be/);
  });

  it('aborts the signal and ignores new commands once closed', async () => {
    let signal: AbortSignal | undefined;
    const { router } = setup({ wait: (_req, context) => void (signal = context.signal) });
    await router.handle(topic('wait'), request());
    router.close();
    expect(signal?.aborted).toBe(true);
    expect(await router.handle(topic('wait'), request({ id: 'c-2' }))).toBeUndefined();
  });
});
