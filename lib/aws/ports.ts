/**
 * What the flows do to AWS, as typed ports (issue 29): instances, volumes, target groups,
 * lifecycle hooks and the backup objects, each built here over its client (a thunk: built when
 * first used, so a function's bundle carries only the clients it names). A flow holds these,
 * never an SDK client; unit tests pass in-memory fakes (test/support/fake-cloud.ts). What the
 * flows *read* of a cluster goes through the observation (lib/observe); these are the reads a
 * step makes of one thing it is about to change, and the changes.
 */
import type { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import type { S3Client } from '@aws-sdk/client-s3';
import {
  anyBackup, type BackupMeta, type BackupStore, deleteBackups, headBackup, type PresignedUpload, type PresignOptions, presignDownload, presignUpload, type StoredBackup,
} from './backups';
import { attachVolume, describeInstance, describeVolume, detachVolume, findMemberVolumes, type InstanceInfo, type MemberVolume, type WaitOpts } from './ec2';
import { describeGroup, type Tags } from './fleet';
import { deregisterAndWait, findTargetGroups, registerAndWait } from './lb';
import { asgInstance, completeLifecycle, heartbeat, type HookRef, hookOf, type HookSettings, type Transition } from './lifecycle';

/** One EC2 instance as a lifecycle flow sees it: its state, and its Auto Scaling side. */
export interface MachinesPort {
  describe(instanceId: string): Promise<InstanceInfo>;
  /** The instance's Auto Scaling group and lifecycle state (null: not in any group). */
  inGroup(instanceId: string): Promise<{ group: string; state: string } | null>;
}

/** A slot's etcd volume: found by its tags, read, attached, detached (waiting until done). */
export interface VolumeActions {
  ofMember(q: { cluster: string; member: string; az: string }): Promise<MemberVolume[]>;
  describe(volumeId: string): Promise<MemberVolume>;
  attach(volumeId: string, instanceId: string, device: string, w: WaitOpts): Promise<void>;
  detach(volumeId: string, instanceId: string, force: boolean, w: WaitOpts): Promise<void>;
}

/** The API server target groups tagged for a cluster. */
export interface TargetActions {
  groups(cluster: string): Promise<string[]>;
  /** Registers and waits until healthy (the group's own health check decides). */
  register(targetGroup: string, instanceId: string, port: number, w: WaitOpts): Promise<void>;
  /** Deregisters and waits until drained. */
  deregister(targetGroup: string, instanceId: string, port: number, w: WaitOpts): Promise<void>;
}

/** Auto Scaling lifecycle hooks, and the group a slot is. */
export interface LifecyclePort {
  complete(ref: HookRef, result: 'CONTINUE' | 'ABANDON'): Promise<'done' | 'gone'>;
  heartbeat(ref: HookRef): Promise<'done' | 'gone'>;
  hookOf(asgName: string, transition: Transition): Promise<HookSettings | null>;
  /** The group's tags and zones (null: it does not exist). */
  group(asgName: string): Promise<{ tags: Record<string, string>; availabilityZones: string[] } | null>;
}

/** The backup bucket's objects (their listing is the observation's). */
export interface BackupObjectsPort {
  head(store: BackupStore, key: string): Promise<StoredBackup>;
  any(store: BackupStore, cluster: string): Promise<boolean>;
  presignDownload(store: BackupStore, key: string, o?: PresignOptions): Promise<string>;
  presignUpload(store: BackupStore, key: string, meta: BackupMeta, sha256Base64: string, o?: PresignOptions): Promise<PresignedUpload>;
  /** The keys that could not be deleted, with why. */
  delete(store: BackupStore, keys: readonly string[]): Promise<Array<{ key: string; error: string }>>;
}

export const machinesPort = (ec2: () => EC2Client, asg: () => AutoScalingClient): MachinesPort => ({
  describe: (id) => describeInstance(ec2(), id),
  inGroup: (id) => asgInstance(asg(), id),
});

export const volumeActions = (ec2: () => EC2Client, tags: Tags): VolumeActions => ({
  ofMember: (q) => findMemberVolumes(ec2(), { tagCluster: tags.cluster, tagMember: tags.member, ...q }),
  describe: (id) => describeVolume(ec2(), id),
  attach: (volumeId, instanceId, device, w) => attachVolume(ec2(), volumeId, instanceId, device, w),
  detach: (volumeId, instanceId, force, w) => detachVolume(ec2(), volumeId, instanceId, force, w),
});

export const targetActions = (elb: () => ElasticLoadBalancingV2Client, tags: Tags): TargetActions => ({
  groups: (cluster) => findTargetGroups(elb(), tags.cluster, cluster),
  register: (tg, id, port, w) => registerAndWait(elb(), tg, id, port, w),
  deregister: (tg, id, port, w) => deregisterAndWait(elb(), tg, id, port, w),
});

export const lifecyclePort = (asg: () => AutoScalingClient): LifecyclePort => ({
  complete: (ref, result) => completeLifecycle(asg(), ref, result),
  heartbeat: (ref) => heartbeat(asg(), ref),
  hookOf: (name, transition) => hookOf(asg(), name, transition),
  group: (name) => describeGroup(asg(), name),
});

export const backupObjectsPort = (s3: () => S3Client): BackupObjectsPort => ({
  head: (store, key) => headBackup(s3(), store, key),
  any: (store, cluster) => anyBackup(s3(), store, cluster),
  presignDownload: (store, key, o) => presignDownload(s3(), store, key, o),
  presignUpload: (store, key, meta, sha, o) => presignUpload(s3(), store, key, meta, sha, o),
  delete: (store, keys) => deleteBackups(s3(), store, keys),
});
