/** EC2 adapters: instances and the member's etcd volume, found by tags (paginated). */
import {
  AttachVolumeCommand, DetachVolumeCommand, type EC2Client, paginateDescribeInstances, paginateDescribeVolumes,
  waitUntilVolumeAvailable, waitUntilVolumeInUse, type Volume,
} from '@aws-sdk/client-ec2';

export interface InstanceInfo {
  instanceId: string;
  state: string; // pending | running | shutting-down | terminated | stopping | stopped | gone
  az: string | null;
  privateIp: string | null;
  /** The instance's tags (an ASG's PropagateAtLaunch tags land here). */
  tags: Record<string, string>;
}

export async function describeInstance(ec2: EC2Client, instanceId: string): Promise<InstanceInfo> {
  try {
    for await (const page of paginateDescribeInstances({ client: ec2 }, { InstanceIds: [instanceId] })) {
      for (const r of page.Reservations ?? []) {
        for (const i of r.Instances ?? []) {
          if (i.InstanceId === instanceId) {
            return {
              instanceId, state: i.State?.Name ?? 'unknown', az: i.Placement?.AvailabilityZone ?? null, privateIp: i.PrivateIpAddress ?? null,
              tags: Object.fromEntries((i.Tags ?? []).filter((t) => t.Key !== undefined).map((t) => [t.Key!, t.Value ?? ''])),
            };
          }
        }
      }
    }
  } catch (err) {
    if ((err as { name?: string }).name === 'InvalidInstanceID.NotFound') return { instanceId, state: 'gone', az: null, privateIp: null, tags: {} };
    throw err;
  }
  return { instanceId, state: 'gone', az: null, privateIp: null, tags: {} };
}

export interface MemberVolume {
  volumeId: string;
  az: string;
  state: string;
  /** Instance the volume is attached (or attaching/detaching) to, if any. */
  attachedTo: string | null;
  attachmentState: string | null;
}

function toMemberVolume(v: Volume): MemberVolume {
  const a = v.Attachments?.find((x) => x.State !== 'detached');
  return { volumeId: v.VolumeId ?? '', az: v.AvailabilityZone ?? '', state: v.State ?? 'unknown', attachedTo: a?.InstanceId ?? null, attachmentState: a?.State ?? null };
}

/** Every volume tagged for this cluster and member in this AZ (the flow insists on exactly one). */
export async function findMemberVolumes(ec2: EC2Client, q: { tagCluster: string; tagMember: string; cluster: string; member: string; az: string }): Promise<MemberVolume[]> {
  const out: MemberVolume[] = [];
  const Filters = [
    { Name: `tag:${q.tagCluster}`, Values: [q.cluster] },
    { Name: `tag:${q.tagMember}`, Values: [q.member] },
    { Name: 'availability-zone', Values: [q.az] },
  ];
  for await (const page of paginateDescribeVolumes({ client: ec2 }, { Filters })) {
    for (const v of page.Volumes ?? []) if (v.State !== 'deleting' && v.State !== 'deleted') out.push(toMemberVolume(v));
  }
  return out;
}

/** A volume carrying the cluster tag, with its member tag (if any) and the device it is attached as. */
export interface TaggedVolume extends MemberVolume {
  memberTag: string | undefined;
  device: string | null;
}

/** Every volume tagged for this cluster, in any AZ (paginated, tag-filtered; deleting/deleted left out). */
export async function clusterVolumes(ec2: EC2Client, q: { tagCluster: string; tagMember: string; cluster: string }): Promise<TaggedVolume[]> {
  const out: TaggedVolume[] = [];
  for await (const page of paginateDescribeVolumes({ client: ec2 }, { Filters: [{ Name: `tag:${q.tagCluster}`, Values: [q.cluster] }] })) {
    for (const v of page.Volumes ?? []) {
      if (!v.VolumeId || v.State === 'deleting' || v.State === 'deleted') continue;
      const a = v.Attachments?.find((x) => x.State !== 'detached');
      out.push({ ...toMemberVolume(v), memberTag: v.Tags?.find((t) => t.Key === q.tagMember)?.Value, device: a?.Device ?? null });
    }
  }
  return out;
}

/** `vols` by member tag; volumes without one (or with an empty one) are left out. */
export function byMember<V extends { memberTag: string | undefined }>(vols: readonly V[]): Map<string, V[]> {
  const out = new Map<string, V[]>();
  for (const v of vols) if (v.memberTag) out.set(v.memberTag, [...(out.get(v.memberTag) ?? []), v]);
  return out;
}

export async function describeVolume(ec2: EC2Client, volumeId: string): Promise<MemberVolume> {
  for await (const page of paginateDescribeVolumes({ client: ec2 }, { VolumeIds: [volumeId] })) {
    const v = page.Volumes?.[0];
    if (v) return toMemberVolume(v);
  }
  throw new Error(`volume ${volumeId} not found`);
}

export interface WaitOpts {
  maxWaitSec: number;
  minDelaySec: number;
  maxDelaySec: number;
  abortSignal?: AbortSignal;
}

/** SDK v3 waiter configuration (seconds; maxDelay never below minDelay) for any client. */
export function waiterConfig<C>(client: C, w: WaitOpts) {
  return { client, maxWaitTime: w.maxWaitSec, minDelay: w.minDelaySec, maxDelay: Math.max(w.maxDelaySec, w.minDelaySec), ...(w.abortSignal ? { abortSignal: w.abortSignal } : {}) };
}

/**
 * An SDK waiter's timeout or failure in words. The SDK throws an Error whose message is the
 * JSON of its result (`{"state":"TIMEOUT","observedResponses":{"200: OK":5},"reason":...}`),
 * which read as such in an alert; null for any other error.
 */
export function waiterText(err: unknown): string | null {
  if (!(err instanceof Error) || !err.message.startsWith('{"state"')) return null;
  try {
    const r = JSON.parse(err.message) as { state?: string; reason?: string; observedResponses?: Record<string, number> };
    const seen = Object.entries(r.observedResponses ?? {}).map(([k, n]) => `${k} ×${n}`).join(', ');
    const what = r.state === 'TIMEOUT' ? 'the wait timed out' : `the wait ended ${String(r.state).toLowerCase()}`;
    return `${what}${seen ? ` (answers seen: ${seen})` : ''}`;
  } catch {
    return null;
  }
}

export async function attachVolume(ec2: EC2Client, volumeId: string, instanceId: string, device: string, w: WaitOpts): Promise<void> {
  try {
    await ec2.send(new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: device }));
  } catch (err) {
    // The SDK retried an AttachVolume whose first answer was lost: the volume is attached — here.
    if ((err as { name?: string }).name !== 'VolumeInUse' || (await describeVolume(ec2, volumeId)).attachedTo !== instanceId) throw err;
  }
  await waitUntilVolumeInUse(waiterConfig(ec2, w), { VolumeIds: [volumeId] });
}

/** `force` only for a predecessor that is terminated, stopped or gone (the flow decides). */
export async function detachVolume(ec2: EC2Client, volumeId: string, instanceId: string, force: boolean, w: WaitOpts): Promise<void> {
  await ec2.send(new DetachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Force: force }));
  await waitUntilVolumeAvailable(waiterConfig(ec2, w), { VolumeIds: [volumeId] });
}

