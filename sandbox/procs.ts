/**
 * Process bookkeeping for the sandbox and tests. Every temp dir we create starts with
 * TMP_PREFIX, and every etcd we (or a host script) start has that dir on its command line,
 * so `reapStrays()` can find and kill leftovers even after a crashed test run.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const TMP_PREFIX = 'qk-sbx-';

/** Temp dirs are named qk-sbx-<owner pid>-<label>-XXXXXX, so strays can be traced to their owner. */
export function makeTempDir(label: string): string {
  return mkdtempSync(join(tmpdir(), `${TMP_PREFIX}${process.pid}-${label}-`));
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

/**
 * Kills processes (etcd members, mostly) left behind by sandbox owners: this process when
 * `own` is true, else any owner that is no longer alive; and removes their temp dirs.
 * Returns how many processes were killed.
 */
export function reapStrays(opts: { own: boolean }): number {
  const base = tmpdir();
  const owners = new Set<number>();
  for (const entry of readdirSync(base)) {
    const m = new RegExp(`^${TMP_PREFIX}(\\d+)-`).exec(entry);
    if (m?.[1] === undefined) continue;
    const owner = Number(m[1]);
    if (opts.own ? owner === process.pid : !isAlive(owner)) owners.add(owner);
  }
  let killed = 0;
  for (const owner of owners) {
    const pids = findProcesses(join(base, `${TMP_PREFIX}${owner}-`));
    pids.forEach(killHard);
    killed += pids.length;
    if (!process.env.QK_KEEP_TMP) {
      for (const entry of readdirSync(base)) if (entry.startsWith(`${TMP_PREFIX}${owner}-`)) removeDir(join(base, entry));
    }
  }
  return killed;
}
