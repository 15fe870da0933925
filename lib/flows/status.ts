/**
 * The status of one cluster as an operator needs it: per member slot the ASG and its
 * instance (lifecycle state), the etcd volume and where it is attached, the etcd role and raft
 * lag, the load balancer's view; the cluster's etcd health; the newest backup; the certificates
 * the members serve. Read-only.
 * `problems` lists what makes the cluster degraded (empty = healthy). The text form is the
 * CLI's (cli/render/status.ts).
 */
import type { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import type { EC2Client } from '@aws-sdk/client-ec2';
import { clusterVolumes as listClusterVolumes } from '../aws/ec2';
import type { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { type BackupStore, listBackups, usableBackups } from '../aws/backups';
import type { AwaitingDr, HeldHook, HeldHooks } from '../aws/held-hooks';
import { targetHealth } from '../aws/lb';
import { type Clock, wallNow } from '../clock';
import { assessHealth, type CertificateHealth } from '../domain/health';
import type { Claim } from '../domain/identity';
import { hasNoLeader } from '../etcd';
import type { HostScriptBundle } from '../host/command';
import { clusterMasters } from './cluster-masters';
import { type IdentityRead, slotClaims } from './slot-identity';
import type { HostFlowDeps } from './deps';
import { FlowRun } from './run';
import { surveyCluster } from './survey';

export interface StatusDeps extends Pick<IdentityRead, 'recordedIds'> {
  /** What the flows recorded per slot in the state table (absent: no state table). */
  held?: Pick<HeldHooks, 'get'>;
  awaitingDr?: Pick<AwaitingDr, 'get'>;
  asg: AutoScalingClient;
  ec2: EC2Client;
  elb: ElasticLoadBalancingV2Client;
  ssm: SSMClient;
  /** Needed only with `StatusOptions.store`. */
  s3?: S3Client;
  scripts: HostScriptBundle;
  clock: Clock;
  tags: HostFlowDeps['tags'];
  timings: HostFlowDeps['timings'];
}

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
  /** Where backups are; without it the backup column says `unknown`. */
  store?: BackupStore;
  /** The newest backup older than this makes the cluster degraded (default 3600 s). */
  backupStaleAfterSec?: number;
}

/** The slots' volumes by member tag (the last listed wins), with the attachment's state where there is one. */
export async function clusterVolumes(ec2: EC2Client, tags: StatusDeps['tags'], cluster: string): Promise<Map<string, { volumeId: string; state: string; attachedTo: string | null }>> {
  const out = new Map<string, { volumeId: string; state: string; attachedTo: string | null }>();
  for (const v of await listClusterVolumes(ec2, { tagCluster: tags.cluster, tagMember: tags.member, cluster })) {
    if (v.memberTag) out.set(v.memberTag, { volumeId: v.volumeId, state: v.attachmentState ?? v.state, attachedTo: v.attachedTo });
  }
  return out;
}

type SlotRecords = Map<string, { held: HeldHook | null; dr: Awaited<ReturnType<AwaitingDr['get']>> }>;

/** The state table's per-slot records (held hooks, DR); unreadable: none, and the problem said. */
async function slotRecords(deps: StatusDeps, cluster: string, slots: readonly string[], problems: string[]): Promise<SlotRecords> {
  const out: SlotRecords = new Map();
  try {
    await Promise.all(slots.map(async (member) => {
      const [held, dr] = await Promise.all([deps.held?.get(cluster, member) ?? null, deps.awaitingDr?.get(cluster, member) ?? null]);
      out.set(member, { held, dr });
    }));
  } catch (err) {
    problems.push(`the state table could not be read (held hooks, slots awaiting DR unknown): ${err instanceof Error ? err.message : String(err)}`);
  }
  return out;
}

export async function clusterStatus(deps: StatusDeps, cluster: string, opts: StatusOptions = {}): Promise<ClusterStatus> {
  const [masters, volumes, lb] = await Promise.all([
    clusterMasters(deps.asg, deps.tags, cluster), clusterVolumes(deps.ec2, deps.tags, cluster), targetHealth(deps.elb, deps.tags.cluster, cluster),
  ]);
  const now = await wallNow(deps.clock); // server time, learnt from the answers just read
  const candidates = masters.filter((m) => m.instanceId).map((m) => ({ member: m.member, instanceId: m.instanceId! }));
  const r = new FlowRun(deps, { owner: 'status' });
  const [{ survey }, backups] = await Promise.all([
    surveyCluster(deps.ssm, deps.scripts, candidates, r.runOpts(60, { executionTimeoutSec: 60 }), [], { certs: true }),
    opts.store && deps.s3 ? listBackups(deps.s3, opts.store, cluster).then((l) => l, () => null) : Promise.resolve(undefined),
  ]);
  const health = assessHealth({
    members: survey?.members?.members ?? null, status: survey?.status ?? { statuses: [], unreachable: [] }, alarms: survey?.alarms ?? null,
    leases: {}, components: [], now, quotaBytes: Number.MAX_SAFE_INTEGER, previous: null, certificates: survey?.certs ?? [],
  });
  const problems = health.problems.map((p) => p.summary);
  const etcdMembers = survey?.members?.members ?? [];
  const leaderStatus = survey?.status.statuses.find((s) => s.isLeader && !hasNoLeader(s));

  // Which member each slot is, by identity (etcd names need not be the slot tags).
  const [claims, records] = await Promise.all([
    survey?.members ? slotClaims(deps, cluster, masters, etcdMembers, { instanceId: survey.instanceId, peerUrl: survey.local.peerUrl }, r.runOpts(60)) : Promise.resolve({} as Record<string, Claim>),
    slotRecords(deps, cluster, masters.map((m) => m.member), problems),
  ]);
  const members: MemberStatus[] = masters.map((m) => {
    const inst = m.instances.find((i) => i.instanceId === m.instanceId) ?? m.instances[0];
    const vol = volumes.get(m.member) ?? null;
    const em = etcdMembers.find((x) => x.id === claims[m.member]?.id);
    const st = em ? survey?.status.statuses.find((s) => s.memberId === em.id) : undefined;
    const etcd: EtcdRole = !survey?.members ? 'unreachable' : !em ? 'not-a-member' : !st ? 'unreachable' : hasNoLeader(st) ? 'no-leader'
      : st.isLeader ? 'leader' : st.isLearner || em.isLearner ? 'learner' : 'follower';
    const instanceId = m.instanceId ?? inst?.instanceId ?? null;
    const row: MemberStatus = {
      member: m.member, az: m.availabilityZones[0] ?? null, asg: m.asg, instanceId, lifecycleState: inst?.lifecycleState ?? null,
      volumeId: vol?.volumeId ?? null, volumeState: vol?.state ?? null, volumeAttachedTo: vol?.attachedTo ?? null,
      etcd, raftIndex: st?.raftIndex ?? null, raftLag: st && leaderStatus ? Math.max(0, leaderStatus.raftIndex - st.raftIndex) : null,
      lb: !lb ? 'no-target-group' : instanceId ? (lb.get(instanceId) ?? 'not-registered') : 'not-registered',
      held: null, awaitingDr: null, version: st?.version ?? null,
    };
    const rec = records.get(m.member);
    if (rec?.held) {
      row.held = { instanceId: rec.held.instanceId, since: new Date(rec.held.since).toISOString(), reason: rec.held.reason };
      problems.push(`${m.member}: the terminate hook of ${rec.held.instanceId} is held (${Math.round(Math.max(0, now - rec.held.since) / 60_000)} min): ${rec.held.reason}`);
    }
    if (rec?.dr) {
      row.awaitingDr = { instanceId: rec.dr.instanceId, since: new Date(rec.dr.since).toISOString(), hasData: rec.dr.hasData };
      problems.push(`${m.member}: awaiting disaster recovery on ${rec.dr.instanceId} since ${row.awaitingDr.since} (volume ${rec.dr.hasData ? 'with its data' : 'blank'}, etcd stopped)`);
    }
    if (!m.instanceId) problems.push(`${m.member}: no InService instance in ${m.asg}${inst ? ` (${inst.instanceId} is ${inst.lifecycleState})` : ''}`);
    if (!vol) problems.push(`${m.member}: no etcd volume tagged for it`);
    else if (m.instanceId && vol.attachedTo !== m.instanceId) problems.push(`${m.member}: volume ${vol.volumeId} is ${vol.attachedTo ? `attached to ${vol.attachedTo}` : vol.state}, not to ${m.instanceId}`);
    if (survey?.members && !['leader', 'follower'].includes(etcd)) problems.push(`${m.member}: etcd ${etcd}`);
    if (row.lb !== 'healthy') problems.push(`${m.member}: load balancer says ${row.lb}`);
    return row;
  });
  // A stray is a member no slot claims (by recorded ID, name or peer URL), not one named unlike a tag.
  const claimed = new Set(Object.values(claims).map((c) => c.id));
  for (const em of etcdMembers) {
    if (!claimed.has(em.id)) problems.push(`etcd member ${em.name || em.id} (${em.id}) is claimed by no master slot (stray member)`);
  }
  let backup: ClusterStatus['backup'] = 'unknown';
  if (backups) {
    const { usable, futureDated } = usableBackups(backups, now);
    const newest = usable.at(-1);
    for (const f of futureDated) problems.push(`backup ${f.key} is future-dated (its key is after S3 stored it): not counted`);
    backup = newest ? { key: newest.key, takenAt: newest.takenAt.toISOString(), ageSec: Math.max(0, Math.round((now - newest.takenAt.getTime()) / 1000)) } : null;
    const stale = opts.backupStaleAfterSec ?? 3600;
    if (!backup) problems.push('no backup at all');
    else if (backup.ageSec > stale) problems.push(`newest backup is ${Math.round(backup.ageSec / 60)} min old (objective ${Math.round(stale / 60)} min)`);
  } else if (backups === null) {
    problems.push('backups could not be listed');
  }
  return {
    cluster, at: new Date(now).toISOString(), healthy: problems.length === 0, problems,
    etcd: {
      leader: health.leaderName, voters: health.voters, healthyVoters: health.healthyVoters, quorum: health.quorum, quorumMargin: health.quorumMargin,
      raftTerm: health.raftTerm, via: survey ? survey.member : null, clusterVersion: survey?.local.clusterVersion ?? null,
    },
    backup, members,
    certificates: { earliest: health.certificates[0] ?? null, all: health.certificates },
  };
}
