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
import { APISERVER_PORT } from '../host/layout';
import { patterns } from '../validate';
import { type Claim, claimMembers, type SlotIdentity, unclaimed } from './identity';
import { judgeJoin, parseEtcdVersion } from './etcd-version';
import { assessCertificates, CERT_WARN_DAYS, type ServedCertificate } from './health';

export type CheckStatus = 'pass' | 'warn' | 'fail' | 'skip';

export interface Check {
  id: string;
  title: string;
  status: CheckStatus;
  detail: string;
  /** The exact fix, for a warn or a fail. */
  fix?: string;
  /** The master slot (member tag) the check is about; absent for a cluster-wide check. */
  member?: string;
}

// --- the facts ---------------------------------------------------------------------------------

export type Transition = 'autoscaling:EC2_INSTANCE_LAUNCHING' | 'autoscaling:EC2_INSTANCE_TERMINATING';

export interface HookFacts {
  name: string;
  transition: string;
  heartbeatTimeoutSec: number;
  defaultResult: string;
}

export interface AsgFacts {
  name: string;
  /** The member tag's value (undefined: no member tag). */
  memberTag: string | undefined;
  /** PropagateAtLaunch of the cluster and member tags (false when the tag is absent). */
  clusterTagPropagated: boolean;
  memberTagPropagated: boolean;
  min: number;
  max: number;
  desired: number;
  availabilityZones: string[];
  /** The subnets the ASG launches into, with their AZ (null: the subnet was not found). */
  subnets: Array<{ subnetId: string; az: string | null }>;
  healthCheckType: string;
  healthCheckGracePeriodSec: number;
  /** Target groups, classic load balancers and other traffic sources attached to the ASG. */
  targetGroupArns: string[];
  loadBalancerNames: string[];
  /** InstanceLifecyclePolicy.RetentionTriggers.TerminateHookAbandon (null: not set). */
  terminateHookAbandon: string | null;
  hooks: HookFacts[];
  instances: Array<{ instanceId: string; lifecycleState: string }>;
}

export interface VolumeFacts {
  volumeId: string;
  az: string;
  state: string;
  memberTag: string | undefined;
  /** The instance it is attached (or attaching) to, and as which device. */
  attachedTo: string | null;
  device: string | null;
}

export interface TargetGroupFacts {
  arn: string;
  name: string;
  port: number | null;
  protocol: string | null;
  deregistrationDelaySec: number;
  healthCheckIntervalSec: number | null;
  healthyThreshold: number | null;
}

export interface InstanceFacts {
  instanceId: string;
  state: string;
  tags: Record<string, string>;
  /** SSM's PingStatus (`Online`, `ConnectionLost`, `Inactive`), or `not-registered`. */
  agent: string;
}

/** `etcd-member.sh status` on the master: host.env read and valid, this host's URLs and etcd. */
export type HostStatusFacts =
  | {
    ok: true; peerUrl: string; clientUrl: string; running: boolean; healthy: boolean;
    etcdVersion: string | null; serverVersion: string | null; clusterVersion: string | null;
  }
  | { ok: false; error: string };

/** `etcd-mount.sh --inspect` on the master (read-only). */
export type InspectFacts =
  | {
    ok: true; volumeId: string; device: string | null; mountedDevice: string | null; onVolume: boolean; mountPoint: string; dataDir: string; hasData: boolean;
    marker: { cluster: string; member: string; volume: string; memberId: string } | null;
  }
  | { ok: false; error: string };

export interface HostFacts {
  instanceId: string;
  /** null: not asked (no SSM agent online). */
  status: HostStatusFacts | null;
  /** null: not asked (agent offline, or no single volume to inspect). */
  inspect: InspectFacts | null;
}

export interface EtcdMemberFacts {
  id: string;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  isLearner: boolean;
}

export interface EtcdFacts {
  /** The slot whose master answered the survey; null when none did. */
  via: string | null;
  /** Whether the member list was read through the leader (a quorum answered). */
  quorum: boolean;
  /** Why other masters were not used (SSM agent offline, survey failed …). */
  tried: string[];
  members: EtcdMemberFacts[];
  /** Every member that answered endpoint status (over TLS, from the surveying master). */
  statuses: Array<{ memberId: string; endpoint: string; version: string; isLeader: boolean }>;
  unreachable: Array<{ endpoint: string; error: string }>;
  clusterVersion: string | null;
  /** The certificates members serve; null when none could be read. */
  certs: ServedCertificate[] | null;
  /** What the survey could not read (for the TLS check). */
  errors: string[];
}

export interface BackupFacts {
  bucket: string;
  reachable: { ok: true } | { ok: false; error: string };
  /** The bucket's default encryption (null: none set); `error` when it could not be read. */
  encryption: { algorithm: string; keyId: string | null } | null | { error: string };
  /** The key new backups are encrypted with when it is not the bucket's (--kms-key-id). */
  kmsKeyId: string | null;
  keys: Array<{ keyId: string; arn: string | null; state: string | null; error?: string }>;
}

export interface StackFacts {
  name: string;
  /** The stack could not be read (does not exist, access denied). */
  error?: string;
  functions: Array<{ logicalId: string; physicalId: string | null; resourceStatus: string; found: boolean | null; error?: string }>;
  rules: Array<{ logicalId: string; physicalId: string | null; resourceStatus: string; state: string | null; error?: string }>;
}

export interface DoctorFacts {
  cluster: string;
  tags: { cluster: string; member: string };
  /** Epoch ms (certificate expiry). */
  now: number;
  /** Every ASG carrying the cluster tag. */
  asgs: AsgFacts[];
  /** Every volume carrying the cluster tag (deleted ones left out). */
  volumes: VolumeFacts[];
  /** Every target group carrying the cluster tag. */
  targetGroups: TargetGroupFacts[];
  /** The slots' instances, by ID. */
  instances: Record<string, InstanceFacts>;
  /** Per slot (member tag) with an InService instance: what its master said. */
  hosts: Record<string, HostFacts>;
  etcd: EtcdFacts;
  /** The member IDs recorded per slot in the state table; null without a state table. */
  recordedIds: Record<string, string> | null;
  /** null: no backup bucket given. */
  backup: BackupFacts | null;
  /** null: no stack given. */
  stack: StackFacts | null;
}

// --- what the operator guide asks for ----------------------------------------------------------

