/**
 * The status of one cluster as an operator needs it, judged from one view (lib/domain/view.ts):
 * per member slot the ASG and its instance (lifecycle state), the etcd volume and where it is
 * attached, the etcd role and raft lag, the load balancer's view; the cluster's etcd health; the
 * newest backup; the certificates the members serve. Pure: no AWS, no I/O.
 *
 * `problems` lists what makes the cluster degraded (empty = healthy). A slot is judged by the one
 * "slot is whole" rule (`slotGaps`), the same the reconciler and the departure gate use. The text
 * form is the CLI's (cli/render/status.ts).
 */
import { hasNoLeader } from '../etcd/parsers';
import { assessHealth, type CertificateHealth } from './health';
import { judgeQuorum, type QuorumJudgement, slotGaps } from './judge';
import type { ClusterView } from './view';

export type EtcdRole = 'leader' | 'follower' | 'learner' | 'no-leader' | 'unreachable' | 'not-a-member';

export interface MemberStatus {
  member: string;
  az: string | null;
  asg: string;
  instanceId: string | null;
  /** Lifecycle state of the slot's instance(s), e.g. `InService`, `Pending:Wait`; null without one. */
  lifecycleState: string | null;
  volumeId: string | null;
  volumeState: string | null;
  volumeAttachedTo: string | null;
  etcd: EtcdRole;
  raftIndex: number | null;
  /** Raft entries behind the leader; null when unknown. */
  raftLag: number | null;
  /** Target health in the API server target group, or `not-registered` / `no-target-group`. */
  lb: string;
  /** A retirement holding this slot's terminate hook because leaving is not safe yet. */
  held: { instanceId: string; since: string; reason: string } | null;
  /** The slot came in without quorum: volume mounted, etcd stopped, waiting for a restore. */
  awaitingDr: { instanceId: string; since: string; hasData: boolean } | null;
  /** The etcd server version this member runs (its endpoint status); null when it did not answer. */
  version: string | null;
}

export interface ClusterStatus {
  cluster: string;
  at: string;
  healthy: boolean;
  problems: string[];
  etcd: {
    leader: string | null; voters: number; healthyVoters: number; quorum: number; quorumMargin: number; raftTerm: number | null; via: string | null;
    /** The one quorum rule's verdict (lib/domain/judge.ts): `unknown` when too few members answered to tell. */
    state: QuorumJudgement['state'];
    /** The cluster version (the lowest minor its members run; it moves up once every member runs the newer one); null when unknown. */
    clusterVersion: string | null;
  };
  backup: { key: string; takenAt: string; ageSec: number } | null | 'unknown';
  members: MemberStatus[];
  /**
   * The certificates members serve (client and peer URL), as read by the survey: the earliest to
   * expire (null when none could be read: plain http, no openssl on the master) and all of them,
   * earliest first. One expiring within 30 days is among the problems.
   */
  certificates: { earliest: CertificateHealth | null; all: CertificateHealth[] };
}

export interface StatusOptions {
  /** The newest backup older than this makes the cluster degraded (default 3600 s). */
  backupStaleAfterSec?: number;
}


/** What the status judge reads. */
export type StatusView = Pick<ClusterView, 'cluster' | 'at' | 'slots' | 'volumes' | 'targets' | 'etcd' | 'claims' | 'records'> & { backups: ClusterView['backups'] | null };

