/**
 * Which etcd member each master slot is, read from the world: the IDs recorded in the state
 * table, the member names, and — only when a slot and a member are both still unpaired — the
 * peer URL each unpaired slot's master advertises (one `etcd-member.sh urls` per such master;
 * a cluster whose names match its tags costs nothing extra). The decision is the pure
 * `claimMembers` (lib/domain/identity.ts).
 */
import type { SSMClient } from '@aws-sdk/client-ssm';
import { lastLine, runHostScript, type RunOptions } from '../aws/run-command';
import { agentOnline } from '../aws/ssm-agent';
import { type Claim, claimMembers, type IdentityMember, type SlotIdentity, unclaimed } from '../domain/identity';
import type { HostScriptBundle } from '../host/command';
import type { ClusterMaster } from './cluster-masters';

export interface IdentityRead {
  ssm: SSMClient;
  scripts: HostScriptBundle;
  /** The member IDs recorded per slot (absent: none recorded). */
  recordedIds?: (cluster: string, slots: readonly string[]) => Promise<Record<string, string>>;
}

/** The peer URL `instanceId` advertises, or undefined when it cannot be asked. */
async function peerUrlOf(ssm: SSMClient, scripts: HostScriptBundle, instanceId: string, opts: RunOptions): Promise<string | undefined> {
  if (!(await agentOnline(ssm, instanceId))) return undefined;
  const res = await runHostScript(ssm, scripts, instanceId, 'etcd-member.sh', ['urls'], opts);
  if (res.exitCode !== 0) return undefined;
  try {
    const url = (JSON.parse(lastLine(res.stdout)) as { peerUrl?: unknown }).peerUrl;
    return typeof url === 'string' ? url : undefined;
  } catch {
    return undefined;
  }
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
