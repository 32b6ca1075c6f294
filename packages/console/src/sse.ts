import type { z } from 'zod';
import type { Contract } from '@bulwark/protocol';
import { ApiError, send, type CallInput } from './api.ts';

/** One Server-Sent Event: its `id` (when it has one), its `event` name and its `data` lines joined. */
export interface SseEvent {
  id: string | undefined;
  event: string;
  data: string;
}

/**
 * The complete events in `text` (WHATWG HTML, "Server-sent events", parsing an event stream) and what follows
 * the last of them, to be read again with the next chunk. Comments (`: keep-alive`) are skipped.
 */
export function parseSse(text: string): { events: SseEvent[]; rest: string } {
  // A CR at the very end may be the first half of a CRLF split across chunks: left for the next read.
  const cut = text.endsWith('\r') ? text.length - 1 : text.length;
  const normal = text.slice(0, cut).replace(/\r\n?/g, '\n');
  const blocks = normal.split('\n\n');
  const rest = (blocks.pop() ?? '') + text.slice(cut);
  const events: SseEvent[] = [];
  for (const block of blocks) {
    const event: SseEvent = { id: undefined, event: 'message', data: '' };
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line === '' || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'data') data.push(value);
      else if (field === 'event') event.event = value;
      else if (field === 'id' && !value.includes('\0')) event.id = value;
    }
    if (data.length > 0 || event.id !== undefined) events.push({ ...event, data: data.join('\n') });
  }
  return { events, rest };
}

export type FollowState = 'connecting' | 'live' | 'retrying' | 'stopped';

export interface FollowOptions<C extends Contract, S extends z.ZodType> extends Pick<CallInput<C>, 'query'> {
  /** What each event's data is (JSON): an event that does not match is skipped. */
  schema: S;
  /** Resume after this event (the newest the view already shows): the server sends what came since first. */
  lastEventId?: string | undefined;
  onEvent: (value: z.output<S>) => void;
  onState?: (state: FollowState, error?: unknown) => void;
  /** How long to wait before connecting again after the stream ended or failed. */
  retryMs?: number;
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Reads one response's event stream to its end, handing each event on. */
async function readEvents(res: Response, onEvent: (event: SseEvent) => void): Promise<void> {
  if (!res.body) return;
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    const { events, rest } = parseSse(buffered + value);
    buffered = rest;
    for (const event of events) onEvent(event);
  }
}

/**
 * Follows a Server-Sent Events operation (`text/event-stream`) through fetch, reconnecting after the last event
 * seen until stopped; returns the stop function. Fetch rather than EventSource: the audit stream names each event
 * by its type (EventSource would need one listener per type), and the first connection must already resume after
 * the newest entry shown (EventSource cannot send a first Last-Event-ID). `connect-src 'self'` allows both.
 */
export function follow<C extends Contract, S extends z.ZodType>(
  c: C,
  options: FollowOptions<C, S>,
): () => void {
  const controller = new AbortController();
  const { signal } = controller;
  let lastEventId = options.lastEventId;
  const handle = (event: SseEvent) => {
    if (event.id !== undefined) lastEventId = event.id;
    if (event.data === '') return;
    let json: unknown;
    try {
      json = JSON.parse(event.data);
    } catch {
      return; // not JSON: nothing the contract describes
    }
    const parsed = options.schema.safeParse(json);
    if (parsed.success) options.onEvent(parsed.data);
  };
  const run = async () => {
    while (!signal.aborted) {
      let failure: unknown;
      try {
        options.onState?.('connecting');
        const res = await send(c, {
          query: options.query,
          accept: 'text/event-stream',
          headers: lastEventId === undefined ? {} : { 'last-event-id': lastEventId },
          signal,
        });
        options.onState?.('live');
        await readEvents(res, handle);
      } catch (error) {
        if (signal.aborted) return;
        // Not signed in or not allowed: trying again would only be refused again.
        if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
          options.onState?.('stopped', error);
          return;
        }
        failure = error;
      }
      if (signal.aborted) return;
      options.onState?.('retrying', failure);
      await pause(options.retryMs ?? 3000, signal);
    }
  };
  void run();
  return () => controller.abort();
}
