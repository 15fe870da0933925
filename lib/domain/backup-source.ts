/**
 * Which member a backup is taken from. Pure: no AWS, no I/O.
 *
 * Only from a cluster that has a leader and quorum (a member cut off from the majority could
 * hand out stale data that would then look like the newest backup); never from a learner;
 * preferably from a follower (a snapshot streams the whole DB and costs the leader latency),
 * the most up-to-date one first, and only one within `maxLag` raft entries of the leader (a
 * follower that just rejoined with old data would hand out an old snapshot labelled "now");
 * the leader when no follower qualifies. Members are matched to their slots by identity (the
 * caller's claims), so etcd names need not be the slot tags.
 */
import type { MemberId } from '../etcd/ids';
import type { EndpointStatusReport, Member } from '../etcd/parsers';
import { judgeQuorum } from './judge';

export type SourceChoice =
  | { kind: 'source'; member: string; memberId: MemberId; instanceId: string; clientUrl: string; role: 'follower' | 'leader'; revision: number | null }
  | { kind: 'none'; reason: string };

/** How far behind the leader (raft entries) a follower may be and still be the source. */
export const DEFAULT_SOURCE_MAX_LAG = 1000;

/** `slots`: for each member ID a slot claims, the slot's tag and its InService instance. */
export function chooseBackupSource(
  members: readonly Member[], report: EndpointStatusReport, slots: ReadonlyMap<string, { slot: string; instanceId: string }>, maxLag = DEFAULT_SOURCE_MAX_LAG,
): SourceChoice {
  const health = judgeQuorum({ members: [...members], status: report });
  if (health.state !== 'quorate' || health.leader === null) {
    return { kind: 'none', reason: `no leader or no quorum (${health.healthyVoters}/${health.voters} healthy voters, quorum ${health.quorum}): a snapshot now could be stale` };
  }
  const leaderIndex = report.statuses.find((s) => s.memberId === health.leader)?.raftIndex ?? null;
  const candidates = report.statuses
    .filter((s) => s.leader === health.leader && !s.isLearner)
    .filter((s) => s.isLeader || (leaderIndex !== null && leaderIndex - s.raftIndex <= maxLag))
    .map((s) => ({ s, m: members.find((m) => m.id === s.memberId) }))
    .filter((c): c is { s: typeof c.s; m: Member } => c.m !== undefined && !c.m.isLearner && c.m.clientUrls.length > 0 && slots.has(c.m.id))
    .sort((a, b) => Number(a.s.isLeader) - Number(b.s.isLeader) || b.s.raftIndex - a.s.raftIndex || (a.m.name < b.m.name ? -1 : 1));
  const best = candidates[0];
  if (!best) return { kind: 'none', reason: 'no healthy voting member with a running instance in its slot' };
  const slot = slots.get(best.m.id)!;
  return {
    kind: 'source', member: slot.slot, memberId: best.m.id, instanceId: slot.instanceId, clientUrl: best.m.clientUrls[0]!,
    role: best.s.isLeader ? 'leader' : 'follower', revision: best.s.revision,
  };
}