export const LAUNCHING: Transition = 'autoscaling:EC2_INSTANCE_LAUNCHING';
export const TERMINATING: Transition = 'autoscaling:EC2_INSTANCE_TERMINATING';
/** The hook names the guide's set-up uses (any name works: hooks are found by transition). */
export const HOOK_NAMES: Record<Transition, string> = { [LAUNCHING]: 'quorum-keeper-launch', [TERMINATING]: 'quorum-keeper-terminate' };
export const HOOK_DEFAULT_RESULT: Record<Transition, 'ABANDON' | 'CONTINUE'> = { [LAUNCHING]: 'ABANDON', [TERMINATING]: 'CONTINUE' };
/** The guide's HeartbeatTimeout for both hooks. */
export const HOOK_HEARTBEAT_SEC = 1800;
/**
 * The reconciler's default schedule (`reconcileSchedule`, rate(5 minutes)): it heartbeats held
 * terminate hooks, so a timeout under two runs lets one late run expire a hold into CONTINUE.
 */
export const RECONCILE_EVERY_SEC = 300;
/** The retirement waits the deregistration delay plus this before it stops etcd (DRAIN_MARGIN_SEC, lib/aws/lb.ts). */
export const DRAIN_MARGIN_SEC = 60;
/** "30–60 s is plenty for API clients to reconnect". */
export const DEREGISTRATION_DELAY_SEC = 60;
/** TCP checks every 10 s, healthy after 3: a new master is healthy 30 s after registration. */
export const HEALTH_CHECK_INTERVAL_SEC = 10;
export const HEALTHY_THRESHOLD = 3;

const TITLES = {
  'asg-per-member': 'one ASG per member',
  'asg-capacity': 'ASG min = max = desired = 1',
  'launch-hook': 'launch lifecycle hook',
  'terminate-hook': 'terminate lifecycle hook',
  'asg-health-check': 'ASG health check type',
  'asg-load-balancer': 'no load balancer attached to the ASG',
  'asg-retention': 'retain on TerminateHookAbandon',
  'asg-tags': 'ASG tags propagated',
  'master-instance': 'InService master',
  'instance-tag': 'cluster tag on the master',
  'volume-count': 'one etcd volume per member',
  'volume-az': "volume in its ASG's AZ",
  'volume-tags': 'every cluster volume is a member\'s',
  'target-group': 'API server target group',
  'tg-port': 'target group port 6443',
  'tg-deregistration-delay': 'deregistration delay',
  'tg-health-checks': 'target group health checks',
  'ssm-agent': 'SSM agent online',
  'host-env': 'host.env present and valid',
  'etcd-reachable': 'etcd reachable over TLS',
  'etcd-tls': 'etcd mutual TLS and certificates',
  'etcd-version': 'etcd version',
  'member-mapping': 'member ↔ slot mapping',
  'data-dir': 'data dir on the tagged volume',
  marker: 'volume marker',
  'backup-bucket': 'backup bucket',
  'backup-key': 'backup KMS key',
  'stack-functions': 'stack functions',
  'stack-rules': 'stack rules enabled',
} as const;

export type CheckId = keyof typeof TITLES;
/** Every check, in the order `judge` reports them. */
export const CHECK_IDS = Object.keys(TITLES) as CheckId[];

type Verdict = Omit<Check, 'id' | 'title' | 'member'>;
const pass = (detail: string): Verdict => ({ status: 'pass', detail });
const skip = (detail: string): Verdict => ({ status: 'skip', detail });
const warn = (detail: string, fix: string): Verdict => ({ status: 'warn', detail, fix });
const fail = (detail: string, fix: string): Verdict => ({ status: 'fail', detail, fix });

/** The worst of several verdicts (fail > warn > pass > skip); details and fixes of that status joined. */
function worst(vs: readonly Verdict[], passDetail: string): Verdict {
  for (const status of ['fail', 'warn'] as const) {
    const bad = vs.filter((v) => v.status === status);
    if (bad.length) return { status, detail: bad.map((v) => v.detail).join('; '), fix: bad.map((v) => v.fix).filter(Boolean).join('; ') };
  }
  return pass(passDetail);
}

/** A master slot: an ASG with a valid member tag no other ASG shares. */
interface Slot {
  member: string;
  asg: AsgFacts;
  /** Its InService instance. */
  instanceId: string | null;
  volumes: VolumeFacts[];
  host: HostFacts | null;
}

