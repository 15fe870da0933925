/**
 * What the observation reads the world through: one small typed port per source. The AWS
 * adapters are built in lib/aws (observe-ports.ts); unit tests pass in-memory fakes
 * (test/support/fake-world.ts), so every judge can be tested without the sandbox.
 */
import type { BackupObject, BackupStore } from '../aws/backups';
import type { MembershipView } from '../aws/etcd-survey';
import type { BadGroupView, EtcdView, HostReport, SlotView } from '../domain/view';

export interface FleetPort {
  /** The master slots of `cluster` (ASGs with both tags), by member name, and the ASGs whose member tag is missing or invalid. */
  masterGroups(cluster: string): Promise<{ masters: SlotView[]; bad: BadGroupView[] }>;
}

export interface InstancesPort {
  /** EC2 state and launch time of these instances; one EC2 no longer knows is `terminated`. */
  states(ids: readonly string[]): Promise<Record<string, { state: string; launchedAt: number | null }>>;
}

export interface TaggedVolumeFact {
  volumeId: string;
  az: string;
  memberTag: string | undefined;
  /** The device it is attached as (null: not attached). */
  device: string | null;
  state: string;
  attachedTo: string | null;
  attachmentState: string | null;
}

export interface VolumesPort {
  /** Every volume tagged for the cluster (deleting/deleted left out). */
  ofCluster(cluster: string): Promise<TaggedVolumeFact[]>;
}

export interface TargetsPort {
  /** Target health by instance ID in the cluster's target groups; null when none is tagged for it. */
  health(cluster: string): Promise<Record<string, string> | null>;
}

export interface EtcdReadPort {
  /**
   * etcd as the first of `candidates` whose member answers sees it (member list, every member's
   * status, alarms, the Leases asked for, the certificates members serve when `certs`).
   */
  survey(candidates: ReadonlyArray<{ instanceId: string; member: string }>, read: { leases?: readonly string[]; certs?: boolean }, ctx: { signal?: AbortSignal }): Promise<EtcdView>;
  /** The peer URL `instanceId`'s etcd advertises (its host config), undefined when it cannot be asked. */
  peerUrlOf(instanceId: string, ctx: { signal?: AbortSignal }): Promise<string | undefined>;
  /**
   * The member list (linearizable) and every member's status through the member on `instanceId`,
   * in one round trip: what every membership change starts from. Throws an EtcdError when the
   * list cannot be read. `skipStale`: the member being replaced by a host at `peerUrl` — its old
   * incarnation is not dialled (it only costs the status timeout).
   */
  membership(instanceId: string, ctx: { signal?: AbortSignal; skipStale?: { member: string; peerUrl: string } }): Promise<MembershipView>;
}

export interface BackupsPort {
  /** Every backup of the cluster in `store`, oldest first. */
  list(store: BackupStore, cluster: string): Promise<BackupObject[]>;
}

export interface RecordsPort {
  /** The member IDs recorded per slot. */
  memberIds(cluster: string, slots: readonly string[]): Promise<Record<string, string>>;
  held(cluster: string, member: string): Promise<{ instanceId: string; since: number; reason: string } | null>;
  awaitingDr(cluster: string, member: string): Promise<{ instanceId: string; since: number; hasData: boolean } | null>;
  /** The highest etcd revision a probe has seen in the cluster (null: none remembered). */
  highestRevision(cluster: string): Promise<number | null>;
}

export interface HostsReadPort {
  /**
   * The master's own word on its etcd and volume; null when its SSM agent is not online (not
   * asked). `offlineRevision`: also read the DB's revision offline where etcd does not run.
   */
  report(instanceId: string, read: { offlineRevision: boolean; maxWaitSec: number }, ctx: { signal?: AbortSignal }): Promise<HostReport | null>;
}

export interface ObservePorts {
  fleet: FleetPort;
  instances: InstancesPort;
  volumes: VolumesPort;
  targets: TargetsPort;
  etcd: EtcdReadPort;
  backups: BackupsPort;
  hosts: HostsReadPort;
  /** Absent: no state table (no recorded identities, no held hooks or DR records). */
  records?: RecordsPort;
}
