/**
 * EBS volumes, whose attachments moto tracks but no host sees: a volume is a directory, and
 * AttachVolume / DetachVolume (moto's answer) make it appear in / leave the host's
 * /dev/disk/by-id. Also what moto does not do: EC2 refuses to attach an attached volume, and
 * a volume can be stuck `attaching`. Every DetachVolume is recorded with its Force flag.
 */
import { lstatSync, mkdirSync, readdirSync, readlinkSync, rmSync, symlinkSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { paginateDescribeVolumes } from '@aws-sdk/client-ec2';
import { ec2Error, type Handler, type ParsedRequest, type Reply, type Routes } from '../protocol';
import type { SandboxState } from './state';

export function ec2Routes(sb: SandboxState, forward: Handler): Routes {
  const forwardThenSync = async (r: ParsedRequest): Promise<Reply> => {
    const reply = await forward(r);
    if (reply.status === 200) await sb.syncDevices();
    return reply;
  };
  return {
    'ec2:AttachVolume': (r) => attachVolume(sb, forwardThenSync, r),
    'ec2:DetachVolume': (r) => {
      sb.detachCalls.push({ volumeId: r.form?.get('VolumeId') ?? '', instanceId: r.form?.get('InstanceId') ?? '', force: r.form?.get('Force') === 'true' });
      return forwardThenSync(r);
    },
    'ec2:DescribeVolumes': (r) => withStuckAttachments(sb, forward, r),
  };
}

/** EC2 refuses to attach a volume that is attached (moto re-attaches it silently). */
async function attachVolume(sb: SandboxState, forwardThenSync: Handler, r: ParsedRequest): Promise<Reply> {
  const volumeId = r.form?.get('VolumeId') ?? '';
  const attached = (await sb.describeVolume(volumeId))?.Attachments?.find((a) => a.State === 'attached' || a.State === 'attaching');
  if (attached) return ec2Error(400, 'VolumeInUse', `${volumeId} is already attached to an instance`);
  const ms = sb.latency.attachMs;
  if (ms <= 0) return forwardThenSync(r);
  // Attaching for a while (moto reads attached at once): no device yet, DescribeVolumes says attaching.
  sb.stuckAttaching.add(volumeId);
  const reply = await forwardThenSync(r);
  if (reply.status !== 200) sb.stuckAttaching.delete(volumeId);
  else setTimeout(() => {
    sb.stuckAttaching.delete(volumeId);
    sb.syncDevices().catch(() => undefined); // the sandbox was reset or stopped meanwhile
  }, ms).unref();
  return reply;
}

/** A stuck volume's attachment stays `attaching` (the volume itself reads `in-use`, as on EC2). */
async function withStuckAttachments(sb: SandboxState, forward: Handler, r: ParsedRequest): Promise<Reply> {
  const reply = await forward(r);
  if (reply.status !== 200 || sb.stuckAttaching.size === 0) return reply;
  let xml = reply.body.toString();
  // Each volume's attachmentSet names its volume (element order follows the EC2 model).
  xml = xml.replace(/<attachmentSet>[\s\S]*?<\/attachmentSet>/g, (set) => {
    const vol = /<volumeId>([^<]+)<\/volumeId>/.exec(set)?.[1];
    return vol && sb.stuckAttaching.has(vol) ? set.replace(/<status>attached<\/status>/g, '<status>attaching</status>') : set;
  });
  return { ...reply, body: xml };
}

/** Makes each host's /dev/disk/by-id match moto's volume attachments. */
export async function syncDevices(sb: SandboxState): Promise<void> {
  const attached = new Map<string, Set<string>>();
  for await (const page of paginateDescribeVolumes({ client: sb.ec2 }, {})) {
    for (const v of page.Volumes ?? []) {
      for (const a of v.Attachments ?? []) {
        if (!a.InstanceId || !v.VolumeId || (a.State !== 'attached' && a.State !== 'attaching') || sb.stuckAttaching.has(v.VolumeId)) continue;
        if (!attached.has(a.InstanceId)) attached.set(a.InstanceId, new Set());
        attached.get(a.InstanceId)!.add(v.VolumeId);
      }
    }
  }
  for (const host of sb.hosts.values()) {
    const byId = join(host.root, 'dev/disk/by-id');
    mkdirSync(byId, { recursive: true });
    const want = attached.get(host.instanceId) ?? new Set<string>();
    const prefix = 'nvme-Amazon_Elastic_Block_Store_';
    for (const entry of readdirSync(byId)) {
      const vol = `vol-${entry.slice(prefix.length + 3)}`;
      if (entry.startsWith(prefix) && !want.has(vol)) {
        rmSync(join(byId, entry), { force: true });
        // A detached volume vanishes from under its mount point.
        const mount = join(host.root, 'var/lib/etcd');
        if (isSymlinkTo(mount, sb.volumeDir(vol))) {
          rmSync(mount, { force: true });
          symlinkSync(join(sb.dir, 'detached', vol), mount);
        }
      }
    }
    for (const vol of want) {
      const link = join(byId, `${prefix}${vol.replace('-', '')}`);
      if (existsSync(link) || pendingLinks.has(link)) continue;
      // The link appears a little after the attachment (udev), unless it was detached meanwhile.
      pendingLinks.add(link);
      setTimeout(() => {
        pendingLinks.delete(link);
        stillAttached(sb, vol, host.instanceId).then((yes) => {
          if (yes && !existsSync(link)) symlinkSync(sb.volumeDir(vol), link);
        }).catch(() => undefined); // the sandbox was reset or stopped meanwhile
      }, sb.deviceDelayMs(vol)).unref();
    }
  }
}

/** Links scheduled to appear (one timer per link). */
const pendingLinks = new Set<string>();

async function stillAttached(sb: SandboxState, volumeId: string, instanceId: string): Promise<boolean> {
  const a = (await sb.describeVolume(volumeId))?.Attachments?.find((x) => x.InstanceId === instanceId);
  return a !== undefined && (a.State === 'attached' || a.State === 'attaching') && !sb.stuckAttaching.has(volumeId) && sb.hosts.has(instanceId);
}

function isSymlinkTo(path: string, target: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink() && readlinkSync(path) === target;
  } catch {
    return false;
  }
}
