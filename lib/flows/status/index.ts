/**
 * `quorum-keeper status`: one observation of the cluster (lib/observe), judged by the pure
 * `judgeStatus` (lib/domain/status.ts). Read-only.
 */
import type { BackupStore } from '../../aws/backups';
import { judgeStatus, type ClusterStatus, type StatusOptions } from '../../domain/status';
import { contextOf, observeCluster } from '../../observe/observe';
import type { Clock } from '../../clock';
import type { ObservePorts } from '../../observe/ports';

export type { ClusterStatus, EtcdRole, MemberStatus, StatusOptions } from '../../domain/status';

export interface StatusDeps {
  observe: ObservePorts;
  clock: Clock;
  signal?: AbortSignal;
}

export async function clusterStatus(deps: StatusDeps, cluster: string, opts: StatusOptions & { store?: BackupStore } = {}): Promise<ClusterStatus> {
  const view = await observeCluster(deps.observe, cluster, {
    volumes: true, targets: true, etcd: { certs: true }, claims: true, records: true, backups: opts.store ?? null,
  }, contextOf(deps));
  return judgeStatus(view, opts);
}
