/**
 * Which cluster and etcd member an Auto Scaling group is the slot of, read from its tags.
 * An ASG without both tags is not a Quorum Keeper master: events for it are ignored.
 */
import type { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { describeGroup } from '../aws/fleet';
import { patterns } from '../validate';

export interface MasterSlot {
  asg: string;
  cluster: string;
  member: string;
  availabilityZones: string[];
}

export type SlotLookup =
  | { kind: 'master'; slot: MasterSlot }
  | { kind: 'not-a-master'; reason: string };

/** Whether a deployment whose tags name `served` clusters acts on `cluster` (absent: every one tagged). */
export const serves = (tags: { served?: readonly string[] }, cluster: string): boolean => tags.served === undefined || tags.served.includes(cluster);

/** The slot an Auto Scaling group is, read through the SDK client (handlers, tools, tests). */
export async function findMasterSlot(
  asg: AutoScalingClient,
  asgName: string,
  tags: { cluster: string; member: string; served?: readonly string[] },
): Promise<SlotLookup> {
  return slotOfGroup(await describeGroup(asg, asgName), asgName, tags);
}

/** The slot a described group is (`group` null: it does not exist), by its tags. */
export function slotOfGroup(
  group: { tags: Record<string, string>; availabilityZones: string[] } | null,
  asgName: string,
  tags: { cluster: string; member: string; served?: readonly string[] },
): SlotLookup {
  if (!group) return { kind: 'not-a-master', reason: `Auto Scaling group ${asgName} does not exist (any more)` };
  const tag = (key: string): string | undefined => group.tags[key];
  const cluster = tag(tags.cluster);
  const member = tag(tags.member);
  if (cluster === undefined || member === undefined) {
    return { kind: 'not-a-master', reason: `${asgName} has no ${cluster === undefined ? tags.cluster : tags.member} tag` };
  }
  // Tag values end up in host commands: refuse anything outside the strict patterns here.
  if (!patterns.clusterName.test(cluster)) return { kind: 'not-a-master', reason: `${asgName}: cluster tag ${JSON.stringify(cluster.slice(0, 64))} is not a valid cluster name` };
  if (!patterns.memberName.test(member)) return { kind: 'not-a-master', reason: `${asgName}: member tag ${JSON.stringify(member.slice(0, 64))} is not a valid member name` };
  if (!serves(tags, cluster)) {
    return { kind: 'not-a-master', reason: `${asgName} belongs to cluster ${cluster}, which this deployment does not serve (its \`clusters\` parameter: ${tags.served?.join(', ') ?? ''}); its IAM roles may not act on it` };
  }
  return { kind: 'master', slot: { asg: asgName, cluster, member, availabilityZones: group.availabilityZones } };
}

/** The lock one flow holds while it drives a slot (replacement, reconciler's volume fix-ups). */
export function slotLockKey(s: { cluster: string; member: string }): string {
  return `${s.cluster}/${s.member}`;
}

/**
 * The lock of one instance of a slot: its replacement (or repair) and its retirement never run
 * at once. Separate from the slot lock, because a replacement launched beside a retiring
 * predecessor holds the slot lock while it waits for that retirement to release the volume.
 */
export function instanceLockKey(s: { cluster: string; member: string }, instanceId: string): string {
  return `${s.cluster}/${s.member}/${instanceId}`;
}
