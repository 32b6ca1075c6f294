import { afterEach, describe, expect, it, vi } from 'vitest';
import { api } from '@bulwark/protocol';
import { onSessionEnded } from './api.ts';
import { follow, parseSse, type FollowState } from './sse.ts';

const entry = (seq: number, type = 'device.added') => ({
  seq,
  ts: 1_700_000_000_000 + seq,
  type,
  actor: 'user:ada',
  subject: `device:pump-${seq}`,
  data: {},
  prevHash: 'a'.repeat(64),
  hash: 'b'.repeat(64),
});

const frame = (e: ReturnType<typeof entry>) =>
  `id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`;

/** A response whose body arrives in these chunks, then stays open until the request is aborted. */
function streaming(chunks: string[], signal: AbortSignal | null | undefined): Response {
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const c of chunks) controller.enqueue(new TextEncoder().encode(c));
      signal?.addEventListener('abort', () => controller.error(new DOMException('aborted', 'AbortError')));
    },
  });
  return new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } });
}

afterEach(() => vi.unstubAllGlobals());

describe('Server-Sent Events', () => {
  it('parses complete events, skips comments, keeps an unfinished one for the next chunk', () => {
    const { events, rest } = parseSse(
      ': connected\n\nid: 7\nevent: device.added\ndata: {"a":\ndata: 1}\n\nid: 8\nda',
    );
    expect(events).toEqual([{ id: '7', event: 'device.added', data: '{"a":\n1}' }]);
    expect(rest).toBe('id: 8\nda');
    expect(parseSse(`${rest}ta: x\n\n`).events).toEqual([{ id: '8', event: 'message', data: 'x' }]);
    // CRLF line ends, one split across two chunks.
    const split = parseSse('data: y\r\n\r');
    expect(split.events).toEqual([]);
    expect(parseSse(`${split.rest}\ndata: z\r\n\r\n`).events).toEqual([
      { id: undefined, event: 'message', data: 'y' },
      { id: undefined, event: 'message', data: 'z' },
    ]);
  });

  it('follows a stream from the last entry shown, hands on the entries its schema reads, resumes after the last id', async () => {
    const requests: { url: string; headers: Headers }[] = [];
    let connection = 0;
    vi.stubGlobal('fetch', (url: string, init: RequestInit) => {
      requests.push({ url, headers: new Headers(init.headers) });
      connection++;
      const chunks =
        connection === 1
          ? [
              ': connected\n\n',
              frame(entry(11)).slice(0, 20),
              frame(entry(11)).slice(20),
              'data: not json\n\n',
            ]
          : [frame(entry(12, 'device.revoked'))];
      // The first connection ends (the server went away); the second stays open.
      if (connection === 1) {
        const body = new ReadableStream<Uint8Array>({
          start(controller) {
            for (const c of chunks) controller.enqueue(new TextEncoder().encode(c));
            controller.close();
          },
        });
        return Promise.resolve(new Response(body, { status: 200 }));
      }
      return Promise.resolve(streaming(chunks, init.signal));
    });
    const seen: number[] = [];
    const states: FollowState[] = [];
    const stop = follow(api.audit.events, {
      schema: api.audit.auditEntry,
      lastEventId: '10',
      retryMs: 5,
      onEvent: (e) => seen.push(e.seq),
      onState: (s) => states.push(s),
    });
    await vi.waitFor(() => expect(seen).toEqual([11, 12]));
    stop();
    expect(requests.map((r) => [r.url, r.headers.get('accept'), r.headers.get('last-event-id')])).toEqual([
      ['/api/v1/events', 'text/event-stream', '10'],
      ['/api/v1/events', 'text/event-stream', '11'],
    ]);
    expect(states).toEqual(['connecting', 'live', 'retrying', 'connecting', 'live']);
  });

  it('stops when the session ended (401) and tells the console', async () => {
    vi.stubGlobal('fetch', () =>
      Promise.resolve(
        new Response(JSON.stringify({ status: 401, code: 'unauthenticated', detail: 'sign in' }), {
          status: 401,
          headers: { 'content-type': 'application/problem+json' },
        }),
      ),
    );
    const ended = vi.fn();
    const unsubscribe = onSessionEnded(ended);
    const states: FollowState[] = [];
    const stop = follow(api.audit.events, {
      schema: api.audit.auditEntry,
      onEvent: () => undefined,
      onState: (s) => states.push(s),
    });
    await vi.waitFor(() => expect(states).toContain('stopped'));
    stop();
    unsubscribe();
    expect(ended).toHaveBeenCalledTimes(1);
    expect(states).toEqual(['connecting', 'stopped']);
  });
});
