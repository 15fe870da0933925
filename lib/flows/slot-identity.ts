/**
 * Which etcd member each master slot is, read from the world: the IDs recorded in the state
 * table, the member names, and — only when a slot and a member are both still unpaired — the
 * peer URL each unpaired slot's master advertises (one `etcd-member.sh urls` per such master;
 * a cluster whose names match its tags costs nothing extra). The decision is the pure
 * `claimMembers` (lib/domain/identity.ts).
 */
import type { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import type { SSMClient } from '@aws-sdk/client-ssm';
import type { MemberIds } from '../aws/member-ids';
import { peerUrlOf } from '../aws/etcd-survey';
import type { RunOptions } from '../aws/run-command';
import { type Claim, claimMembers, type IdentityMember, type SlotIdentity, unclaimed } from '../domain/identity';
import type { HostScriptBundle } from '../host/command';
import { STATUS_TIMEOUT } from '../etcd';
import { clusterMasters, type ClusterMaster, firstHealthyPeer } from './cluster-masters';

export interface IdentityRead {
  ssm: SSMClient;
  scripts: HostScriptBundle;
  /** The member IDs recorded per slot (absent: none recorded). */
  recordedIds?: (cluster: string, slots: readonly string[]) => Promise<Record<string, string>>;
}

/** The recorded member IDs as `IdentityRead.recordedIds` reads them (the one adapter). */
export const recordedIdsFrom = (ids: Pick<MemberIds, 'get'>): NonNullable<IdentityRead['recordedIds']> => (cluster, slots) => ids.get(cluster, slots);

/** What a lifecycle flow reads identity with: its clients and the recorded member IDs. */
export function identityRead(d: { ssm: SSMClient; scripts: HostScriptBundle; memberIds: Pick<MemberIds, 'get'> }): IdentityRead {
  return { ssm: d.ssm, scripts: d.scripts, recordedIds: recordedIdsFrom(d.memberIds) };
}

export async function slotClaims(
  d: IdentityRead, cluster: string, masters: readonly ClusterMaster[], members: readonly IdentityMember[],
  known: { instanceId: string; peerUrl: string } | null, opts: RunOptions,
): Promise<Record<string, Claim>> {
  const recorded = d.recordedIds ? await d.recordedIds(cluster, masters.map((m) => m.member)) : {};
  const slots: SlotIdentity[] = masters.map((m) => ({
    member: m.member, recordedId: recorded[m.member], ...(known && m.instanceId === known.instanceId ? { peerUrl: known.peerUrl } : {}),
  }));
  let claims = claimMembers(members, slots);
  const open = unclaimed(members, slots, claims);
  if (open.slots.length === 0 || open.members.length === 0) return claims;
  await Promise.all(slots.map(async (s, i) => {
    const instanceId = masters[i]!.instanceId;
    if (!open.slots.includes(s.member) || s.peerUrl || !instanceId) return;
    const url = await peerUrlOf(d.ssm, d.scripts, instanceId, opts);
    if (url) s.peerUrl = url;
  }));
  claims = claimMembers(members, slots);
  return claims;
}

/**
 * Whether slot `member`'s etcd member answers, asked through ANOTHER master (for a master whose
 * own SSM agent is lost): 'alive' when it answers at its client URLs as that member, 'gone' when
 * it does not (or is no member any more), 'unknown' when no other master answers.
 */
export async function memberAnswersElsewhere(
  d: IdentityRead & { asg: AutoScalingClient; tags: { cluster: string; member: string } }, cluster: string, member: string, opts: RunOptions,
): Promise<{ verdict: 'alive' | 'gone' | 'unknown'; detail: string }> {
  const masters = await clusterMasters(d.asg, d.tags, cluster);
  const candidates = masters.filter((m) => m.member !== member)
    .flatMap((m) => m.instances.filter((i) => i.lifecycleState === 'InService' || i.lifecycleState === 'Terminating:Wait').map((i) => ({ instanceId: i.instanceId, member: m.member })));
  const peer = await firstHealthyPeer(d.ssm, d.scripts, candidates, opts);
  if (!peer) return { verdict: 'unknown', detail: `no other master's etcd answers (tried ${candidates.map((c) => c.member).join(', ') || 'none'})` };
  const list = await peer.etcd.memberList();
  const id = (await slotClaims(d, cluster, masters, list.members, null, opts))[member]?.id;
  const m = list.members.find((x) => x.id === id);
  if (!m) return { verdict: 'gone', detail: `${member} is no etcd member (asked through ${peer.member})` };
  const report = m.clientUrls.length ? await peer.etcd.endpointStatus({ cluster: false, endpoints: m.clientUrls, timeout: STATUS_TIMEOUT }) : { statuses: [] };
  return report.statuses.some((x) => x.memberId === m.id)
    ? { verdict: 'alive', detail: `member ${m.id} answers at ${m.clientUrls.join(',')} (asked through ${peer.member})` }
    : { verdict: 'gone', detail: `member ${m.id} does not answer at ${m.clientUrls.join(',') || 'any URL'} (asked through ${peer.member})` };
}
