/**
 * Quorum math and membership planning for one member slot. Pure: no AWS, no I/O.
 */
import type { MemberId } from '../etcd/ids';
import type { EndpointStatusReport, Member } from '../etcd/parsers';
import { hasNoLeader } from '../etcd/parsers';

export function quorumOf(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

export interface ClusterHealth {
  voters: number;
  quorum: number;
  /** Voting members that answered and agree on a leader. */
  healthyVoters: number;
  leader: MemberId | null;
  /** healthyVoters - quorum: how many more voters may fail before quorum is lost. */
  margin: number;
}

export function clusterHealth(members: readonly Member[], report: EndpointStatusReport): ClusterHealth {
  const voters = members.filter((m) => !m.isLearner);
  const voterIds = new Set(voters.map((m) => m.id));
  const answering = report.statuses.filter((s) => voterIds.has(s.memberId) && !hasNoLeader(s));
  // The leader most answering voters agree on.
  const votes = new Map<MemberId, number>();
  for (const s of answering) if (s.leader) votes.set(s.leader, (votes.get(s.leader) ?? 0) + 1);
  let leader: MemberId | null = null;
  let best = 0;
  for (const [id, n] of votes) if (n > best) [leader, best] = [id, n];
  const healthy = answering.filter((s) => s.leader === leader).length;
  const quorum = quorumOf(voters.length);
  return { voters: voters.length, quorum, healthyVoters: leader && voterIds.has(leader) ? healthy : 0, leader: leader && voterIds.has(leader) ? leader : null, margin: (leader ? healthy : 0) - quorum };
}

export type MembershipPlan =
  /** Member present with this peer URL: nothing to change. */
  | { kind: 'in-place'; id: MemberId; isLearner: boolean }
  /** Data survived: point the existing member at the new peer URL. */
  | { kind: 'update'; id: MemberId; from: string[] }
  /** Data gone: remove the old incarnation (if any), then add a learner at the new URL. */
  | { kind: 'replace'; removeId: MemberId | null }
  | { kind: 'refuse'; reason: string; action: string };

/**
 * What to do for `name` whose new incarnation advertises `peerUrl`; `hasData` says whether
 * its volume carried an etcd data dir. `recordedId` is the member ID recorded for the slot: the
 * slot's member is that one when it is still in the cluster, whatever its name (etcd names need
 * not be the slot tags), else the member named `name`.
 */
export function planMembership(members: readonly Member[], name: string, peerUrl: string, hasData: boolean, recordedId?: string): MembershipPlan {
  const byId = recordedId === undefined ? undefined : members.find((m) => m.id === recordedId);
  const byName = byId ?? members.find((m) => m.name === name);
  const byUrl = members.find((m) => m.peerUrls.includes(peerUrl));
  if (byUrl && byName && byUrl.id !== byName.id) {
    return { kind: 'refuse', reason: `peer URL ${peerUrl} belongs to member ${byUrl.id}, not to ${name} (${byName.id})`, action: 'Inspect `etcdctl member list`; remove the stale member by hand once you are sure which one it is.' };
  }
  if (byUrl && !byId && byUrl.name !== '' && byUrl.name !== name) {
    return { kind: 'refuse', reason: `peer URL ${peerUrl} is registered for member ${byUrl.name}, not ${name}`, action: 'Check the volume and ASG tags of both members: a volume may be claimed by the wrong member.' };
  }
  const current = byName ?? byUrl;
  if (hasData) {
    if (!current) {
      return {
        kind: 'refuse',
        reason: `member ${name} is no longer in the cluster but its volume still holds etcd data`,
        action: 'Its data cannot rejoin under a new member ID. Take a verified backup, then re-add it empty on purpose (wipe the data dir) or restore the cluster.',
      };
    }
    if (current.peerUrls.length === 1 && current.peerUrls[0] === peerUrl) return { kind: 'in-place', id: current.id, isLearner: current.isLearner };
    return { kind: 'update', id: current.id, from: current.peerUrls };
  }
  // No data: the member must (re)join empty as a learner.
  if (current && current.peerUrls.includes(peerUrl)) return { kind: 'in-place', id: current.id, isLearner: current.isLearner };
  return { kind: 'replace', removeId: current ? current.id : null };
}

export interface StopSafety {
  /** True only when the other voters keep quorum under a known leader. */
  safe: boolean;
  leader: MemberId | null;
  othersHealthy: number;
  quorum: number;
  voters: number;
}

/**
 * May the member serving `myEndpoint` stop? Only if the voters other than it are enough for
 * quorum and agree on a leader. No leader (e.g. an election after another member died) is
 * "unknown", which counts as unsafe.
 */
export function canStopMember(members: readonly Member[], report: EndpointStatusReport, myEndpoint: string): StopSafety {
  const health = clusterHealth(members, report);
  const me = report.statuses.find((s) => s.endpoint === myEndpoint);
  const meHealthy = me !== undefined && health.leader !== null && me.leader === health.leader && !me.isLearner;
  const othersHealthy = health.healthyVoters - (meHealthy ? 1 : 0);
  return { safe: health.leader !== null && othersHealthy >= health.quorum, leader: health.leader, othersHealthy, quorum: health.quorum, voters: health.voters };
}
