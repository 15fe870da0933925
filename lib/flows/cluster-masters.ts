/**
 * A cluster's master slots as Auto Scaling sees them, and a way to reach its etcd through one
 * healthy master. Shared by every flow that needs "the cluster" rather than one slot.
 */
import { type AutoScalingClient, type AutoScalingGroup, paginateDescribeAutoScalingGroups } from '@aws-sdk/client-auto-scaling';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { runHostScript, type RunOptions, ssmEtcdRunner } from '../aws/run-command';
import { agentOnline } from '../aws/ssm-agent';
import { EtcdClient } from '../etcd';
import type { HostScriptBundle } from '../host/command';
import { patterns } from '../validate';
import { serves } from './master-slot';

export interface ClusterMaster {
  member: string;
  asg: string;
  availabilityZones: string[];
  /** The slot's InService instance, if it has one. */
  instanceId: string | null;
  /** Every instance in the slot with its lifecycle state (a slot may briefly hold two). */
  instances: Array<{ instanceId: string; lifecycleState: string }>;
}

/** The tag keys; `served`: the cluster names this deployment acts on (absent: every one tagged). */
type Tags = { cluster: string; member: string; served?: readonly string[] };


function tagOf(g: AutoScalingGroup, key: string): string | undefined {
  return g.Tags?.find((t) => t.Key === key)?.Value;
}

/** An ASG tagged for the cluster whose member tag is missing or invalid: not a slot, and an alert. */
export interface BadMasterGroup {
  asg: string;
  /** The member tag's value, if there is one (then it is not a valid member name). */
  memberTag: string | undefined;
}

/** The master slots (ASGs tagged with the cluster and a member) of `cluster`, by member name, and the ASGs whose member tag is missing or invalid. */
export async function readMasterGroups(asg: AutoScalingClient, tags: Tags, cluster: string): Promise<{ masters: ClusterMaster[]; bad: BadMasterGroup[] }> {
  const out: ClusterMaster[] = [];
  const bad: BadMasterGroup[] = [];
  for await (const page of paginateDescribeAutoScalingGroups({ client: asg }, { Filters: [{ Name: `tag:${tags.cluster}`, Values: [cluster] }] })) {
    for (const g of page.AutoScalingGroups ?? []) {
      if (!g.AutoScalingGroupName) continue;
      const member = tagOf(g, tags.member);
      if (member === undefined || !patterns.memberName.test(member)) {
        bad.push({ asg: g.AutoScalingGroupName, memberTag: member });
        continue;
      }
      const instances = (g.Instances ?? []).filter((i) => i.InstanceId).map((i) => ({ instanceId: i.InstanceId!, lifecycleState: i.LifecycleState ?? 'unknown' }));
      out.push({
        member, asg: g.AutoScalingGroupName, availabilityZones: g.AvailabilityZones ?? [], instances,
        instanceId: instances.find((i) => i.lifecycleState === 'InService')?.instanceId ?? null,
      });
    }
  }
  return { masters: out.sort((a, b) => (a.member < b.member ? -1 : 1)), bad: bad.sort((a, b) => (a.asg < b.asg ? -1 : 1)) };
}

/** The master slots of `cluster`, by member name (ASGs with a missing or invalid member tag are left out: `readMasterGroups` reports them). */
export async function clusterMasters(asg: AutoScalingClient, tags: Tags, cluster: string): Promise<ClusterMaster[]> {
  return (await readMasterGroups(asg, tags, cluster)).masters;
}

/** Every cluster name found on master ASGs (both tags present, valid names). */
export async function listClusters(asg: AutoScalingClient, tags: Tags): Promise<string[]> {
  const names = new Set<string>();
  for await (const page of paginateDescribeAutoScalingGroups({ client: asg }, { Filters: [{ Name: 'tag-key', Values: [tags.cluster] }] })) {
    for (const g of page.AutoScalingGroups ?? []) {
      const c = tagOf(g, tags.cluster);
      if (c !== undefined && patterns.clusterName.test(c) && tagOf(g, tags.member) !== undefined && serves(tags, c)) names.add(c);
    }
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
