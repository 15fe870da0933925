/**
 * Which member a backup is taken from. Pure: no AWS, no I/O.
 *
 * Only from a cluster that has a leader and quorum (a member cut off from the majority could
 * hand out stale data that would then look like the newest backup); never from a learner;
 * preferably from a follower (a snapshot streams the whole DB and costs the leader latency),
 * the most up-to-date one first; the leader only when no follower can serve.
 */
import type { MemberId } from '../etcd/ids';
import type { EndpointStatusReport, Member } from '../etcd/parsers';
import { clusterHealth } from './membership';

export type SourceChoice =
  | { kind: 'source'; member: string; memberId: MemberId; instanceId: string; clientUrl: string; role: 'follower' | 'leader'; revision: number | null }
  | { kind: 'none'; reason: string };

/** `instances`: the InService instance of each member slot, by member name. */
export function chooseBackupSource(members: readonly Member[], report: EndpointStatusReport, instances: ReadonlyMap<string, string>): SourceChoice {
  const health = clusterHealth(members, report);
  if (health.leader === null || health.healthyVoters < health.quorum) {
    return { kind: 'none', reason: `no leader or no quorum (${health.healthyVoters}/${health.voters} healthy voters, quorum ${health.quorum}): a snapshot now could be stale` };
  }
  const candidates = report.statuses
    .filter((s) => s.leader === health.leader && !s.isLearner)
    .map((s) => ({ s, m: members.find((m) => m.id === s.memberId) }))
    .filter((c): c is { s: typeof c.s; m: Member } => c.m !== undefined && !c.m.isLearner && c.m.clientUrls.length > 0 && instances.has(c.m.name))
    .sort((a, b) => Number(a.s.isLeader) - Number(b.s.isLeader) || b.s.raftIndex - a.s.raftIndex || (a.m.name < b.m.name ? -1 : 1));
  const best = candidates[0];
  if (!best) return { kind: 'none', reason: 'no healthy voting member with a running instance in its slot' };
  return {
    kind: 'source', member: best.m.name, memberId: best.m.id, instanceId: instances.get(best.m.name)!, clientUrl: best.m.clientUrls[0]!,
    role: best.s.isLeader ? 'leader' : 'follower', revision: best.s.revision,
  };
}
