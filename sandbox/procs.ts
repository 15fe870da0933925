/**
 * Process bookkeeping for the sandbox and tests. Every temp dir we create starts with
 * TMP_PREFIX, and every etcd we (or a host script) start has that dir on its command line,
 * so `reapStrays()` can find and kill leftovers even after a crashed test run.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const TMP_PREFIX = 'qk-sbx-';

export function makeTempDir(label: string): string {
  return mkdtempSync(join(tmpdir(), `${TMP_PREFIX}${label}-`));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Pids of processes whose command line mentions `needle`. */
export function findProcesses(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ');
      if (cmd.includes(needle)) pids.push(Number(entry));
    } catch {
      // process ended meanwhile
    }
  }
  return pids;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function killHard(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Kills every process whose command line mentions one of our temp dirs (or `needle`). */
export function reapStrays(needle = join(tmpdir(), TMP_PREFIX)): number {
  const pids = findProcesses(needle);
  pids.forEach(killHard);
  return pids.length;
}
