/**
 * Builds a Quorum Keeper-shaped control plane in the sandbox: per AZ one ASG (min=max=1) with
 * a master, its tagged etcd EBS volume, a tagged target group; then mounts the volumes and
 * bootstraps etcd through SSM with the project's own host scripts — the same path product
 * code uses. Everything goes through the sandbox endpoint with real SDK clients.
 */
import { AutoScalingClient, CreateAutoScalingGroupCommand, DescribeAutoScalingGroupsCommand, PutLifecycleHookCommand } from '@aws-sdk/client-auto-scaling';
import {
  AttachVolumeCommand, CreateLaunchTemplateCommand, CreateSubnetCommand, CreateVolumeCommand, CreateVpcCommand, DescribeImagesCommand, EC2Client,
  waitUntilVolumeInUse,
} from '@aws-sdk/client-ec2';
import { CreateTargetGroupCommand, ElasticLoadBalancingV2Client, ModifyTargetGroupAttributesCommand, RegisterTargetsCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import { SSMClient } from '@aws-sdk/client-ssm';
import { join } from 'node:path';
import { runHostScript } from '../lib/aws/run-command';
import type { HostScriptBundle } from '../lib/host/command';
import { loadHostScripts } from '../lib/host/fs-bundle';
import { waitFor } from './ports';
import type { Sandbox } from './sandbox';
import { harnessEtcd } from './etcd-http';

export const TAG_CLUSTER = 'quorum-keeper/cluster';
export const TAG_MEMBER = 'quorum-keeper/etcd-member';
/** The lifecycle hooks an operator puts on every master ASG (docs/operator-guide.md). */
export const LAUNCH_HOOK = 'quorum-keeper-launch';
export const TERMINATE_HOOK = 'quorum-keeper-terminate';

export interface SandboxMember {
  name: string;
  az: string;
  asg: string;
  instanceId: string;
  volumeId: string;
  peerUrl: string;
  clientUrl: string;
}

export interface SandboxCluster {
  name: string;
  members: SandboxMember[];
  targetGroupArn: string;
  token: string;
}

export interface SandboxClients {
  ec2: EC2Client;
  asg: AutoScalingClient;
  elb: ElasticLoadBalancingV2Client;
  ssm: SSMClient;
}

export function sandboxClients(sandbox: Sandbox): SandboxClients {
  const cfg = sandbox.clientConfig();
  return { ec2: new EC2Client(cfg), asg: new AutoScalingClient(cfg), elb: new ElasticLoadBalancingV2Client(cfg), ssm: new SSMClient(cfg) };
}

export function destroyClients(c: SandboxClients): void {
  c.ec2.destroy();
  c.asg.destroy();
  c.elb.destroy();
  c.ssm.destroy();
}

export const HOST_SCRIPTS_DIR = join(__dirname, '..', 'host');

export function hostScripts(): HostScriptBundle {
  return loadHostScripts(HOST_SCRIPTS_DIR);
}

type Progress = (line: string) => void;

/** Poll SSM every second: the sandbox answers at once, so AWS-sized back-off only adds latency. */
export const SANDBOX_RUN = { minDelaySec: 0.25, maxDelaySec: 0.5, maxWaitSec: 120 } as const;

/** Runs a host script and fails loudly (with the script's stderr) unless it exits 0. */
export async function hostOk(c: SandboxClients, instanceId: string, script: Parameters<typeof runHostScript>[3], args: string[]): Promise<string> {
  const res = await runHostScript(c.ssm, hostScripts(), instanceId, script, args, SANDBOX_RUN);
  if (res.exitCode !== 0) throw new Error(`${script} ${args.join(' ')} on ${instanceId}: ${res.status} (exit ${res.exitCode})\n${res.stderr}`);
  return res.stdout;
}

export async function provisionCluster(
  sandbox: Sandbox,
  c: SandboxClients,
  opts: {
    name: string; size?: number; progress?: Progress; deregistrationDelaySec?: number;
    /** etcd member names, when they are not the slots' member tags (kubeadm names members after hosts). */
    etcdNames?: readonly string[];
  },
): Promise<SandboxCluster> {
  const size = opts.size ?? 3;
  const say = opts.progress ?? (() => undefined);
  const azs = ['us-east-1a', 'us-east-1b', 'us-east-1c', 'us-east-1d', 'us-east-1e'].slice(0, size);
  const tags = (member?: string) => [
    { Key: TAG_CLUSTER, Value: opts.name },
    ...(member ? [{ Key: TAG_MEMBER, Value: member }] : []),
  ];

  const vpc = await c.ec2.send(new CreateVpcCommand({ CidrBlock: '10.0.0.0/16' }));
  const vpcId = vpc.Vpc!.VpcId!;
  const image = (await c.ec2.send(new DescribeImagesCommand({}))).Images?.[0]?.ImageId ?? 'ami-12c6146b';
  await c.ec2.send(new CreateLaunchTemplateCommand({ LaunchTemplateName: `${opts.name}-master`, LaunchTemplateData: { ImageId: image, InstanceType: 't3.medium' } }));
  // Health checks as the operator guide recommends for the API server group: TCP every 10 s,
  // 3 to turn healthy (NLB defaults 30 s × 5 keep a new master out for 2.5 min after registration).
  const tg = await c.elb.send(new CreateTargetGroupCommand({
    Name: `${opts.name}-apiserver`, Protocol: 'TCP', Port: 6443, VpcId: vpcId, TargetType: 'instance', Tags: tags(),
    HealthCheckProtocol: 'TCP', HealthCheckIntervalSeconds: 10, HealthyThresholdCount: 3, UnhealthyThresholdCount: 3,
  }));
  const targetGroupArn = tg.TargetGroups![0]!.TargetGroupArn!;
  // A retiring master drains for the whole delay (its apiserver holds watches open): 300 s by
  // default on AWS; the sandbox cluster uses 2 s so scenarios stay quick (a test asks for more).
  await c.elb.send(new ModifyTargetGroupAttributesCommand({
    TargetGroupArn: targetGroupArn, Attributes: [{ Key: 'deregistration_delay.timeout_seconds', Value: String(opts.deregistrationDelaySec ?? 2) }],
  }));

  // The harness builds the world: its own mounts need not wait out the device-link delay the
  // product's flows face (0–5 s per provisioning, ~100 provisionings per test run).
  const deviceDelay = sandbox.deviceDelayMs;
  sandbox.deviceDelayMs = () => 0;
  try {
    return await provisionMembers(sandbox, c, opts, { azs, tags, vpcId, targetGroupArn, say });
  } finally {
    sandbox.deviceDelayMs = deviceDelay;
  }
}

async function provisionMembers(
  sandbox: Sandbox, c: SandboxClients, opts: { name: string; etcdNames?: readonly string[] },
  w: { azs: string[]; tags: (member?: string) => Array<{ Key: string; Value: string }>; vpcId: string; targetGroupArn: string; say: (s: string) => void },
): Promise<SandboxCluster> {
  const { azs, tags, vpcId, targetGroupArn, say } = w;
  const members: SandboxMember[] = [];
  for (const [i, az] of azs.entries()) {
    const name = `etcd-${String.fromCharCode(97 + i)}`;
    const asgName = `${opts.name}-master-${az}`;
    const subnet = await c.ec2.send(new CreateSubnetCommand({ VpcId: vpcId, CidrBlock: `10.0.${i + 1}.0/24`, AvailabilityZone: az }));
    const vol = await c.ec2.send(new CreateVolumeCommand({
      AvailabilityZone: az, Size: 20, VolumeType: 'gp3', Encrypted: true,
      TagSpecifications: [{ ResourceType: 'volume', Tags: tags(name) }],
    }));
    await c.asg.send(new CreateAutoScalingGroupCommand({
      AutoScalingGroupName: asgName, MinSize: 1, MaxSize: 1, DesiredCapacity: 1,
      LaunchTemplate: { LaunchTemplateName: `${opts.name}-master` }, VPCZoneIdentifier: subnet.Subnet!.SubnetId!,
      Tags: tags(name).map((t) => ({ ...t, PropagateAtLaunch: true, ResourceId: asgName, ResourceType: 'auto-scaling-group' })),
    }));
    for (const [hook, transition, dflt] of [[LAUNCH_HOOK, 'autoscaling:EC2_INSTANCE_LAUNCHING', 'ABANDON'], [TERMINATE_HOOK, 'autoscaling:EC2_INSTANCE_TERMINATING', 'CONTINUE']] as const) {
      await c.asg.send(new PutLifecycleHookCommand({ AutoScalingGroupName: asgName, LifecycleHookName: hook, LifecycleTransition: transition, HeartbeatTimeout: 1800, DefaultResult: dflt }));
    }
    const instanceId = await waitFor(`an instance in ${asgName}`, async () => {
      const d = await c.asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [asgName] }));
      return d.AutoScalingGroups?.[0]?.Instances?.[0]?.InstanceId;
    });
    await c.ec2.send(new AttachVolumeCommand({ VolumeId: vol.VolumeId!, InstanceId: instanceId, Device: '/dev/xvdf' }));
    await waitUntilVolumeInUse({ client: c.ec2, maxWaitTime: 30, minDelay: 1 }, { VolumeIds: [vol.VolumeId!] });
    await sandbox.bootHost(instanceId);
    say(`${name}: ASG ${asgName} launched ${instanceId} in ${az}; volume ${vol.VolumeId!} attached`);
    members.push({ name, az, asg: asgName, instanceId, volumeId: vol.VolumeId!, peerUrl: '', clientUrl: '' });
  }

  // Ask each host which URLs it advertises (from its own host.env), then mount and start.
  for (const m of members) {
    const urls = JSON.parse(await hostOk(c, m.instanceId, 'etcd-member.sh', ['urls'])) as { peerUrl: string; clientUrl: string };
    m.peerUrl = urls.peerUrl;
    m.clientUrl = urls.clientUrl;
  }
  const token = `${opts.name}-${Date.now().toString(36)}`;
  const etcdName = (i: number) => opts.etcdNames?.[i] ?? members[i]!.name;
  const initialCluster = members.map((m, i) => `${etcdName(i)}=${m.peerUrl}`).join(',');
  await Promise.all(members.map(async (m) => {
    await hostOk(c, m.instanceId, 'etcd-mount.sh', ['--volume-id', m.volumeId, '--cluster', opts.name, '--member', m.name, '--allow-format']);
    say(`${m.name}: volume mounted and marked ${opts.name}/${m.name}`);
  }));
  await Promise.all(members.map(async (m, i) => {
    await hostOk(c, m.instanceId, 'etcd-member.sh', ['start', '--name', etcdName(i), '--initial-cluster', initialCluster, '--initial-cluster-state', 'new', '--token', token]);
    say(`${m.name}: etcd started (peer ${m.peerUrl})`);
  }));
  // Each volume's marker records the member ID its data belongs to, as a replacement that caught
  // up (or an adoption) leaves it.
  const listed = await waitFor('the new cluster\'s member list', async () => {
    const list = await harnessEtcd(members.map((m) => m.clientUrl)).memberList().catch(() => null);
    return list && members.every((m) => list.members.some((x) => x.peerUrls.includes(m.peerUrl))) ? list : undefined;
  }, { timeoutMs: 30_000, intervalMs: 200 });
  await Promise.all(members.map(async (m) => {
    const id = listed.members.find((x) => x.peerUrls.includes(m.peerUrl))!.id;
    await hostOk(c, m.instanceId, 'etcd-mount.sh', ['--record-member-id', id, '--volume-id', m.volumeId, '--cluster', opts.name, '--member', m.name]);
  }));
  await c.elb.send(new RegisterTargetsCommand({ TargetGroupArn: targetGroupArn, Targets: members.map((m) => ({ Id: m.instanceId, Port: 6443 })) }));
  return { name: opts.name, members, targetGroupArn, token };
}
