/**
 * One reading of a cluster, as plain data: what `observeCluster` (lib/observe) returns and what
 * every judge takes (quorum, "slot is whole", status, reconcile, the departure gate). Pure types,
 * no AWS: each part is one source, read once per observation, so a fact added here is seen by
 * every flow that judges the cluster.
 *
 * A part that was not asked for is absent from the type (`ViewOf<W>` in lib/observe): a judge
 * names the parts it needs (`Pick<ClusterView, …>`), and the compiler checks that its caller read
 * them.
 */
import type { Alarm, EndpointStatusReport, Member } from '../etcd/parsers';
import type { Claim } from './identity';

/** A kube-system Lease as the API server answered for it (0: could not be reached). */
export interface LeaseAnswer {
  /** HTTP status from the API server; 0 when it could not be reached. */
  httpStatus: number;
  body: string;
  error: string | null;
}

/** A certificate a member serves, as the survey read it off the wire. */
export interface ServedCertificate {
  /** The etcd member's name (its ID while it has none). */
  member: string;
  kind: 'client' | 'peer';
  url: string;
  /** ISO time. */
  notAfter: string;
}

/** A master slot: an Auto Scaling group tagged with the cluster and a member name. */
export interface SlotView {
  member: string;
  asg: string;
  availabilityZones: string[];
  /** The slot's InService instance, if it has one. */
  instanceId: string | null;
  /** Every instance in the slot with its lifecycle state (a slot may briefly hold two). */
  instances: Array<{ instanceId: string; lifecycleState: string }>;
}

/** An ASG tagged for the cluster whose member tag is missing or invalid: no slot. */
export interface BadGroupView {
  asg: string;
  memberTag: string | undefined;
}

/** A slot's etcd volume (by member tag; the last listed wins when two carry the same tag). */
export interface VolumeView {
  volumeId: string;
  /** The EC2 volume state (`available`, `in-use`, …). */
  volumeState: string;
  /** The attachment's state (`attached`, `attaching`, …), null when attached to nothing. */
  attachmentState: string | null;
  attachedTo: string | null;
}

export interface EtcdView {
  /** The master the etcd reads went through; null when none answered. */
  via: { member: string; instanceId: string; clientUrl: string; peerUrl: string } | null;
  /** null when no member answered a member list. */
  members: Member[] | null;
  /** The etcd cluster ID the member list's header names; null with no list. */
  clusterId: string | null;
  /**
   * `quorum`: a linearizable read (through a leader that had quorum when it answered); `local`:
   * one member's own view, read when the linearizable one failed — possibly stale, never a basis
   * for a membership change.
   */
  membersFrom: 'quorum' | 'local' | null;
  /** Every member's status; the ones that did not answer are in `unreachable`. */
  status: EndpointStatusReport;
  /** The cluster version the answering member reports (the lowest minor any member runs). */
  clusterVersion: string | null;
  alarms: Alarm[] | null;
  leases: Record<string, LeaseAnswer>;
  certs: ServedCertificate[];
  /** Masters passed over on the way to the one that answered (or every one tried), and why. */
  tried: string[];
  /** Why a part of the etcd reading is missing. */
  errors: string[];
}

/** Target health in the API server target groups by instance ID; null when no target group is tagged for the cluster. */
export type TargetsView = Record<string, string> | null;

/** What the state table records per slot. */
export interface SlotRecordView {
  /** A retirement holding this slot's terminate hook because leaving is not safe yet. */
  held: { instanceId: string; since: number; reason: string } | null;
  /** The slot came in without quorum: volume mounted, etcd stopped, waiting for a restore. */
  awaitingDr: { instanceId: string; since: number; hasData: boolean } | null;
}

/**
 * What a master says of its own etcd and volume (`etcd-member.sh status`; the DB's revision read
 * offline where etcd does not run). A host is the authority on its own process: `stopped` is
 * evidence that its member is down, unlike a member that does not answer.
 */
export interface HostReport {
  /** etcd runs there (it may still not answer a status in time). */
  running: boolean;
  /** etcd is KNOWN not to run there (no process; its unit inactive or failed). */
  stopped: boolean;
  /** The volume holds a member's data (a write-ahead log). */
  hasData: boolean;
  peerUrl: string;
  clientUrl: string;
  /** The revision of its data (etcd's bolt DB read offline), when asked and etcd was down; else null. */
  revision: number | null;
}

/** A master's answer: its report, or why there is none (its SSM agent offline, the command failed). */
export type HostReading = { report: HostReport } | { unavailable: string };

export interface BackupView {
  key: string;
  takenAt: Date;
}

export interface ClusterView {
  cluster: string;
  /** Server time (ms) when the view was read: AWS's clock, not the caller's. */
  at: number;
  slots: SlotView[];
  badGroups: BadGroupView[];
  /** Volumes by member tag. */
  volumes: Record<string, VolumeView>;
  targets: TargetsView;
  etcd: EtcdView;
  /** Which etcd member each slot is (slot member tag → claim), by recorded ID, name or peer URL. */
  claims: Record<string, Claim>;
  /** EC2 state and launch time of the instances in Pending:Wait and those volumes are attached to. */
  instances: Record<string, { state: string; launchedAt: number | null }>;
  /** Usable backups oldest first and the future-dated ones set aside; `error` when the bucket could not be listed. */
  backups: { usable: BackupView[]; futureDated: BackupView[] } | { error: string };
  /**
   * The state table's records per slot, and the highest etcd revision a probe has seen (null: none
   * remembered) — what a recovery counts the revisions lost from; `error` when it could not be read.
   */
  records: { bySlot: Record<string, SlotRecordView>; highestRevision: number | null } | { error: string };
  /** The masters' own word, by instance ID: only those the observation asked (see `Want.hosts`). */
  hosts: Record<string, HostReading>;
}

export type ViewPart = Exclude<keyof ClusterView, 'cluster' | 'at' | 'slots' | 'badGroups'>;
