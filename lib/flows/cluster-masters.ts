/**
 * A cluster's master slots as Auto Scaling sees them, and a way to reach its etcd through one
 * healthy master. Shared by every flow that needs "the cluster" rather than one slot.
 */
import type { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { type ClusterMaster, groupsTagged, readMasterGroups, type Tags } from '../aws/fleet';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { runHostScript, type RunOptions, ssmEtcdRunner } from '../aws/run-command';
import { agentOnline } from '../aws/ssm-agent';
import { EtcdClient } from '../etcd';
import type { HostScriptBundle } from '../host/command';
import { patterns } from '../validate';
import { serves } from './master-slot';

export { readMasterGroups, type BadMasterGroup, type ClusterMaster } from '../aws/fleet';

/** The master slots of `cluster`, by member name (ASGs with a missing or invalid member tag are left out: `readMasterGroups` reports them). */
export async function clusterMasters(asg: AutoScalingClient, tags: Tags, cluster: string): Promise<ClusterMaster[]> {
  return (await readMasterGroups(asg, tags, cluster)).masters;
}

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
export async function firstHealthyPeer(
  ssm: SSMClient, scripts: HostScriptBundle, candidates: ReadonlyArray<{ instanceId: string; member: string }>, opts: RunOptions,
): Promise<Peer | null> {
  for (const c of candidates) {
    if (!(await agentOnline(ssm, c.instanceId))) continue;
    const res = await runHostScript(ssm, scripts, c.instanceId, 'etcd-member.sh', ['status'], opts);
    if (res.exitCode !== 0) continue;
    const st = JSON.parse(res.stdout) as { running: boolean; healthy: boolean; clientUrl: string; clusterVersion?: string | null };
    if (st.running && st.healthy) {
      return { ...c, etcd: new EtcdClient(ssmEtcdRunner(ssm, scripts, c.instanceId, opts), { endpoints: [st.clientUrl] }), clusterVersion: st.clusterVersion ?? null };
    }
  }
  return null;
}
