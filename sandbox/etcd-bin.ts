/**
 * Which etcd the sandbox runs (its hosts' host scripts, the harness's etcdctl): `QK_ETCD_VERSION`
 * 3.5 (the default: 3.5.16 from Debian trixie, unpacked into .tmp/etcd-3.5 by scripts/etcd-3.5.sh,
 * fetched there when missing) or 3.4 (Debian bookworm's, the system's). `npm test` sets PATH
 * itself (scripts/test.sh); the demo and the bench call `useEtcd()` before anything starts etcd.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface EtcdInUse {
  version: string;
  /** Where `etcd` is found now. */
  path: string;
}

export function etcdInUse(): EtcdInUse {
  const out = execFileSync('etcd', ['--version'], { encoding: 'utf8' });
  const version = /^etcd Version: (\S+)/m.exec(out)?.[1] ?? 'unknown';
  const path = execFileSync('bash', ['-c', 'command -v etcd'], { encoding: 'utf8' }).trim();
  return { version, path };
}

/** Where etcd 3.5.16 is (.tmp/etcd-3.5/usr/bin), fetched from Debian trixie when missing (scripts/etcd-3.5.sh). */
function etcd35Dir(): string {
  return execFileSync('bash', [join(__dirname, '..', 'scripts', 'etcd-3.5.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

/** Puts the chosen etcd first on this process's PATH (children inherit it) and says which runs. */
export function useEtcd(version = process.env.QK_ETCD_VERSION ?? '3.5'): EtcdInUse {
  if (version === '3.5') {
    const bin = etcd35Dir();
    const rest = (process.env.PATH ?? '').split(delimiter).filter((p) => p !== bin);
    process.env.PATH = [bin, ...rest].join(delimiter);
  } else if (version !== '3.4') {
    throw new Error(`QK_ETCD_VERSION must be 3.4 or 3.5, got '${version}'`);
  }
  return etcdInUse();
}

/**
 * Both etcds this machine has, by minor version: 3.5 (.tmp/etcd-3.5, fetched when missing) and
 * 3.4 (the system's, Debian bookworm's); for masters that carry different ones (a rolling upgrade).
 */
export function etcdBinDirs(): { '3.4': string; '3.5': string } {
  const v35 = etcd35Dir();
  const v34 = (process.env.PATH ?? '').split(delimiter).find((dir) => dir !== v35 && existsSync(join(dir, 'etcd'))
    && /^etcd Version: 3\.4\./m.test(execFileSync(join(dir, 'etcd'), ['--version'], { encoding: 'utf8' })));
  if (!v34) throw new Error('no etcd 3.4 on PATH (Debian bookworm: apt-get install etcd-server etcd-client)');
  return { '3.4': v34, '3.5': v35 };
}
