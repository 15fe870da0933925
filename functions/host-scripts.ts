/** The host scripts, embedded in the Lambda bundle as text (esbuild text loader). */
import type { HostScriptBundle } from '../lib/host/command';
import libSh from '../host/lib.sh';
import etcdMountSh from '../host/etcd-mount.sh';
import etcdMemberSh from '../host/etcd-member.sh';
import etcdQuerySh from '../host/etcd-query.sh';
import etcdctlSh from '../host/etcdctl.sh';
import etcdSnapshotSh from '../host/etcd-snapshot.sh';
import etcdRestoreSh from '../host/etcd-restore.sh';

export const hostScripts: HostScriptBundle = {
  'lib.sh': libSh,
  'etcd-mount.sh': etcdMountSh,
  'etcd-member.sh': etcdMemberSh,
  'etcd-query.sh': etcdQuerySh,
  'etcdctl.sh': etcdctlSh,
  'etcd-snapshot.sh': etcdSnapshotSh,
  'etcd-restore.sh': etcdRestoreSh,
};
