/**
 * `quorum-keeper doctor`: a preflight of everything Quorum Keeper relies on. Pure: no AWS, no
 * I/O. The flow (lib/flows/doctor.ts) gathers `DoctorFacts` (plain data); `judge` turns them into
 * one `Check` per rule (per master slot where the rule is per slot), each pass / warn / fail /
 * skip, and every warn or fail carries the exact fix — the AWS CLI command or the file to change,
 * with the real names filled in.
 *
 * The settings judged are the operator guide's (docs/operator-guide.md §1–2): one ASG per member
 * with min = max = desired = 1; a launch hook (HeartbeatTimeout 1800 s, DefaultResult ABANDON)
 * and a terminate hook (1800 s, CONTINUE); EC2 health checks, no target group attached to the
 * ASGs, retain on TerminateHookAbandon; the cluster and member tags (the cluster tag propagated to
 * the instances); one volume per member in its AZ; the target group on 6443 with a short
 * deregistration delay and TCP checks every 10 s × 3; the SSM agent and host.env on every master.
 */
import { patterns } from '../../validate';
import { claimMembers, type SlotIdentity } from '../identity';
import { type AsgFacts, type Check, type DoctorFacts } from './facts';
import { type CheckId, type Ctx, LAUNCHING, type Slot, TERMINATING, TITLES, type Verdict } from './rules';
import { asgPerMember, backupBucket, backupKey, etcdReachableCluster, etcdTls, stackFunctions, stackRules, strayMembers, targetGroup, tgDeregistrationDelay, tgHealthChecks, tgPort, volumeTags } from './cluster-checks';
import { asgCapacity, asgHealthCheck, asgLoadBalancer, asgRetention, asgTags, hookCheck, instanceTag, masterInstance, ssmAgent, volumeAz, volumeCount } from './slot-aws';
import { bootGuard, dataDir, etcdReachable, etcdVersion, hostEnv, marker, memberMapping } from './slot-etcd';

export * from './facts';
export { CHECK_IDS, type CheckId, DEREGISTRATION_DELAY_SEC, DRAIN_MARGIN_SEC, HEALTH_CHECK_INTERVAL_SEC, HEALTHY_THRESHOLD, HOOK_DEFAULT_RESULT, HOOK_HEARTBEAT_SEC, HOOK_NAMES, LAUNCHING, RECONCILE_EVERY_SEC, TERMINATING } from './rules';

// --- judge -------------------------------------------------------------------------------------

type ClusterRule = (c: Ctx) => Verdict;
type SlotRule = (c: Ctx, s: Slot) => Verdict;

/** The rules in report order: cluster-wide (`c`), per slot (`s`), or both (the cluster part first). */
const RULES: Array<{ id: CheckId; c?: ClusterRule; s?: SlotRule }> = [
  { id: 'asg-per-member', c: asgPerMember },
  { id: 'asg-capacity', s: asgCapacity },
  { id: 'launch-hook', s: hookCheck(LAUNCHING) },
  { id: 'terminate-hook', s: hookCheck(TERMINATING) },
  { id: 'asg-health-check', s: asgHealthCheck },
  { id: 'asg-load-balancer', s: asgLoadBalancer },
  { id: 'asg-retention', s: asgRetention },
  { id: 'asg-tags', s: asgTags },
  { id: 'master-instance', s: masterInstance },
  { id: 'instance-tag', s: instanceTag },
  { id: 'volume-count', s: volumeCount },
  { id: 'volume-az', s: volumeAz },
  { id: 'volume-tags', c: volumeTags },
  { id: 'target-group', c: targetGroup },
  { id: 'tg-port', c: tgPort },
  { id: 'tg-deregistration-delay', c: tgDeregistrationDelay },
  { id: 'tg-health-checks', c: tgHealthChecks },
  { id: 'ssm-agent', s: ssmAgent },
  { id: 'host-env', s: hostEnv },
  { id: 'etcd-reachable', c: etcdReachableCluster, s: etcdReachable },
  { id: 'etcd-tls', c: etcdTls },
  { id: 'etcd-version', s: etcdVersion },
  { id: 'member-mapping', c: strayMembers, s: memberMapping },
  { id: 'data-dir', s: dataDir },
  { id: 'marker', s: marker },
  { id: 'boot-guard', s: bootGuard },
  { id: 'backup-bucket', c: backupBucket },
  { id: 'backup-key', c: backupKey },
  { id: 'stack-functions', c: stackFunctions },
  { id: 'stack-rules', c: stackRules },
];

/**
 * The master slots: ASGs with a valid member tag that no other ASG shares (the others are what
 * `asg-per-member` reports), by member, each with its InService instance.
 */
export function masterSlots(asgs: readonly AsgFacts[]): Array<{ member: string; asg: AsgFacts; instanceId: string | null }> {
  const count = new Map<string, number>();
  for (const g of asgs) if (g.memberTag !== undefined) count.set(g.memberTag, (count.get(g.memberTag) ?? 0) + 1);
  return asgs
    .filter((g) => g.memberTag !== undefined && patterns.memberName.test(g.memberTag) && count.get(g.memberTag) === 1)
    .map((g) => ({ member: g.memberTag!, asg: g, instanceId: g.instances.find((i) => i.lifecycleState === 'InService')?.instanceId ?? null }))
    .sort((a, b) => (a.member < b.member ? -1 : 1));
}

function slotsOf(f: DoctorFacts): Slot[] {
  return masterSlots(f.asgs).map((s) => ({ ...s, volumes: f.volumes.filter((v) => v.memberTag === s.member), host: f.hosts[s.member] ?? null }));
}

/** What each slot claims its member by, as the flows do: recorded ID, member tag, its master's peer URL. */
function identitiesOf(f: DoctorFacts, slots: readonly Slot[]): SlotIdentity[] {
  return slots.map((s) => ({
    member: s.member, recordedId: f.recordedIds?.[s.member],
    ...(s.host?.status?.ok ? { peerUrl: s.host.status.peerUrl } : {}),
  }));
}

/** Every check, in report order (cluster-wide part of a rule first, then one per slot). */
export function judge(f: DoctorFacts): Check[] {
  const slots = slotsOf(f);
  const identities = identitiesOf(f, slots);
  const c: Ctx = { f, slots, identities, claims: f.etcd.members.length ? claimMembers(f.etcd.members, identities) : {} };
  const out: Check[] = [];
  for (const r of RULES) {
    const title = TITLES[r.id];
    if (r.c) out.push({ id: r.id, title, ...r.c(c) });
    if (r.s) for (const s of slots) out.push({ id: r.id, title, member: s.member, ...r.s(c, s) });
  }
  return out;
}

export interface DoctorSummary {
  pass: number;
  warn: number;
  fail: number;
  skip: number;
}

export function summarise(checks: readonly Check[]): DoctorSummary {
  const s: DoctorSummary = { pass: 0, warn: 0, fail: 0, skip: 0 };
  for (const x of checks) s[x.status] += 1;
  return s;
}
