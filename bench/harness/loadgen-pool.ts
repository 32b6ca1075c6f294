import type { LoadgenApi } from '../load/index.ts';
import { spawnChild, type ChildHandle } from '../ipc/index.ts';

type Handle = ChildHandle<LoadgenApi>;
export type LoadgenHandle = Handle;

/** One load generator process. */
export function startLoadgen(name: string): Handle {
  return spawnChild<LoadgenApi>(name, new URL('../load/loadgen.ts', import.meta.url), {
    // Room for 10,000 TLS connections and their buffers.
    nodeFlags: ['--max-old-space-size=4096'],
  });
}

/** The load generator processes; a fleet is split over them in contiguous ranges of fixture indices. */
export class LoadgenPool {
  private constructor(readonly handles: Handle[]) {}

  static start(count: number): LoadgenPool {
    return new LoadgenPool(Array.from({ length: count }, (_, i) => startLoadgen(`loadgen-${i}`)));
  }

  get first(): Handle {
    return this.handles[0] as Handle;
  }

  /** Splits [from, to) into one contiguous range per load generator (empty ranges dropped). */
  ranges(from: number, to: number): { handle: Handle; from: number; to: number }[] {
    const n = this.handles.length;
    const size = Math.ceil((to - from) / n);
    return this.handles
      .map((handle, i) => ({ handle, from: from + i * size, to: Math.min(to, from + (i + 1) * size) }))
      .filter((r) => r.to > r.from);
  }

  /** Calls `method` on the load generators that hold part of the fleet, concurrently. */
  async each<K extends keyof LoadgenApi>(
    parts: { handle: Handle; from: number; to: number }[],
    method: K,
    params: (part: { from: number; to: number }, index: number) => Parameters<LoadgenApi[K]>[0],
    timeoutMs: number,
  ): Promise<Awaited<ReturnType<LoadgenApi[K]>>[]> {
    return Promise.all(parts.map((part, i) => part.handle.call(method, params(part, i), timeoutMs)));
  }

  async stop(): Promise<void> {
    await Promise.all(this.handles.map((h) => h.kill(3000)));
  }
}
