/**
 * What the operator guide asks for (its numbers), the check titles, and the helpers every check uses.
 */
import { type SlotIdentity, type Claim } from '../identity';
import { type AsgFacts, type Check, type DoctorFacts, type HostFacts, type Transition, type VolumeFacts } from './facts';

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

export const TITLES = {
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
  'boot-guard': 'etcd starts at boot only on its volume',
  'backup-bucket': 'backup bucket',
  'backup-key': 'backup KMS key',
  'stack-functions': 'stack functions',
  'stack-rules': 'stack rules enabled',
} as const;

export type CheckId = keyof typeof TITLES;
/** Every check, in the order `judge` reports them. */
export const CHECK_IDS = Object.keys(TITLES) as CheckId[];

export type Verdict = Omit<Check, 'id' | 'title' | 'member'>;
export const pass = (detail: string): Verdict => ({ status: 'pass', detail });
export const skip = (detail: string): Verdict => ({ status: 'skip', detail });
export const warn = (detail: string, fix: string): Verdict => ({ status: 'warn', detail, fix });
export const fail = (detail: string, fix: string): Verdict => ({ status: 'fail', detail, fix });

/** The worst of several verdicts (fail > warn > pass > skip); details and fixes of that status joined. */
export function worst(vs: readonly Verdict[], passDetail: string): Verdict {
  for (const status of ['fail', 'warn'] as const) {
    const bad = vs.filter((v) => v.status === status);
    if (bad.length) return { status, detail: bad.map((v) => v.detail).join('; '), fix: bad.map((v) => v.fix).filter(Boolean).join('; ') };
  }
  return pass(passDetail);
}

/** A master slot: an ASG with a valid member tag no other ASG shares. */
export interface Slot {
  member: string;
  asg: AsgFacts;
  /** Its InService instance. */
  instanceId: string | null;
  volumes: VolumeFacts[];
  host: HostFacts | null;
}

export interface Ctx {
  f: DoctorFacts;
  slots: Slot[];
  /** What each slot claims its member by: recorded ID, member tag, its master's peer URL. */
  identities: SlotIdentity[];
  /** The slot → member ID claims, as the flows decide them (empty when etcd did not answer). */
  claims: Record<string, Claim>;
}

export const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
export const tagArg = (key: string, value: string) => `Key=${key},Value=${value}`;
export const asgTagArg = (asg: string, key: string, value: string) => `ResourceId=${asg},ResourceType=auto-scaling-group,Key=${key},Value=${value},PropagateAtLaunch=true`;
export const onHost = (instanceId: string, what: string) => `on ${instanceId}, as root (host/ of this repository): ${what}`;
export const terminateCmd = (instanceId: string) => `aws autoscaling terminate-instance-in-auto-scaling-group --instance-id ${instanceId} --no-should-decrement-desired-capacity`;
export const reconcileCmd = (c: string) => `quorum-keeper reconcile --cluster ${c} --state-table <StateTableName>`;