export function judgeStatus(view: StatusView, opts: StatusOptions = {}): ClusterStatus {
  const { etcd, at: now } = view;
  const health = assessHealth({
    members: etcd.members, status: etcd.status, alarms: etcd.alarms,
    leases: {}, components: [], now, quotaBytes: Number.MAX_SAFE_INTEGER, previous: null, certificates: etcd.certs,
  });
  const q = judgeQuorum(etcd, view);
  const problems = health.problems.map((p) => p.summary);
  // Quorum Keeper's blindness is a problem of its own, said as such (never "no quorum").
  if (q.state === 'unknown') problems.push(`Quorum Keeper cannot see whether etcd has quorum: ${q.why}`);
  if ('error' in view.records) problems.push(`${view.records.error} (held hooks, slots awaiting DR unknown)`);
  const records = 'bySlot' in view.records ? view.records.bySlot : {};
  const etcdMembers = etcd.members ?? [];
  const leaderStatus = etcd.status.statuses.find((s) => s.isLeader && !hasNoLeader(s));
  const members: MemberStatus[] = view.slots.map((m) => {
    const inst = m.instances.find((i) => i.instanceId === m.instanceId) ?? m.instances[0];
    const vol = view.volumes[m.member] ?? null;
    const em = etcdMembers.find((x) => x.id === view.claims[m.member]?.id);
    const st = em ? etcd.status.statuses.find((s) => s.memberId === em.id) : undefined;
    const role: EtcdRole = !etcd.members ? 'unreachable' : !em ? 'not-a-member' : !st ? 'unreachable' : hasNoLeader(st) ? 'no-leader'
      : st.isLeader ? 'leader' : st.isLearner || em.isLearner ? 'learner' : 'follower';
    const instanceId = m.instanceId ?? inst?.instanceId ?? null;
    const row: MemberStatus = {
      member: m.member, az: m.availabilityZones[0] ?? null, asg: m.asg, instanceId, lifecycleState: inst?.lifecycleState ?? null,
      volumeId: vol?.volumeId ?? null, volumeState: vol ? (vol.attachmentState ?? vol.volumeState) : null, volumeAttachedTo: vol?.attachedTo ?? null,
      etcd: role, raftIndex: st?.raftIndex ?? null, raftLag: st && leaderStatus ? Math.max(0, leaderStatus.raftIndex - st.raftIndex) : null,
      lb: !view.targets ? 'no-target-group' : instanceId ? (view.targets[instanceId] ?? 'not-registered') : 'not-registered',
      held: null, awaitingDr: null, version: st?.version ?? null,
    };
    const rec = records[m.member];
    if (rec?.held) {
      row.held = { instanceId: rec.held.instanceId, since: new Date(rec.held.since).toISOString(), reason: rec.held.reason };
      problems.push(`${m.member}: the terminate hook of ${rec.held.instanceId} is held (${Math.round(Math.max(0, now - rec.held.since) / 60_000)} min): ${rec.held.reason}`);
    }
    if (rec?.awaitingDr) {
      row.awaitingDr = { instanceId: rec.awaitingDr.instanceId, since: new Date(rec.awaitingDr.since).toISOString(), hasData: rec.awaitingDr.hasData };
      problems.push(`${m.member}: awaiting disaster recovery on ${rec.awaitingDr.instanceId} since ${row.awaitingDr.since} (volume ${rec.awaitingDr.hasData ? 'with its data' : 'blank'}, etcd stopped)`);
    }
    problems.push(...slotGaps(view, m, q));
    return row;
  });
  // A stray is a member no slot claims (by recorded ID, name or peer URL), not one named unlike a tag.
  const claimed = new Set(Object.values(view.claims).map((c) => c.id));
  for (const em of etcdMembers) {
    if (!claimed.has(em.id)) problems.push(`etcd member ${em.name || em.id} (${em.id}) is claimed by no master slot (stray member)`);
  }
  let backup: ClusterStatus['backup'] = 'unknown';
  if (view.backups && 'usable' in view.backups) {
    const newest = view.backups.usable.at(-1);
    for (const f of view.backups.futureDated) problems.push(`backup ${f.key} is future-dated (its key is after S3 stored it): not counted`);
    backup = newest ? { key: newest.key, takenAt: newest.takenAt.toISOString(), ageSec: Math.max(0, Math.round((now - newest.takenAt.getTime()) / 1000)) } : null;
    const stale = opts.backupStaleAfterSec ?? 3600;
    if (!backup) problems.push('no backup at all');
    else if (backup.ageSec > stale) problems.push(`newest backup is ${Math.round(backup.ageSec / 60)} min old (objective ${Math.round(stale / 60)} min)`);
  } else if (view.backups) {
    problems.push('backups could not be listed');
  }
  return {
    cluster: view.cluster, at: new Date(now).toISOString(), healthy: problems.length === 0, problems,
    etcd: {
      leader: health.leaderName, voters: health.voters, healthyVoters: health.healthyVoters, quorum: health.quorum, quorumMargin: health.quorumMargin,
      raftTerm: health.raftTerm, via: etcd.via?.member ?? null, clusterVersion: etcd.clusterVersion, state: q.state,
    },
    backup, members,
    certificates: { earliest: health.certificates[0] ?? null, all: health.certificates },
  };
}
