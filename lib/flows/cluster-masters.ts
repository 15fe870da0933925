/**
 * A cluster's master slots as Auto Scaling sees them, and a way to reach its etcd through one
 * healthy master. Shared by every flow that needs "the cluster" rather than one slot.
 */
import type { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { groupsTagged, type Tags } from '../aws/fleet';
import { EtcdClient } from '../etcd';
import { type HostCallOptions, HostFailure, type Hosts } from '../host/commands';
import { patterns } from '../validate';
import { serves } from './master-slot';

/** Every cluster name found on master ASGs (both tags present, valid names). */
export async function listClusters(asg: AutoScalingClient, tags: Tags): Promise<string[]> {
  const names = new Set<string>();
  for (const g of await groupsTagged(asg, tags.cluster)) {
    const c = g[tags.cluster];
    if (c !== undefined && patterns.clusterName.test(c) && g[tags.member] !== undefined && serves(tags, c)) names.add(c);
  }
  return [...names].sort();
}

export interface Peer {
  instanceId: string;
  member: string;
  etcd: EtcdClient;
  /** The cluster version this member reports (its /version `etcdcluster`), when it said. */
  clusterVersion?: string | null;
}

/**
 * The first candidate whose SSM agent is online and whose etcd runs and reports itself healthy,
 * with an EtcdClient that runs etcdctl on it; null when none does.
 */
export async function firstHealthyPeer(hosts: Hosts, candidates: ReadonlyArray<{ instanceId: string; member: string }>, opts: HostCallOptions): Promise<Peer | null> {
  for (const c of candidates) {
    if (!(await hosts.online(c.instanceId))) continue;
    const st = await hosts.run(c.instanceId, { kind: 'member-status' }, opts).catch((err: unknown) => {
      if (err instanceof HostFailure) return null; // this master cannot say: try the next
      throw err;
    });
    if (st?.running && st.healthy) {
      return { ...c, etcd: new EtcdClient(hosts.etcdctl(c.instanceId, opts), { endpoints: [st.clientUrl] }), clusterVersion: st.clusterVersion };
    }
  }
  return null;
}
