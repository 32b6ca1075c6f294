import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Linux /proc readings for any process (Node or not), so every broker is measured the same way. */

let clockTicks: number | undefined;
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** Resident set size in bytes, or undefined when the process is gone (or this is not Linux). */
export function readRss(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** User + system CPU seconds the process has used so far. */
export function readCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond();
  } catch {
    return undefined;
  }
}

/**
 * Samples a process's CPU time and RSS every `intervalMs`, so a measurement window reported by a load
 * generator (wall-clock start and end) can be turned into "share of one core" and "peak RSS" afterwards.
 */
export class ProcessSampler {
  private readonly samples: { at: number; cpu: number; rss: number }[] = [];
  private readonly timer: NodeJS.Timeout;
  private static readonly MAX_SAMPLES = 20_000;

  constructor(
    readonly pid: number,
    intervalMs = 100,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  private sample(): void {
    const cpu = readCpuSeconds(this.pid);
    const rss = readRss(this.pid);
    if (cpu === undefined || rss === undefined) return;
    if (this.samples.length >= ProcessSampler.MAX_SAMPLES) this.samples.splice(0, 1000);
    this.samples.push({ at: Date.now(), cpu, rss });
  }

  /** Average share of one core used between two wall-clock times (ms since epoch). */
  cpuShare(from: number, to: number): number | undefined {
    this.sample();
    const inside = this.samples.filter((s) => s.at >= from && s.at <= to);
    const first = inside[0];
    const last = inside[inside.length - 1];
    if (!first || !last || last.at - first.at < 50) return undefined;
    return (last.cpu - first.cpu) / ((last.at - first.at) / 1000);
  }

  peakRss(from: number, to: number): number | undefined {
    let peak: number | undefined;
    for (const s of this.samples) if (s.at >= from && s.at <= to) peak = Math.max(peak ?? 0, s.rss);
    return peak;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/** Busy CPU seconds of the whole machine (all cores), from /proc/stat. */
function readMachineBusySeconds(): number | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
    const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
    const busy = [user, nice, system, irq, softirq, steal].reduce<number>((a, b) => a + (b ?? 0), 0);
    return busy / ticksPerSecond();
  } catch {
    return undefined;
  }
}

/**
 * CPU used on this machine by processes that are not part of the bench (other jobs, a build, a test run
 * in another shell). A benchmark on a shared machine is only as good as this figure is small, so the
 * harness reports it next to each throughput figure.
 */
export class MachineSampler {
  private readonly samples: { at: number; busy: number; ours: Map<number, number> }[] = [];
  private readonly timer: NodeJS.Timeout;
  private readonly pids = new Set<number>();

  constructor(intervalMs = 200) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  /** A process of the bench (harness, load generator, broker): its CPU is not "other" load. */
  track(pid: number): void {
    this.pids.add(pid);
  }

  private sample(): void {
    const busy = readMachineBusySeconds();
    if (busy === undefined) return;
    const ours = new Map<number, number>();
    for (const pid of this.pids) {
      const cpu = readCpuSeconds(pid);
      if (cpu === undefined) this.pids.delete(pid);
      else ours.set(pid, cpu);
    }
    if (this.samples.length >= 20_000) this.samples.splice(0, 1000);
    this.samples.push({ at: Date.now(), busy, ours });
  }

  /** Average cores used by other processes between two wall-clock times (ms since epoch). */
  foreignCores(from: number, to: number): number | undefined {
    this.sample();
    const inside = this.samples.filter((s) => s.at >= from && s.at <= to);
    const first = inside[0];
    const last = inside[inside.length - 1];
    if (!first || !last || last.at - first.at < 100) return undefined;
    let ours = 0;
    for (const [pid, cpu] of last.ours) {
      const before = first.ours.get(pid);
      if (before !== undefined) ours += cpu - before;
    }
    return Math.max(0, (last.busy - first.busy - ours) / ((last.at - first.at) / 1000));
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
