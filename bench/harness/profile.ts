/** Where a CPU profile's time goes: self time by function and by component, inclusive time of Bulwark code. */

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  /** µs on the profiled process's monotonic clock (CLOCK_MONOTONIC on Linux, as `process.hrtime`). */
  startTime?: number;
  samples: number[];
  timeDeltas: number[];
}

/** Wall-clock ms (since the epoch) of each sample, from the monotonic clock every process shares on Linux. */
export function sampleWallTimes(profile: CpuProfile): Float64Array {
  const monoToWall = Date.now() - Number(process.hrtime.bigint()) / 1e6;
  const out = new Float64Array(profile.samples.length);
  let t = (profile.startTime ?? 0) / 1000;
  profile.timeDeltas.forEach((dt, i) => {
    t += dt / 1000;
    out[i] = t + monoToWall;
  });
  return out;
}

export interface FrameShare {
  frame: string;
  area: string;
  ms: number;
  pct: number;
}

export interface ProfileSummary {
  totalMs: number;
  /** Share of samples in which the process was not idle. */
  busyPct: number;
  topSelf: FrameShare[];
  areas: { area: string; ms: number; pct: number }[];
  /** Bulwark's own functions by inclusive time (what they and their callees cost). */
  bulwarkInclusive: FrameShare[];
}

/** The component a frame belongs to, from its script URL. */
export function areaOf(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (!url) {
    if (functionName === '(garbage collector)') return 'V8 garbage collector';
    if (functionName === '(idle)') return 'idle';
    if (functionName === '(program)') return 'V8/native (program)';
    return 'native';
  }
  if (url.startsWith('node:')) {
    const parts = url.replace('node:internal/', 'node:').split('/');
    return `node ${(parts[0] ?? '').replace('node:', '')}${parts[1] && !parts[1].endsWith('.js') ? `/${parts[1]}` : ''}`;
  }
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (nm) return nm[1] ?? 'dependency';
  const pkg = /packages\/(server|protocol|device)\/src\/(?:([^/]+)\/)?/.exec(url);
  if (pkg) return `bulwark ${pkg[1]}${pkg[2] ? `/${pkg[2]}` : ''}`;
  if (url.includes('/bench/')) return 'bench harness';
  return 'other';
}

function frameName(frame: CallFrame): string {
  const file = frame.url.replace(/^file:\/\//, '').replace(/^.*\/(node_modules|packages)\//, '');
  if (!file) return `${frame.functionName || '(anonymous)'} (native)`;
  // TypeScript run through tsx has no useful line numbers in the profile; the file names the module.
  const line = file.endsWith('.ts') ? '' : `:${frame.lineNumber + 1}`;
  return `${frame.functionName || '(anonymous)'} ${file}${line}`;
}

/**
 * `within`: only the samples taken inside these wall-clock intervals (ms since the epoch) count, e.g. the
 * moments between an offending message and the broker's enforcement.
 */
export function summarizeProfile(
  profile: CpuProfile,
  top = 15,
  within?: readonly { from: number; to: number }[],
): ProfileSummary {
  const at = within ? sampleWallTimes(profile) : undefined;
  const counts = (i: number) => {
    if (!at || !within) return true;
    const t = at[i] as number;
    return within.some((w) => t >= w.from && t <= w.to);
  };
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const selfByNode = new Map<number, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    if (!counts(i)) return;
    const dt = (profile.timeDeltas[i] ?? 0) / 1000;
    selfByNode.set(id, (selfByNode.get(id) ?? 0) + dt);
    total += dt;
  });
  // A native frame (a C++ binding: SQLite, a socket write) counts towards whoever called it.
  const areaOfNode = (id: number): string => {
    const frame = byId.get(id)?.callFrame;
    if (!frame) return 'other';
    const area = areaOf(frame);
    if (area !== 'native') return area;
    for (let cur = parent.get(id); cur !== undefined; cur = parent.get(cur)) {
      const up = byId.get(cur)?.callFrame;
      if (up && up.url) return `${areaOf(up)} (native)`;
    }
    return area;
  };
  const self = new Map<string, FrameShare>();
  const areas = new Map<string, number>();
  const inclusive = new Map<string, FrameShare>();
  for (const [id, ms] of selfByNode) {
    const node = byId.get(id);
    if (!node) continue;
    const name = frameName(node.callFrame);
    const area = areaOfNode(id);
    const entry = self.get(name) ?? { frame: name, area, ms: 0, pct: 0 };
    entry.ms += ms;
    self.set(name, entry);
    areas.set(area, (areas.get(area) ?? 0) + ms);
    // Inclusive: each Bulwark function on this sample's stack, once per stack.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const frame = byId.get(cur)?.callFrame;
      if (!frame || !areaOf(frame).startsWith('bulwark')) continue;
      const fname = frameName(frame);
      if (seen.has(fname)) continue;
      seen.add(fname);
      const inc = inclusive.get(fname) ?? { frame: fname, area: areaOf(frame), ms: 0, pct: 0 };
      inc.ms += ms;
      inclusive.set(fname, inc);
    }
  }
  const idle = areas.get('idle') ?? 0;
  const busy = total - idle;
  const pct = (ms: number) => (busy > 0 ? (100 * ms) / busy : 0);
  const finish = (list: FrameShare[]) =>
    list
      .sort((a, b) => b.ms - a.ms)
      .slice(0, top)
      .map((f) => ({ ...f, ms: Math.round(f.ms), pct: Math.round(pct(f.ms) * 10) / 10 }));
  return {
    totalMs: Math.round(total),
    busyPct: total > 0 ? Math.round((1000 * busy) / total) / 10 : 0,
    topSelf: finish([...self.values()].filter((f) => f.area !== 'idle')),
    areas: [...areas]
      .filter(([area]) => area !== 'idle')
      .map(([area, ms]) => ({ area, ms: Math.round(ms), pct: Math.round(pct(ms) * 10) / 10 }))
      .sort((a, b) => b.ms - a.ms),
    bulwarkInclusive: finish([...inclusive.values()]).slice(0, 10),
  };
}