interface Ctx {
  f: DoctorFacts;
  slots: Slot[];
  /** What each slot claims its member by: recorded ID, member tag, its master's peer URL. */
  identities: SlotIdentity[];
  /** The slot → member ID claims, as the flows decide them (empty when etcd did not answer). */
  claims: Record<string, Claim>;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
const tagArg = (key: string, value: string) => `Key=${key},Value=${value}`;
const asgTagArg = (asg: string, key: string, value: string) => `ResourceId=${asg},ResourceType=auto-scaling-group,Key=${key},Value=${value},PropagateAtLaunch=true`;
const onHost = (instanceId: string, what: string) => `on ${instanceId}, as root (host/ of this repository): ${what}`;
const terminateCmd = (instanceId: string) => `aws autoscaling terminate-instance-in-auto-scaling-group --instance-id ${instanceId} --no-should-decrement-desired-capacity`;
const reconcileCmd = (c: string) => `quorum-keeper reconcile --cluster ${c} --state-table <StateTableName>`;

// --- per-cluster checks ------------------------------------------------------------------------

function asgPerMember(c: Ctx): Verdict {
  const { f } = c;
  if (f.asgs.length === 0) {
    return fail(`no Auto Scaling group carries ${f.tags.cluster}=${f.cluster}`, `tag each master ASG: aws autoscaling create-or-update-tags --tags ${asgTagArg('<master ASG>', f.tags.cluster, f.cluster)} ${asgTagArg('<master ASG>', f.tags.member, '<member, e.g. etcd-a>')}`);
  }
  const bad: Verdict[] = [];
  for (const g of f.asgs) {
    if (g.memberTag === undefined || !patterns.memberName.test(g.memberTag)) {
      const what = g.memberTag === undefined ? `has no ${f.tags.member} tag` : `has an invalid ${f.tags.member} tag ${JSON.stringify(g.memberTag)} (lowercase letters, digits, dashes, 1–63)`;
      bad.push(fail(`${g.name} is tagged for ${f.cluster} but ${what}: it is no slot, and Quorum Keeper leaves it alone`,
        `aws autoscaling create-or-update-tags --tags ${asgTagArg(g.name, f.tags.member, '<its member, e.g. etcd-a>')}`));
    }
  }
  const byMember = new Map<string, string[]>();
  for (const g of f.asgs) if (g.memberTag !== undefined && patterns.memberName.test(g.memberTag)) byMember.set(g.memberTag, [...(byMember.get(g.memberTag) ?? []), g.name]);
  for (const [member, names] of byMember) {
    if (names.length > 1) {
      bad.push(fail(`${names.join(' and ')} are both tagged ${f.tags.member}=${member}: one member, one ASG`,
        `give each master ASG its own member, e.g. aws autoscaling create-or-update-tags --tags ${asgTagArg(names[1]!, f.tags.member, '<its own member>')}`));
    }
  }
  return worst(bad, `${plural(c.slots.length, 'master ASG')}, one per member: ${c.slots.map((s) => `${s.member} (${s.asg.name})`).join(', ')}`);
}

function volumeTags(c: Ctx): Verdict {
  const { f } = c;
  const members = new Set(c.slots.map((s) => s.member));
  const odd = f.volumes.filter((v) => v.memberTag === undefined || !members.has(v.memberTag));
  if (odd.length === 0) return pass(`${plural(f.volumes.length, 'volume')} tagged ${f.tags.cluster}=${f.cluster}, each a slot's`);
  return worst(odd.map((v) => warn(
    `${v.volumeId} (${v.az}${v.attachedTo ? `, attached to ${v.attachedTo}` : ''}) carries ${f.tags.cluster}=${f.cluster} but ${v.memberTag === undefined ? `no ${f.tags.member} tag` : `${f.tags.member}=${v.memberTag}, which no master ASG has`}`,
    `if it is a member's volume: aws ec2 create-tags --resources ${v.volumeId} --tags ${tagArg(f.tags.member, '<its member>')}; if not: aws ec2 delete-tags --resources ${v.volumeId} --tags Key=${f.tags.cluster}`,
  )), '');
}

function targetGroup(c: Ctx): Verdict {
  const { f } = c;
  if (f.targetGroups.length === 0) {
    return fail(`no target group carries ${f.tags.cluster}=${f.cluster}: replaced masters are never registered with the load balancer, and retiring ones never drained`,
      `aws elbv2 add-tags --resource-arns <your API server target group ARN> --tags ${tagArg(f.tags.cluster, f.cluster)}`);
  }
  return pass(`${f.targetGroups.map((t) => t.name).join(', ')} (${f.targetGroups.length === 1 ? 'tagged' : 'each tagged; masters are registered in all'})`);
}

function tgPort(c: Ctx): Verdict {
  const tgs = c.f.targetGroups;
  if (tgs.length === 0) return skip('no target group');
  return worst(tgs.filter((t) => t.port !== APISERVER_PORT).map((t) => fail(
    `${t.name} forwards to port ${t.port ?? 'none'}, not kube-apiserver's ${APISERVER_PORT}`,
    `a target group's port cannot be changed: aws elbv2 create-target-group --name ${t.name}-${APISERVER_PORT} --protocol ${t.protocol ?? 'TCP'} --port ${APISERVER_PORT} --vpc-id <VPC> --health-check-interval-seconds ${HEALTH_CHECK_INTERVAL_SEC} --healthy-threshold-count ${HEALTHY_THRESHOLD} --tags ${tagArg(c.f.tags.cluster, c.f.cluster)}; point the listener at it, then aws elbv2 remove-tags --resource-arns ${t.arn} --tag-keys ${c.f.tags.cluster}`,
  )), tgs.map((t) => `${t.name} on ${t.port}`).join(', '));
}

function minTerminateHeartbeat(c: Ctx): number | null {
  const t = c.slots.flatMap((s) => s.asg.hooks.filter((h) => h.transition === TERMINATING).map((h) => h.heartbeatTimeoutSec));
  return t.length ? Math.min(...t) : null;
}

function tgDeregistrationDelay(c: Ctx): Verdict {
  const tgs = c.f.targetGroups;
  if (tgs.length === 0) return skip('no target group');
  const hb = minTerminateHeartbeat(c);
  const cmd = (t: TargetGroupFacts) => `aws elbv2 modify-target-group-attributes --target-group-arn ${t.arn} --attributes Key=deregistration_delay.timeout_seconds,Value=${DEREGISTRATION_DELAY_SEC}`;
  return worst(tgs.map((t) => {
    const drain = t.deregistrationDelaySec + DRAIN_MARGIN_SEC;
    if (hb !== null && drain >= hb) {
      return fail(`${t.name}: a retiring master drains ${t.deregistrationDelaySec} s (+${DRAIN_MARGIN_SEC} s), not under the terminate hook's ${hb} s heartbeat timeout`, cmd(t));
    }
    if (t.deregistrationDelaySec > DEREGISTRATION_DELAY_SEC) {
      return warn(`${t.name}: ${t.deregistrationDelaySec} s — every retirement drains that long (kube-apiserver holds watches open); ${DEREGISTRATION_DELAY_SEC} s is plenty for API clients to reconnect`, cmd(t));
    }
    return pass('');
  }), tgs.map((t) => `${t.name}: ${t.deregistrationDelaySec} s`).join(', '));
}

function tgHealthChecks(c: Ctx): Verdict {
  const tgs = c.f.targetGroups;
  if (tgs.length === 0) return skip('no target group');
  const want = HEALTH_CHECK_INTERVAL_SEC * HEALTHY_THRESHOLD;
  return worst(tgs.map((t) => {
    const interval = t.healthCheckIntervalSec ?? 30;
    const threshold = t.healthyThreshold ?? 5;
    return interval * threshold > want
      ? warn(`${t.name}: checks every ${interval} s, healthy after ${threshold}: a replaced master stays out of the group (and its launch hook open) ${interval * threshold} s after registration`,
        `aws elbv2 modify-target-group --target-group-arn ${t.arn} --health-check-interval-seconds ${HEALTH_CHECK_INTERVAL_SEC} --healthy-threshold-count ${HEALTHY_THRESHOLD}`)
      : pass('');
  }), tgs.map((t) => `${t.name}: every ${t.healthCheckIntervalSec ?? 30} s × ${t.healthyThreshold ?? 5}`).join(', '));
}

function etcdReachableCluster(c: Ctx): Verdict {
  const e = c.f.etcd;
  if (e.via === null || e.members.length === 0) {
    return fail(`no master's etcd answered: ${e.tried.join('; ') || 'no InService master to ask'}`,
      `quorum-keeper status --cluster ${c.f.cluster} shows which members are down; with a majority lost for good, follow the disaster-recovery walk-through (docs/operator-guide.md §6)`);
  }
  if (!e.quorum) {
    return fail(`etcd answered through ${e.via} without quorum (its own view of ${e.members.length} members)`,
      `quorum-keeper status --cluster ${c.f.cluster} names the members down; bring them back (their ASGs replace terminated masters), or restore (docs/operator-guide.md §6)`);
  }
  const leader = e.statuses.find((s) => s.isLeader);
  const name = leader ? e.members.find((m) => m.id === leader.memberId)?.name : undefined;
  return pass(`through ${e.via}: ${e.members.length} members, leader ${name ?? leader?.memberId ?? 'unknown'}, ${e.statuses.length} answered`);
}

function etcdTls(c: Ctx): Verdict {
  const e = c.f.etcd;
  if (e.members.length === 0) return skip('etcd did not answer');
  const plain = e.members.flatMap((m) => [...m.clientUrls, ...m.peerUrls].filter((u) => !u.startsWith('https://')).map((u) => `${m.name || m.id} ${u}`));
  const vs: Verdict[] = [];
  if (plain.length) {
    vs.push(warn(`plain http: ${plain.join(', ')} — production clusters run mutual TLS on client and peer URLs`,
      'set QK_ETCD_SCHEME=https and the five TLS paths in /etc/quorum-keeper/host.env on every master (docs/host-scripts.md#mutual-tls), then replace the masters one at a time'));
  }
  if (e.certs === null) {
    if (!plain.length) vs.push(warn(`the certificates the members serve could not be read${e.errors.length ? `: ${e.errors.join('; ')}` : ''}`, `install openssl on the masters (the survey reads each member's certificate with openssl s_client), then run doctor again`));
  } else {
    const { certificates } = assessCertificates(e.certs, c.f.now);
    const renew = (m: string, k: string) => `renew ${m}'s ${k} certificate: kubeadm certs renew ${k === 'client' ? 'etcd-server' : 'etcd-peer'} on its master, or from your PKI into the file host.env names (${k === 'client' ? 'QK_ETCD_CERT' : 'QK_ETCD_PEER_CERT'})`;
    for (const cert of certificates) {
      if (cert.daysLeft < 0) vs.push(fail(`${cert.member}'s ${cert.kind} certificate (${cert.url}) expired ${cert.notAfter}`, renew(cert.member, cert.kind)));
      else if (cert.daysLeft < CERT_WARN_DAYS) vs.push(warn(`${cert.member}'s ${cert.kind} certificate (${cert.url}) expires in ${Math.floor(cert.daysLeft)} d`, renew(cert.member, cert.kind)));
    }
    const unread = e.errors.filter((x) => x.startsWith('certificates not read'));
    if (unread.length) vs.push(warn(unread.join('; '), 'check that those members answer TLS on their URLs (quorum-keeper status names members down)'));
    const first = certificates[0];
    return worst(vs, `mutual TLS on every client and peer URL; ${certificates.length} certificates read${first ? `, earliest expires in ${Math.floor(first.daysLeft)} d (${first.member} ${first.kind})` : ''}`);
  }
  return worst(vs, 'mutual TLS on every client and peer URL');
}

function strayMembers(c: Ctx): Verdict {
  const e = c.f.etcd;
  if (e.members.length === 0) return skip('etcd did not answer');
  const strays = unclaimed(e.members, c.identities, c.claims).members.map((id) => e.members.find((m) => m.id === id)!);
  return worst(strays.map((m) => fail(
    `etcd member ${m.name || '(unstarted)'} (${m.id}, ${m.peerUrls.join(',')}) is claimed by no master slot: the reconciler treats it as a stray`,
    `if it is a master's member, tag that master's ASG with its slot (aws autoscaling create-or-update-tags --tags ${asgTagArg('<its ASG>', c.f.tags.member, m.name || '<member>')}); if it is unwanted, remove it: etcdctl member remove ${m.id}`,
  )), `every etcd member is claimed by exactly one slot: ${c.slots.map((s) => `${s.member} → ${c.claims[s.member]?.id ?? '-'} (${c.claims[s.member]?.basis ?? '-'})`).join(', ')}`);
}

function backupBucket(c: Ctx): Verdict {
  const b = c.f.backup;
  if (!b) return skip('no backup bucket given (--bucket or QK_BACKUP_BUCKET; the stack output BackupBucketName)');
  if (!b.reachable.ok) return fail(`s3://${b.bucket}: ${b.reachable.error}`, `check the name (the stack output BackupBucketName) and that your credentials may s3:ListBucket it: aws s3api head-bucket --bucket ${b.bucket}`);
  if ('error' in (b.encryption ?? {})) {
    return fail(`s3://${b.bucket}: its encryption could not be read: ${(b.encryption as { error: string }).error}`, `aws s3api get-bucket-encryption --bucket ${b.bucket} (needs s3:GetEncryptionConfiguration)`);
  }
  const enc = b.encryption as { algorithm: string; keyId: string | null } | null;
  const kmsFix = `aws s3api put-bucket-encryption --bucket ${b.bucket} --server-side-encryption-configuration '{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"aws:kms","KMSMasterKeyID":"<the stack output BackupKeyArn>"},"BucketKeyEnabled":true}]}'`;
  if (!enc || !enc.algorithm.startsWith('aws:kms')) {
    if (b.kmsKeyId) return pass(`s3://${b.bucket} reachable; backups encrypted with ${b.kmsKeyId} (--kms-key-id), the bucket default is ${enc?.algorithm ?? 'none'}`);
    return fail(`s3://${b.bucket} has no SSE-KMS default encryption (${enc ? enc.algorithm : 'none'}): backups would not be encrypted with a KMS key`, kmsFix);
  }
  return pass(`s3://${b.bucket} reachable, SSE-KMS by default${enc.keyId ? ` with ${enc.keyId}` : ' (aws/s3 key)'}`);
}

function backupKey(c: Ctx): Verdict {
  const b = c.f.backup;
  if (!b) return skip('no backup bucket given');
  if (b.keys.length === 0) return skip(b.reachable.ok ? 'no customer managed key named by the bucket or --kms-key-id' : 'the bucket could not be read');
  return worst(b.keys.map((k) => {
    if (k.error) return fail(`KMS key ${k.keyId}: ${k.error}`, `check the key exists and your credentials may kms:DescribeKey it: aws kms describe-key --key-id ${k.keyId}`);
    if (k.state === 'Enabled') return pass('');
    const fix = k.state === 'PendingDeletion' ? `aws kms cancel-key-deletion --key-id ${k.keyId} && aws kms enable-key --key-id ${k.keyId}` : `aws kms enable-key --key-id ${k.keyId}`;
    return fail(`KMS key ${k.keyId} is ${k.state ?? 'in an unknown state'}: backups cannot be uploaded or restored`, fix);
  }), b.keys.map((k) => `${k.arn ?? k.keyId} Enabled`).join(', '));
}

function stackFunctions(c: Ctx): Verdict {
  const s = c.f.stack;
  if (!s) return skip('no stack given (--stack or QK_STACK_NAME)');
  if (s.error) return fail(`stack ${s.name}: ${s.error}`, `check the name and region (npx osls info --stage <stage> --region <region> prints it), or deploy: npx osls deploy --stage <stage> --region <region> --param "clusters=${c.f.cluster}"`);
  if (s.functions.length === 0) return fail(`stack ${s.name} has no Lambda functions: is it Quorum Keeper's?`, `deploy Quorum Keeper: npx osls deploy --stage <stage> --region <region> --param "clusters=${c.f.cluster}"`);
  const redeploy = `redeploy the stack: npx osls deploy --stage <stage> --region <region> --param "clusters=${c.f.cluster}"`;
  return worst(s.functions.map((fn) => {
    if (!/_COMPLETE$/.test(fn.resourceStatus) || fn.resourceStatus.startsWith('DELETE')) return fail(`${fn.logicalId} is ${fn.resourceStatus}`, redeploy);
    if (fn.found === false) return fail(`${fn.logicalId} (${fn.physicalId ?? '?'}) is gone from Lambda${fn.error ? `: ${fn.error}` : ''}`, redeploy);
    if (fn.found === null) return warn(`${fn.logicalId} (${fn.physicalId ?? '?'}) could not be read${fn.error ? `: ${fn.error}` : ''}`, `aws lambda get-function --function-name ${fn.physicalId ?? fn.logicalId} (needs lambda:GetFunction)`);
    return pass('');
  }), `${plural(s.functions.length, 'function')} of ${s.name} present: ${s.functions.map((fn) => fn.physicalId ?? fn.logicalId).join(', ')}`);
}

function stackRules(c: Ctx): Verdict {
  const s = c.f.stack;
  if (!s) return skip('no stack given (--stack or QK_STACK_NAME)');
  if (s.error) return skip(`stack ${s.name} could not be read`);
  if (s.rules.length === 0) return fail(`stack ${s.name} has no EventBridge rules: no lifecycle event or schedule reaches the functions`, `redeploy the stack: npx osls deploy --stage <stage> --region <region> --param "clusters=${c.f.cluster}"`);
  return worst(s.rules.map((r) => {
    const [bus, name] = r.physicalId?.includes('|') ? r.physicalId.split('|', 2) as [string, string] : [null, r.physicalId];
    if (!/_COMPLETE$/.test(r.resourceStatus) || r.resourceStatus.startsWith('DELETE') || r.state === null) {
      return fail(`${r.logicalId} (${r.physicalId ?? '?'}) is ${r.state === null ? `gone${r.error ? `: ${r.error}` : ''}` : r.resourceStatus}`, `redeploy the stack: npx osls deploy --stage <stage> --region <region> --param "clusters=${c.f.cluster}"`);
    }
    if (r.state !== 'ENABLED') return fail(`${r.logicalId} (${name}) is ${r.state}: its events never reach the function`, `aws events enable-rule --name ${name}${bus ? ` --event-bus-name ${bus}` : ''}`);
    return pass('');
  }), `${plural(s.rules.length, 'rule')} of ${s.name} ENABLED: ${s.rules.map((r) => r.physicalId ?? r.logicalId).join(', ')}`);
}

// --- per-slot checks ---------------------------------------------------------------------------

function asgCapacity(_c: Ctx, s: Slot): Verdict {
  const g = s.asg;
  if (g.min === 1 && g.max === 1 && g.desired === 1) return pass(`${g.name}: min 1, max 1, desired 1`);
  return fail(`${g.name}: min ${g.min}, max ${g.max}, desired ${g.desired} — a master slot holds exactly one master (a second would have no volume, none leaves the member without its master)`,
    `aws autoscaling update-auto-scaling-group --auto-scaling-group-name ${g.name} --min-size 1 --max-size 1 --desired-capacity 1`);
}

function hookCheck(transition: Transition) {
  return (_c: Ctx, s: Slot): Verdict => {
    const g = s.asg;
    const want = HOOK_DEFAULT_RESULT[transition];
    const hooks = g.hooks.filter((h) => h.transition === transition);
    const put = (name: string) => `aws autoscaling put-lifecycle-hook --auto-scaling-group-name ${g.name} --lifecycle-hook-name ${name} --lifecycle-transition ${transition} --heartbeat-timeout ${HOOK_HEARTBEAT_SEC} --default-result ${want}`;
    if (hooks.length === 0) {
      const why = transition === LAUNCHING ? 'a new master would come in without its volume, etcd membership or load balancer registration' : 'a master would be terminated with etcd running: no drain, no leadership hand-over, no clean detach';
      return fail(`${g.name} has no ${transition} hook: ${why}`, put(HOOK_NAMES[transition]));
    }
    const h = hooks[0]!;
    const vs: Verdict[] = [];
    if (h.defaultResult !== want) {
      const why = transition === LAUNCHING
        ? 'an expired hook would let a master join without its data being checked'
        : 'ABANDON does not stop a termination (without a retention policy), and with one an expired hook leaves the master Retained and running';
      const v = `${h.name}: DefaultResult ${h.defaultResult}, not ${want} — ${why}`;
      vs.push(transition === LAUNCHING ? fail(v, put(h.name)) : warn(v, put(h.name)));
    }
    if (transition === TERMINATING && h.heartbeatTimeoutSec < 2 * RECONCILE_EVERY_SEC) {
      vs.push(fail(`${h.name}: HeartbeatTimeout ${h.heartbeatTimeoutSec} s — the reconciler heartbeats held hooks every ${RECONCILE_EVERY_SEC} s: one late run and a held master's hook expires into CONTINUE`, put(h.name)));
    } else if (h.heartbeatTimeoutSec < HOOK_HEARTBEAT_SEC) {
      vs.push(warn(`${h.name}: HeartbeatTimeout ${h.heartbeatTimeoutSec} s, under the ${HOOK_HEARTBEAT_SEC} s the operator guide sets`, put(h.name)));
    }
    return worst(vs, `${h.name}: ${transition.replace('autoscaling:', '')}, heartbeat ${h.heartbeatTimeoutSec} s, default ${h.defaultResult}`);
  };
}

function asgHealthCheck(_c: Ctx, s: Slot): Verdict {
  const g = s.asg;
  const types = g.healthCheckType.split(',').map((t) => t.trim()).filter(Boolean);
  const bad = types.filter((t) => t === 'ELB' || t === 'VPC_LATTICE');
  if (bad.length === 0) return pass(`${g.name}: ${g.healthCheckType || 'EC2'}`);
  return fail(`${g.name}: ${g.healthCheckType} health checks (grace ${g.healthCheckGracePeriodSec} s) — an etcd outage makes every API server unhealthy and the ASGs replace every master, and a master awaiting disaster recovery would be replaced before a restore could run`,
    `aws autoscaling update-auto-scaling-group --auto-scaling-group-name ${g.name} --health-check-type EC2`);
}

function asgLoadBalancer(_c: Ctx, s: Slot): Verdict {
  const g = s.asg;
  if (g.targetGroupArns.length === 0 && g.loadBalancerNames.length === 0) return pass(`${g.name}: none attached (Quorum Keeper registers and drains masters itself)`);
  const fixes = [
    ...(g.targetGroupArns.length ? [`aws autoscaling detach-load-balancer-target-groups --auto-scaling-group-name ${g.name} --target-group-arns ${g.targetGroupArns.join(' ')}`] : []),
    ...(g.loadBalancerNames.length ? [`aws autoscaling detach-load-balancers --auto-scaling-group-name ${g.name} --load-balancer-names ${g.loadBalancerNames.join(' ')}`] : []),
  ];
  return fail(`${g.name} has ${[...g.targetGroupArns, ...g.loadBalancerNames].join(', ')} attached: the ASG would register a new master before its etcd is in, and deregister a retiring one before its turn`, fixes.join('; '));
}

function asgRetention(_c: Ctx, s: Slot): Verdict {
  const g = s.asg;
  if (g.terminateHookAbandon === 'retain') return pass(`${g.name}: TerminateHookAbandon=retain`);
  return warn(`${g.name}: no instance lifecycle policy retaining on TerminateHookAbandon — a last line against a terminate hook someone completes by hand with ABANDON`,
    `aws autoscaling update-auto-scaling-group --auto-scaling-group-name ${g.name} --instance-lifecycle-policy 'RetentionTriggers={TerminateHookAbandon=retain}'`);
}

function asgTags(c: Ctx, s: Slot): Verdict {
  const g = s.asg;
  const { tags, cluster } = c.f;
  const vs: Verdict[] = [];
  if (!g.clusterTagPropagated) {
    vs.push(fail(`${g.name}: ${tags.cluster} is not propagated at launch — new masters lack it, and Quorum Keeper's roles may attach volumes and run commands only on instances carrying it`,
      `aws autoscaling create-or-update-tags --tags ${asgTagArg(g.name, tags.cluster, cluster)}`));
  }
  if (!g.memberTagPropagated) {
    vs.push(warn(`${g.name}: ${tags.member} is not propagated at launch (the operator guide propagates both tags)`, `aws autoscaling create-or-update-tags --tags ${asgTagArg(g.name, tags.member, s.member)}`));
  }
  return worst(vs, `${g.name}: ${tags.cluster}=${cluster}, ${tags.member}=${s.member}, both propagated at launch`);
}

function masterInstance(c: Ctx, s: Slot): Verdict {
  if (s.instanceId) {
    const others = s.asg.instances.filter((i) => i.instanceId !== s.instanceId);
    return pass(`${s.instanceId} InService${others.length ? ` (also ${others.map((i) => `${i.instanceId} ${i.lifecycleState}`).join(', ')})` : ''}`);
  }
  const now = s.asg.instances.map((i) => `${i.instanceId} is ${i.lifecycleState}`).join(', ');
  return fail(`${s.asg.name} has no InService master${now ? ` (${now})` : ''}`,
    `see why: aws autoscaling describe-scaling-activities --auto-scaling-group-name ${s.asg.name} --max-items 5; a master left in Pending:Wait is brought in by the reconciler (quorum-keeper plan --cluster ${c.f.cluster} shows it)`);
}

function instanceTag(c: Ctx, s: Slot): Verdict {
  if (!s.instanceId) return skip('no InService master');
  const i = c.f.instances[s.instanceId];
  if (!i) return skip(`${s.instanceId} not described`);
  const { tags, cluster } = c.f;
  if (i.tags[tags.cluster] === cluster) return pass(`${s.instanceId}: ${tags.cluster}=${cluster}`);
  return fail(`${s.instanceId} does not carry ${tags.cluster}=${cluster}${i.tags[tags.cluster] !== undefined ? ` (it says ${i.tags[tags.cluster]})` : ''}: its replacement flows would stop with AccessDenied`,
    `aws ec2 create-tags --resources ${s.instanceId} --tags ${tagArg(tags.cluster, cluster)}`);
}

function volumeCount(c: Ctx, s: Slot): Verdict {
  const { tags, cluster } = c.f;
  if (s.volumes.length === 1) return pass(`${s.volumes[0]!.volumeId} (${s.volumes[0]!.az})`);
  if (s.volumes.length === 0) {
    // The volume on this master's etcd device that carries only part of the tags is the likely one.
    const guess = s.instanceId ? c.f.volumes.find((v) => v.attachedTo === s.instanceId && v.memberTag === undefined) : undefined;
    return fail(`no volume carries ${tags.cluster}=${cluster} and ${tags.member}=${s.member}: a replacement of this master would ABANDON (its data has nowhere to come from)`,
      `aws ec2 create-tags --resources ${guess?.volumeId ?? `<${s.member}'s etcd volume>`} --tags ${tagArg(tags.cluster, cluster)} ${tagArg(tags.member, s.member)}`);
  }
  const mine = s.volumes.find((v) => v.attachedTo && v.attachedTo === s.instanceId);
  const others = s.volumes.filter((v) => v !== mine);
  return fail(`${s.volumes.length} volumes carry ${tags.member}=${s.member}: ${s.volumes.map((v) => `${v.volumeId} (${v.az}${v.attachedTo ? `, on ${v.attachedTo}` : ''})`).join(', ')} — a replacement refuses to guess`,
    `${mine ? `${mine.volumeId} is on the master; ` : ''}after checking which holds the member's data, untag the others: aws ec2 delete-tags --resources ${others.map((v) => v.volumeId).join(' ')} --tags Key=${tags.member}`);
}

function volumeAz(_c: Ctx, s: Slot): Verdict {
  if (s.volumes.length !== 1) return skip('not exactly one volume');
  const v = s.volumes[0]!;
  const azs = [...new Set(s.asg.subnets.length ? s.asg.subnets.map((x) => x.az ?? '?') : s.asg.availabilityZones)].sort();
  if (azs.length === 1 && azs[0] === v.az) return pass(`${v.volumeId} and ${s.asg.name} in ${v.az}`);
  const here = s.asg.subnets.filter((x) => x.az === v.az).map((x) => x.subnetId);
  const fix = `aws autoscaling update-auto-scaling-group --auto-scaling-group-name ${s.asg.name} --vpc-zone-identifier ${here.length ? here.join(',') : `<a subnet in ${v.az}>`}`;
  return fail(`${s.asg.name} launches into ${azs.join(', ')} but ${v.volumeId} is in ${v.az}: a master launched elsewhere cannot attach it`, fix);
}

function ssmAgent(c: Ctx, s: Slot): Verdict {
  if (!s.instanceId) return skip('no InService master');
  const agent = c.f.instances[s.instanceId]?.agent ?? 'not-registered';
  if (agent === 'Online') return pass(`${s.instanceId} Online`);
  return fail(`the SSM agent on ${s.instanceId} is ${agent}: no host script can run there (mount, etcd, backups, the survey)`,
    `on ${s.instanceId}: sudo systemctl restart amazon-ssm-agent, and give its instance profile AmazonSSMManagedInstanceCore; check: aws ssm describe-instance-information --filters Key=InstanceIds,Values=${s.instanceId}`);
}

/** Why the host was not asked, or null when it was. */
function notAsked(c: Ctx, s: Slot): string | null {
  if (!s.instanceId) return 'no InService master';
  if (!s.host?.status) return `not asked: the SSM agent on ${s.instanceId} is ${c.f.instances[s.instanceId]?.agent ?? 'not registered'}`;
  return null;
}

/** The peer URL etcd lists for the slot's member when it is claimed without the host's own word (recorded ID or name). */
function listedPeerUrls(c: Ctx, s: Slot): string[] | null {
  const claim = c.claims[s.member];
  if (!claim || claim.basis === 'peer-url') return null;
  return c.f.etcd.members.find((m) => m.id === claim.id)?.peerUrls ?? null;
}

function hostEnv(c: Ctx, s: Slot): Verdict {
  const why = notAsked(c, s);
  if (why) return skip(why);
  const st = s.host!.status!;
  const file = `/etc/quorum-keeper/host.env on ${s.instanceId}`;
  if (!st.ok) return fail(`${s.instanceId}: ${st.error}`, `fix ${file} (keys and values: docs/host-scripts.md#environment-and-hostenv); the host scripts read it, never source it`);
  const listed = listedPeerUrls(c, s);
  if (listed && listed.length && !listed.includes(st.peerUrl)) {
    return fail(`${s.instanceId} advertises ${st.peerUrl} (from host.env) but etcd lists ${s.member}'s member at ${listed.join(',')}: host.env is missing (defaults used) or not this master's`,
      `write ${file} with this master's QK_HOST_IP, QK_ETCD_SCHEME, QK_ETCD_PEER_PORT, QK_ETCD_CLIENT_PORT and TLS paths (docs/host-scripts.md#environment-and-hostenv), so that it advertises the URL etcd knows`);
  }
  return pass(`${s.instanceId}: peer ${st.peerUrl}, client ${st.clientUrl}`);
}

function etcdReachable(c: Ctx, s: Slot): Verdict {
  const e = c.f.etcd;
  if (e.members.length === 0) return skip('etcd did not answer (see the cluster-wide check)');
  const claim = c.claims[s.member];
  if (!claim) return skip('no etcd member is this slot\'s (see the mapping check)');
  const m = e.members.find((x) => x.id === claim.id)!;
  const answered = e.statuses.find((x) => x.memberId === claim.id);
  if (!answered) {
    const err = e.unreachable.find((u) => m.clientUrls.includes(u.endpoint))?.error;
    return fail(`member ${m.name || m.id} (${m.id}) did not answer at ${m.clientUrls.join(',') || 'any client URL (never started)'}${err ? `: ${err}` : ''}`,
      s.instanceId ? `on ${s.instanceId}: systemctl status etcd; journalctl -u etcd. If it does not come back, let the ASG replace the master: ${terminateCmd(s.instanceId)}` : `quorum-keeper status --cluster ${c.f.cluster}`);
  }
  const st = s.host?.status;
  if (st?.ok && st.running && !st.healthy) {
    return fail(`${m.name || m.id} answers the other masters, but not this master's own client (the TLS files in its host.env) at ${st.clientUrl}`,
      `check QK_ETCD_CACERT and QK_ETCD_CLIENT_CERT/QK_ETCD_CLIENT_KEY (else QK_ETCD_CERT/QK_ETCD_KEY) in /etc/quorum-keeper/host.env on ${s.instanceId}: the files must exist and be issued by the etcd CA`);
  }
  return pass(`${m.name || m.id} answers at ${answered.endpoint}${st?.ok ? (st.healthy ? ', healthy to its own master' : '') : ''}`);
}

function etcdVersion(c: Ctx, s: Slot): Verdict {
  const why = notAsked(c, s);
  if (why) return skip(why);
  const st = s.host!.status!;
  if (!st.ok) return skip('host.env invalid: not asked');
  const clusterVersion = c.f.etcd.clusterVersion ?? st.clusterVersion;
  const v = judgeJoin(st.etcdVersion, clusterVersion);
  const claim = c.claims[s.member];
  const running = claim ? c.f.etcd.statuses.find((x) => x.memberId === claim.id)?.version ?? null : st.serverVersion;
  if (!v.ok && v.kind !== 'unknown') {
    return fail(`${s.instanceId}: ${v.detail}`, `launch ${s.member}'s masters from an AMI with etcd ${clusterVersion ?? 'the cluster\'s version'} (or one minor above): update the launch template of ${s.asg.name}`);
  }
  if (!v.ok) return warn(v.detail, `install etcd on ${s.instanceId}'s AMI where the host scripts find it (QK_BIN_DIR or PATH): etcd --version must answer`);
  if (running && parseEtcdVersion(running) && running !== st.etcdVersion) {
    return warn(`${s.member} runs etcd ${running} but ${s.instanceId}'s binary is ${st.etcdVersion}: restarted, it would run the binary`,
      `finish the change: replace the master (${terminateCmd(s.instanceId!)}) or restart etcd on it`);
  }
  return pass(`etcd ${st.etcdVersion}${running ? ` (running ${running})` : ''} in a cluster at ${clusterVersion ?? 'unknown'}`);
}

function memberMapping(c: Ctx, s: Slot): Verdict {
  const e = c.f.etcd;
  if (e.members.length === 0) return skip('etcd did not answer');
  const claim = c.claims[s.member];
  const byId = (id: string | undefined) => (id ? e.members.find((m) => m.id === id) : undefined);
  const peerUrl = s.host?.status?.ok ? s.host.status.peerUrl : undefined;
  const inspected = s.host?.inspect?.ok ? s.host.inspect : null;
  const candidates = new Map<string, string[]>();
  const add = (id: string | undefined, basis: string) => {
    if (id && byId(id)) candidates.set(id, [...(candidates.get(id) ?? []), basis]);
  };
  add(c.f.recordedIds?.[s.member], 'recorded ID');
  for (const m of e.members.filter((x) => x.name === s.member)) add(m.id, 'name');
  if (peerUrl) for (const m of e.members.filter((x) => x.peerUrls.includes(peerUrl))) add(m.id, 'peer URL');
  if (inspected?.marker?.memberId) add(inspected.marker.memberId, 'volume marker');
  const desc = (id: string) => `${byId(id)?.name || '(unstarted)'} ${id} (by ${candidates.get(id)!.join(', ')})`;
  if (candidates.size > 1) {
    return fail(`${s.member} has ${candidates.size} candidate members: ${[...candidates.keys()].map(desc).join(' vs ')}`,
      `decide which member is ${s.member}'s (the volume marker names the data's), then remove the other once it no longer answers: etcdctl member remove <id> — never while it answers`);
  }
  if (!claim) {
    return fail(`no etcd member is ${s.member}'s: none recorded, none named ${s.member}${peerUrl ? `, none at ${peerUrl}` : ''}`,
      `if the member was removed, the reconciler adds it back (${reconcileCmd(c.f.cluster)}; quorum-keeper plan shows the repair); if its etcd name differs from the tag, its master's peer URL must be the member's (check host.env)`);
  }
  return pass(`${desc(claim.id)}`);
}

function dataDir(c: Ctx, s: Slot): Verdict {
  const why = notAsked(c, s);
  if (why) return skip(why);
  if (s.host!.status && !s.host!.status.ok) return skip('host.env invalid: not inspected');
  if (s.volumes.length !== 1) return skip('not exactly one volume to look for');
  const i = s.host!.inspect;
  const v = s.volumes[0]!;
  if (!i) return skip('not inspected');
  if (!i.ok) return fail(`etcd-mount.sh --inspect on ${s.instanceId}: ${i.error}`, `run it by hand to see more: ${onHost(s.instanceId!, `bash etcd-mount.sh --inspect --volume-id ${v.volumeId} --cluster ${c.f.cluster} --member ${s.member}`)}`);
  const repair = `${reconcileCmd(c.f.cluster)} repairs an InService master (attach, mount, restart etcd); or let the ASG replace it: ${terminateCmd(s.instanceId!)}`;
  if (!i.device) {
    return fail(`${v.volumeId} has no device on ${s.instanceId} (${v.attachedTo ? `attached to ${v.attachedTo}` : v.state}): etcd's data is not on the member's volume`, repair);
  }
  if (!i.onVolume) {
    return fail(`${i.dataDir} is not on ${v.volumeId} (${i.device}): ${i.mountPoint} ${i.mountedDevice ? `holds ${i.mountedDevice}` : 'is the root disk\'s own directory'}`, repair);
  }
  if (!i.hasData) return warn(`${i.dataDir} on ${v.volumeId} holds no etcd data`, `if etcd should run there, ${repair}`);
  return pass(`${i.dataDir} on ${v.volumeId} (${i.device})`);
}

function marker(c: Ctx, s: Slot): Verdict {
  const why = notAsked(c, s);
  if (why) return skip(why);
  const i = s.host!.inspect;
  if (!i?.ok || !i.onVolume || s.volumes.length !== 1) return skip('the volume is not mounted (see the data dir check)');
  const v = s.volumes[0]!;
  const { cluster } = c.f;
  const args = `--volume-id ${v.volumeId} --cluster ${cluster} --member ${s.member}`;
  const claim = c.claims[s.member];
  const record = (id: string) => onHost(s.instanceId!, `bash etcd-mount.sh --record-member-id ${id} ${args}`);
  const m = i.marker;
  if (!m) {
    return fail(`${v.volumeId} has no .quorum-keeper-volume marker: etcd's boot guard will not start etcd on it, and a replacement refuses its data`,
      `quorum-keeper adopt --cluster ${cluster} --state-table <StateTableName> writes it (--dry-run first); by hand: ${onHost(s.instanceId!, `bash etcd-mount.sh --adopt ${args}`)}${claim ? `; then ${record(claim.id)}` : ''}`);
  }
  if (m.cluster !== cluster || m.member !== s.member) {
    return fail(`${v.volumeId}'s marker names ${m.cluster}/${m.member}, not ${cluster}/${s.member}: the volume is another member's`, `find ${s.member}'s own volume and tag it; retag ${v.volumeId} for ${m.cluster}/${m.member} (aws ec2 create-tags --resources ${v.volumeId} --tags ${tagArg(c.f.tags.member, m.member)})`);
  }
  if (m.volume && m.volume !== v.volumeId) {
    return fail(`${v.volumeId}'s marker names volume ${m.volume}: it is a copy (an EBS snapshot restored with the same tags), which must never run as ${s.member}`,
      `untag the copy (aws ec2 delete-tags --resources ${v.volumeId} --tags Key=${c.f.tags.member}) and attach ${m.volume}, ${s.member}'s real volume`);
  }
  const recorded = c.f.recordedIds?.[s.member];
  if (m.memberId && recorded && m.memberId !== recorded) {
    return fail(`${v.volumeId}'s marker says member ${m.memberId}, the state table ${recorded}: a replacement refuses this volume until they agree`,
      claim ? `the member running on it is ${claim.id}: ${record(claim.id)}, then ${reconcileCmd(cluster)} records it in the table` : `quorum-keeper status --cluster ${cluster}; then record the right ID: ${record('<member ID>')}`);
  }
  if (m.memberId && claim && m.memberId !== claim.id) {
    return fail(`${v.volumeId}'s marker says member ${m.memberId} but ${s.member} is member ${claim.id} in etcd`, record(claim.id));
  }
  if (!m.memberId) return warn(`${v.volumeId}'s marker records no member ID: the slot's identity does not survive a lost state table`, record(claim?.id ?? '<member ID>'));
  return pass(`${m.cluster}/${m.member} on ${m.volume || v.volumeId}, member ${m.memberId}`);
}

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
