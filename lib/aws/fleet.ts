/**
 * A cluster's master slots as Auto Scaling sees them: the ASGs tagged with the cluster, by member
 * tag, each with its instances and their lifecycle states; and the EC2 state of a few instances.
 */
import { type AutoScalingGroup, type AutoScalingClient, DescribeAutoScalingGroupsCommand, paginateDescribeAutoScalingGroups } from '@aws-sdk/client-auto-scaling';
import { type EC2Client, paginateDescribeInstances } from '@aws-sdk/client-ec2';
import { patterns } from '../validate';

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
export type Tags = { cluster: string; member: string; served?: readonly string[] };


export function tagOf(g: AutoScalingGroup, key: string): string | undefined {
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


/** EC2 state and launch time of a few instances (one call each: an unknown ID fails a batch call); an ID EC2 no longer knows is `terminated`. */
export async function instanceStates(ec2: EC2Client, ids: readonly string[]): Promise<Record<string, { state: string; launchedAt: number | null }>> {
  const out: Record<string, { state: string; launchedAt: number | null }> = {};
  await Promise.all(ids.map(async (id) => {
    try {
      for await (const page of paginateDescribeInstances({ client: ec2 }, { InstanceIds: [id] })) {
        for (const r of page.Reservations ?? []) {
          for (const i of r.Instances ?? []) if (i.InstanceId === id) out[id] = { state: i.State?.Name ?? 'unknown', launchedAt: i.LaunchTime?.getTime() ?? null };
        }
      }
    } catch (err) {
      if ((err as { name?: string }).name !== 'InvalidInstanceID.NotFound') throw err;
      out[id] = { state: 'terminated', launchedAt: null }; // gone from EC2's memory: terminated long ago
    }
  }));
  return out;
}

/** One ASG's tags and AZs; null when it does not exist (any more). */
export async function describeGroup(asg: AutoScalingClient, name: string): Promise<{ tags: Record<string, string>; availabilityZones: string[] } | null> {
  const g = (await asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [name] }))).AutoScalingGroups?.[0];
  if (!g) return null;
  return { tags: Object.fromEntries((g.Tags ?? []).filter((t) => t.Key !== undefined).map((t) => [t.Key!, t.Value ?? ''])), availabilityZones: g.AvailabilityZones ?? [] };
}

/** The tags of every ASG that carries the tag `key` (any value). */
export async function groupsTagged(asg: AutoScalingClient, key: string): Promise<Array<Record<string, string>>> {
  const out: Array<Record<string, string>> = [];
  for await (const page of paginateDescribeAutoScalingGroups({ client: asg }, { Filters: [{ Name: 'tag-key', Values: [key] }] })) {
    for (const g of page.AutoScalingGroups ?? []) out.push(Object.fromEntries((g.Tags ?? []).filter((t) => t.Key !== undefined).map((t) => [t.Key!, t.Value ?? ''])));
  }
  return out;
}
