/** Failure scenarios played in the sandbox: what AWS would do, without product logic. */
import { randomBytes } from 'node:crypto';
import { DescribeAutoScalingGroupsCommand } from '@aws-sdk/client-auto-scaling';
import { AttachVolumeCommand, DescribeImagesCommand, RunInstancesCommand, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import type { LifecycleEvent } from './lifecycle';
import { LAUNCH_HOOK, type SandboxClients, type SandboxCluster, type SandboxMember } from './cluster';
import { waitFor } from './ports';
import type { Sandbox } from './sandbox';
import { etcdFetch } from './etcd-http';

export { LAUNCH_HOOK, TERMINATE_HOOK } from './cluster';

/**
 * The master of `member` dies (etcd killed, instance terminated); its ASG launches a
 * replacement in the same AZ, which waits in Pending:Wait for the launch hook. Returns the
 * new instance and the EventBridge event AWS would deliver.
 */
export async function killMaster(sandbox: Sandbox, c: SandboxClients, member: SandboxMember): Promise<{ instanceId: string; event: LifecycleEvent }> {
  sandbox.host(member.instanceId).crash();
  await c.ec2.send(new TerminateInstancesCommand({ InstanceIds: [member.instanceId] }));
  const instanceId = await waitFor(`a replacement in ${member.asg}`, async () => {
    const g = await c.asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [member.asg] }));
    return g.AutoScalingGroups?.[0]?.Instances?.find((i) => i.InstanceId !== member.instanceId)?.InstanceId;
  });
  const event = sandbox.lifecycle.begin({ asg: member.asg, hook: LAUNCH_HOOK, instanceId, transition: 'autoscaling:EC2_INSTANCE_LAUNCHING' });
  return { instanceId, event };
}

/**
 * EBS does not release a terminated master's volume (AWS normally detaches it during shutdown;
 * a stuck attachment is the exception the reconciler cleans up). moto detaches on terminate, so
 * the attachment is put back.
 */
export async function leaveAttached(c: SandboxClients, volumeId: string, terminatedInstanceId: string): Promise<void> {
  await c.ec2.send(new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: terminatedInstanceId, Device: '/dev/xvdf' }));
}

/** Writes `count` keys under `prefix` through the etcd v3 HTTP gateway of one member. */
export async function putKeys(clientUrl: string, prefix: string, count: number): Promise<void> {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  for (let i = 0; i < count; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, count - i) }, (_, j) =>
      etcdFetch(`${clientUrl}/v3/kv/put`, { method: 'POST', body: JSON.stringify({ key: b64(`${prefix}${i + j}`), value: b64(`value-${i + j}`) }) }).then((r) => {
        if (!r.ok) throw new Error(`put failed: HTTP ${r.status}`);
      })));
  }
}

/**
 * Writes `count` keys under `prefix` quickly: transactions of 128 puts (etcd's default
 * --max-txn-ops), 8 in flight, through the HTTP gateway. Optional padding makes a bigger DB.
 */
export async function putKeysBulk(clientUrl: string, prefix: string, count: number, opts: { valueBytes?: number } = {}): Promise<void> {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  // Padding is random per key (base64), so the DB does not compress to nothing.
  const pad = () => (opts.valueBytes ? randomBytes(Math.ceil((opts.valueBytes * 3) / 4)).toString('base64').slice(0, opts.valueBytes) : '');
  const batches: number[] = [];
  for (let i = 0; i < count; i += 128) batches.push(i);
  const worker = async () => {
    for (let start = batches.shift(); start !== undefined; start = batches.shift()) {
      const ops = Array.from({ length: Math.min(128, count - start) }, (_, j) => ({
        request_put: { key: b64(`${prefix}${start + j}`), value: b64(opts.valueBytes ? `${start + j}:${pad()}` : `value-${start + j}`) },
      }));
      const r = await etcdFetch(`${clientUrl}/v3/kv/txn`, { method: 'POST', body: JSON.stringify({ success: ops }) });
      if (!r.ok) throw new Error(`txn failed: HTTP ${r.status} ${await r.text()}`);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
}

/** Number of keys under `prefix`, read linearizably from one member. */
export async function countKeys(clientUrl: string, prefix: string): Promise<number> {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const end = prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
  const r = await etcdFetch(`${clientUrl}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: b64(prefix), range_end: b64(end), count_only: true }) });
  if (!r.ok) throw new Error(`range failed: HTTP ${r.status}`);
  const body = (await r.json()) as { count?: string };
  return Number(body.count ?? 0);
}

export function memberOf(cluster: SandboxCluster, name: string): SandboxMember {
  const m = cluster.members.find((x) => x.name === name);
  if (!m) throw new Error(`no member ${name}`);
  return m;
}

/**
 * The ASG of `member` launches another instance while the current one is still there (e.g. an
 * unhealthy master being replaced, or a duplicate). moto keeps ASGs at their size, so the new
 * instance is started in the same subnet and the sandbox lists it in the group
 * (`Sandbox.alongside`); the launch event names the member's ASG. With
 * `destination: 'WarmPool'` it is a launch into the group's warm pool.
 */
export async function launchAlongside(
  sandbox: Sandbox, c: SandboxClients, member: SandboxMember, o: { destination?: string; subnetId?: string } = {},
): Promise<{ instanceId: string; event: LifecycleEvent }> {
  const g = await c.asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [member.asg] }));
  const subnet = o.subnetId ?? g.AutoScalingGroups?.[0]?.VPCZoneIdentifier?.split(',')[0];
  const image = (await c.ec2.send(new DescribeImagesCommand({}))).Images?.[0]?.ImageId ?? 'ami-12c6146b';
  // The ASG tags what it launches with its PropagateAtLaunch tags, as AWS does.
  const propagated = (g.AutoScalingGroups?.[0]?.Tags ?? []).filter((t) => t.PropagateAtLaunch && t.Key).map((t) => ({ Key: t.Key!, Value: t.Value ?? '' }));
  const run = await c.ec2.send(new RunInstancesCommand({
    ImageId: image, MinCount: 1, MaxCount: 1, InstanceType: 't3.medium', ...(subnet ? { SubnetId: subnet } : {}),
    ...(propagated.length ? { TagSpecifications: [{ ResourceType: 'instance', Tags: propagated }] } : {}),
  }));
  const instanceId = run.Instances![0]!.InstanceId!;
  sandbox.alongside.set(instanceId, { asg: member.asg, az: run.Instances![0]!.Placement?.AvailabilityZone ?? member.az });
  const event = sandbox.lifecycle.begin({ asg: member.asg, hook: LAUNCH_HOOK, instanceId, transition: 'autoscaling:EC2_INSTANCE_LAUNCHING', ...(o.destination ? { destination: o.destination } : {}) });
  return { instanceId, event };
}

