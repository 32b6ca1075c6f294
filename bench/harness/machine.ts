import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

export interface Machine {
  cpu: string;
  cores: number;
  memoryGb: number;
  os: string;
  virtualization: string | undefined;
  node: string;
  /** Git commit of the tree under test (with `+dirty` when it has uncommitted changes). */
  commit: string | undefined;
}

function git(args: string[]): string | undefined {
  try {
    return execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

export function describeMachine(): Machine {
  const cpus = os.cpus();
  let virtualization: string | undefined;
  try {
    virtualization = /^Hypervisor vendor:\s*(.+)$/m.exec(execFileSync('lscpu', { encoding: 'utf8' }))?.[1];
  } catch {
    virtualization = undefined;
  }
  let osName = `${os.type()} ${os.release()}`;
  try {
    const pretty = /^PRETTY_NAME="?([^"\n]+)"?/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1];
    if (pretty) osName = `${pretty}, ${osName}`;
  } catch {
    // not Linux: the kernel name is enough
  }
  const head = git(['rev-parse', '--short', 'HEAD']);
  const dirty = git(['status', '--porcelain', '--', 'packages']);
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    os: osName,
    virtualization,
    node: process.version,
    commit: head && (dirty ? `${head}+dirty` : head),
  };
}
