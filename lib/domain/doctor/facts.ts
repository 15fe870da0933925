/**
 * `quorum-keeper doctor`: the facts the flow gathers (plain data) and the check type. See index.ts.
 */
import { type ServedCertificate } from '../health';

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
    /** The boot guard on etcd's unit: Quorum Keeper's drop-in, the guard alone (adopted), or none. */
    guard?: 'full' | 'unit' | 'none';
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
