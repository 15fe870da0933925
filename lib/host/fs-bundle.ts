/** Loads the host scripts from a directory (tests, sandbox, CLI). Lambda bundles embed them instead. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HostScriptBundle } from './command';

export function loadHostScripts(dir: string): HostScriptBundle {
  const read = (name: string) => readFileSync(join(dir, name), 'utf8');
  return {
    'lib.sh': read('lib.sh'),
    'etcd-mount.sh': read('etcd-mount.sh'),
    'etcd-member.sh': read('etcd-member.sh'),
    'etcdctl.sh': read('etcdctl.sh'),
    'etcd-snapshot.sh': read('etcd-snapshot.sh'),
  };
}
