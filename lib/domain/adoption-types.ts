/**
 * What adoption decides from and what it decides (`quorum-keeper adopt`): the facts read of each
 * slot and of etcd, and the plan with its refusals. Pure types; the rules are in adoption.ts.
 */
/** What `etcd-mount.sh --inspect` reports (read-only). */
export interface InspectAnswer {
  volumeId: string;
  /** The volume's block device on this host, if it is there. */
  device: string | null;
  /** What is mounted at the mount point, if anything. */
  mountedDevice: string | null;
  /** The volume's device is what is mounted at the mount point. */
  onVolume: boolean;
  mountPoint: string;
  /** `<mount point>/data`: where etcd's data dir must be. */
  dataDir: string;
  /** etcd data (member/snap/db) in the data dir. */
  hasData: boolean;
  /**
   * A running etcd on the host holds that db open: the data dir the member really uses is this
   * one (not a stale one beside it). Null when unknown (no db, no /proc).
   */
  dbOpenByEtcd: boolean | null;
  /** The marker as written (fields empty when absent); null when there is none. */
  marker: { cluster: string; member: string; volume: string; memberId: string } | null;
}

export interface VolumeFacts {
  volumeId: string;
  az: string;
  /** The instance it is attached to (or attaching), if any. */
  attachedTo: string | null;
}

export interface SlotFacts {
  /** The slot's member tag. */
  slot: string;
  asg: string;
  availabilityZones: readonly string[];
  /** The slot's InService instances (exactly one is adoptable). */
  inService: readonly string[];
  /** Every volume tagged for this cluster and this member, in any AZ. */
  volumes: readonly VolumeFacts[];
  /**
   * What the slot's one InService master answered (`etcd-member.sh status`): its peer URL (from
   * its host.env), whether etcd runs there as the unit Quorum Keeper controls (QK_ETCD_UNIT), and
   * the inspection of the slot's one volume (null when there is not exactly one). Null when not
   * asked (no single InService instance); `problem` when it could not answer.
   */
  host: null | { problem: string } | { peerUrl: string; etcdRunning: boolean; inspect: InspectAnswer | null; guard?: 'full' | 'unit' | 'none' };
}

export interface AdoptMember {
  id: string;
  name: string;
  peerUrls: readonly string[];
  isLearner: boolean;
}

export type EtcdFacts =
  | { readable: false; why: string }
  | {
    readable: true;
    /** The member list came from a linearizable read (through the leader), not a member's own view. */
    linearizable: boolean;
    /** etcd's cluster ID (hex). */
    clusterId: string;
    members: readonly AdoptMember[];
    leader: string | null;
    healthyVoters: number;
    voters: number;
    quorum: number;
  };

export interface FormationFacts {
  state: 'seeding' | 'formed';
  clusterId: string | null;
  /** How it was formed (bootstrap, adopt, observed, …). */
  how: string;
  seed: string;
}

export interface AdoptionFacts {
  cluster: string;
  /** ASGs tagged for the cluster whose member tag is missing or invalid. */
  badGroups: ReadonlyArray<{ asg: string; memberTag: string | undefined }>;
  slots: readonly SlotFacts[];
  etcd: EtcdFacts;
  /** Slot → member ID recorded in the state table. */
  recordedIds: Readonly<Record<string, string>>;
  formation: FormationFacts | null;
}

export type RefusalCode =
  | 'no-slots' | 'bad-group' | 'instances' | 'host' | 'etcd-unit' | 'volumes' | 'volume-az' | 'volume-attachment' | 'not-mounted' | 'no-data' | 'data-dir' | 'marker'
  | 'no-quorum' | 'learner' | 'peer-url' | 'shared-member' | 'stray' | 'name-conflict' | 'recorded-id' | 'marker-id' | 'formation'
  /** Set by the flow: the world changed between the plan and the run, or another flow drives a slot. */
  | 'changed' | 'busy';

export interface Refusal {
  code: RefusalCode;
  /** The slot it concerns; null for the cluster. */
  slot: string | null;
  reason: string;
  action: string;
}

/** What adopting a slot writes: the marker on its volume, the member ID in it, the state table record, the boot guard on etcd's unit. */
export type AdoptWrite = 'marker' | 'member-id' | 'record' | 'guard';

export interface AdoptionSlot {
  slot: string;
  asg: string;
  instanceId: string | null;
  volumeId: string | null;
  /** The etcd member at the master's peer URL: its ID and name. */
  memberId: string | null;
  etcdName: string | null;
  peerUrl: string | null;
  /** 'already': the marker names this cluster, member, volume and member ID, and the table records it. */
  action: 'adopt' | 'already' | 'refused';
  writes: AdoptWrite[];
}

export interface AdoptionPlan {
  cluster: string;
  /** etcd's cluster ID (hex), when the member list was read. */
  clusterId: string | null;
  slots: AdoptionSlot[];
  /** The formation record: written by adopt, or already naming this cluster ID. */
  formation: 'write' | 'already';
  /** Empty: adoptable. Otherwise nothing is written; every reason is listed. */
  refusals: Refusal[];
}
