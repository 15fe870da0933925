/**
 * Builds control planes in the sandbox, through the sandbox endpoint with real SDK clients:
 *   provisionInfrastructure  bare infrastructure: per AZ one ASG (min=max=1) with both hooks, a
 *                            blank tagged etcd volume, hosts with etcd installed but not running,
 *                            the tagged target group (what Quorum Keeper bootstraps from);
 *   handBuildCluster         a cluster built by hand before Quorum Keeper (what `adopt` takes over);
 *   provisionCluster         a test fixture: the cluster as Quorum Keeper leaves it once formed.
 */
import { AutoScalingClient, CreateAutoScalingGroupCommand, DescribeAutoScalingGroupsCommand, PutLifecycleHookCommand, UpdateAutoScalingGroupCommand } from '@aws-sdk/client-auto-scaling';
import {
  AttachVolumeCommand, CreateLaunchTemplateCommand, CreateSubnetCommand, CreateVolumeCommand, CreateVpcCommand, DescribeImagesCommand, EC2Client,
  waitUntilVolumeInUse,
} from '@aws-sdk/client-ec2';
import { CreateTargetGroupCommand, ElasticLoadBalancingV2Client, ModifyTargetGroupAttributesCommand, RegisterTargetsCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import { SSMClient } from '@aws-sdk/client-ssm';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runHostScript } from '../lib/aws/run-command';
import type { HostScriptBundle } from '../lib/host/command';
import { loadHostScripts } from '../lib/host/fs-bundle';
import { waitFor } from './ports';
import type { Sandbox } from './sandbox';
import { harnessEtcd } from './etcd-http';
import type { SandboxHost } from './host';
import { HOST_PKI } from './pki';

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

export interface InfraOptions {
  name: string;
  size?: number;
  progress?: Progress;
  deregistrationDelaySec?: number;
  /**
   * How the masters come up: `in-service` — each ASG launches its master before its hooks exist
   * (the harness then builds the cluster itself); `through-hooks` — the hooks exist first, so each
   * master waits in Pending:Wait for its launch hook and its EventBridge event goes to
   * `sandbox.asgModel.deliver` (or `undelivered`), as when an operator creates the ASGs on AWS.
   */
  launch?: 'in-service' | 'through-hooks';
}

/**
 * The infrastructure of a cluster and nothing more: per AZ a subnet, a blank encrypted volume
 * tagged for its member, and an ASG (min = max = desired = 1, tags propagated) with both lifecycle
 * hooks; the launch template; the API server target group. No volume is attached, no etcd runs:
 * each host boots with etcd installed (its systemd unit enabled, nothing configured).
 */
export async function provisionInfrastructure(sandbox: Sandbox, c: SandboxClients, opts: InfraOptions): Promise<SandboxCluster> {
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
  const throughHooks = opts.launch === 'through-hooks';
  const members: SandboxMember[] = [];
  for (const [i, az] of azs.entries()) {
    const name = `etcd-${String.fromCharCode(97 + i)}`;
    const asgName = `${opts.name}-master-${az}`;
    const subnet = await c.ec2.send(new CreateSubnetCommand({ VpcId: vpcId, CidrBlock: `10.0.${i + 1}.0/24`, AvailabilityZone: az }));
    const vol = await c.ec2.send(new CreateVolumeCommand({
      AvailabilityZone: az, Size: 20, VolumeType: 'gp3', Encrypted: true,
      TagSpecifications: [{ ResourceType: 'volume', Tags: tags(name) }],
    }));
    // Through hooks: created empty, hooks put, then sized to one (what CloudFormation does with
    // LifecycleHookSpecificationList: the hooks exist before the first launch).
    const initial = throughHooks ? 0 : 1;
    await c.asg.send(new CreateAutoScalingGroupCommand({
      AutoScalingGroupName: asgName, MinSize: initial, MaxSize: 1, DesiredCapacity: initial,
      LaunchTemplate: { LaunchTemplateName: `${opts.name}-master` }, VPCZoneIdentifier: subnet.Subnet!.SubnetId!,
      // As the operator guide recommends: a terminate hook completed ABANDON (by hand) retains the master.
      InstanceLifecyclePolicy: { RetentionTriggers: { TerminateHookAbandon: 'retain' } },
      Tags: tags(name).map((t) => ({ ...t, PropagateAtLaunch: true, ResourceId: asgName, ResourceType: 'auto-scaling-group' })),
    }));
    for (const [hook, transition, dflt] of [[LAUNCH_HOOK, 'autoscaling:EC2_INSTANCE_LAUNCHING', 'ABANDON'], [TERMINATE_HOOK, 'autoscaling:EC2_INSTANCE_TERMINATING', 'CONTINUE']] as const) {
      await c.asg.send(new PutLifecycleHookCommand({ AutoScalingGroupName: asgName, LifecycleHookName: hook, LifecycleTransition: transition, HeartbeatTimeout: 1800, DefaultResult: dflt }));
    }
    members.push({ name, az, asg: asgName, instanceId: '', volumeId: vol.VolumeId!, peerUrl: '', clientUrl: '' });
  }
  // Every group launches (at once when through hooks: the masters come up together).
  if (throughHooks) {
    await Promise.all(members.map((m) => c.asg.send(new UpdateAutoScalingGroupCommand({ AutoScalingGroupName: m.asg, MinSize: 1, DesiredCapacity: 1 }))));
  }
  await Promise.all(members.map(async (m) => {
    m.instanceId = await waitFor(`an instance in ${m.asg}`, async () => {
      const d = await c.asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [m.asg] }));
      return d.AutoScalingGroups?.[0]?.Instances?.[0]?.InstanceId;
    });
    await sandbox.bootHost(m.instanceId);
    if (throughHooks) await sandbox.asgModel.begin(m.asg, m.instanceId, 'autoscaling:EC2_INSTANCE_LAUNCHING');
    const host = sandbox.host(m.instanceId);
    Object.assign(m, { peerUrl: host.peerUrl, clientUrl: host.clientUrl });
    say(`${m.name}: ASG ${m.asg} launched ${m.instanceId} in ${m.az}${throughHooks ? ' (Pending:Wait on its launch hook)' : ''}; blank volume ${m.volumeId}`);
  }));
  return { name: opts.name, members, targetGroupArn, token: '' };
}

/** The harness's mounts need not wait out the device-link delay the product's flows face (0–5 s each). */
async function withoutDeviceDelay<T>(sandbox: Sandbox, fn: () => Promise<T>): Promise<T> {
  const deviceDelay = sandbox.deviceDelayMs;
  sandbox.deviceDelayMs = () => 0;
  try {
    return await fn();
  } finally {
    sandbox.deviceDelayMs = deviceDelay;
  }
}

async function attachAll(c: SandboxClients, members: readonly SandboxMember[]): Promise<void> {
  await Promise.all(members.map(async (m) => {
    await c.ec2.send(new AttachVolumeCommand({ VolumeId: m.volumeId, InstanceId: m.instanceId, Device: '/dev/xvdf' }));
    await waitUntilVolumeInUse({ client: c.ec2, maxWaitTime: 30, minDelay: 1 }, { VolumeIds: [m.volumeId] });
  }));
}

/**
 * A test fixture, not the product's way: the harness forms a Quorum Keeper-shaped cluster itself
 * (volumes mounted and marked, etcd started with the host scripts, member IDs recorded in the
 * markers, targets registered), the state a cluster is in once Quorum Keeper has bootstrapped or
 * adopted it. Scenario tests start from here in seconds; the demo and the bootstrap tests start
 * from `provisionInfrastructure` and let Quorum Keeper form the cluster.
 */
export async function provisionCluster(
  sandbox: Sandbox,
  c: SandboxClients,
  opts: Omit<InfraOptions, 'launch'> & {
    /** etcd member names, when they are not the slots' member tags (kubeadm names members after hosts). */
    etcdNames?: readonly string[];
  },
): Promise<SandboxCluster> {
  const infra = await provisionInfrastructure(sandbox, c, opts);
  return withoutDeviceDelay(sandbox, () => formMembers(sandbox, c, infra, opts));
}

async function formMembers(sandbox: Sandbox, c: SandboxClients, infra: SandboxCluster, opts: { name: string; etcdNames?: readonly string[]; progress?: Progress }): Promise<SandboxCluster> {
  const { members, targetGroupArn } = infra;
  const say = opts.progress ?? (() => undefined);
  await attachAll(c, members);
  await sandbox.syncDevices();
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
  const listed = await waitForMembers(members);
  await Promise.all(members.map(async (m) => {
    const id = listed.members.find((x) => x.peerUrls.includes(m.peerUrl))!.id;
    await hostOk(c, m.instanceId, 'etcd-mount.sh', ['--record-member-id', id, '--volume-id', m.volumeId, '--cluster', opts.name, '--member', m.name]);
  }));
  await c.elb.send(new RegisterTargetsCommand({ TargetGroupArn: targetGroupArn, Targets: members.map((m) => ({ Id: m.instanceId, Port: 6443 })) }));
  return { ...infra, token };
}

function waitForMembers(members: readonly SandboxMember[]) {
  return waitFor('the new cluster\'s member list', async () => {
    const list = await harnessEtcd(members.map((m) => m.clientUrl)).memberList().catch(() => null);
    return list && members.every((m) => list.members.some((x) => x.peerUrls.includes(m.peerUrl))) ? list : undefined;
  }, { timeoutMs: 30_000, intervalMs: 200 });
}

/**
 * A cluster built by hand, the way many running clusters were, before Quorum Keeper: on each
 * master the operator mounted the member's volume at /var/lib/etcd, wrote an etcd configuration
 * of their own (/etc/etcd/etcd.conf.yml: members named after their hosts, data in
 * /var/lib/etcd/data, mutual TLS with the kubeadm-path certificates) and a drop-in pointing the
 * AMI's etcd unit at it, and started the unit. No Quorum Keeper marker, no recorded member ID, no
 * host script ran. The API servers are registered in the target group.
 */
export async function handBuildCluster(sandbox: Sandbox, c: SandboxClients, opts: Omit<InfraOptions, 'launch'>): Promise<SandboxCluster & { etcdNames: string[] }> {
  const infra = await provisionInfrastructure(sandbox, c, opts);
  const say = opts.progress ?? (() => undefined);
  const { members } = infra;
  return withoutDeviceDelay(sandbox, async () => {
    await attachAll(c, members);
    await sandbox.syncDevices();
    const names = members.map((m) => `ip-10-0-${members.indexOf(m) + 1}-${10 + members.indexOf(m)}.ec2.internal`);
    const initialCluster = members.map((m, i) => `${names[i]}=${m.peerUrl}`).join(',');
    const token = `hand-${opts.name}`;
    await Promise.all(members.map(async (m, i) => {
      const host = sandbox.host(m.instanceId);
      await startByHand(host, { name: names[i]!, initialCluster, token, volumeDevice: join(host.root, 'dev/disk/by-id', `nvme-Amazon_Elastic_Block_Store_${m.volumeId.replace('-', '')}`) });
      say(`${m.name}: mounted ${m.volumeId} at /var/lib/etcd by hand; etcd ${names[i]} started by its own unit (no marker)`);
    }));
    await waitForMembers(members);
    await c.elb.send(new RegisterTargetsCommand({ TargetGroupArn: infra.targetGroupArn, Targets: members.map((m) => ({ Id: m.instanceId, Port: 6443 })) }));
    return { ...infra, token, etcdNames: names };
  });
}

/** What an operator does on one master to run etcd without Quorum Keeper (see handBuildCluster). */
async function startByHand(host: SandboxHost, o: { name: string; initialCluster: string; token: string; volumeDevice: string }): Promise<void> {
  const r = (p: string) => join(host.root, p);
  // "mount": in the sandbox a volume is a directory and a mount a symlink (QK_DEVICE_MODE=directory).
  writeFileSync(join(o.volumeDevice, '.qk-fs'), 'ext4\n');
  symlinkSync(o.volumeDevice, r('var/lib/etcd'));
  mkdirSync(r('var/lib/etcd/data'), { recursive: true, mode: 0o700 });
  mkdirSync(r('etc/etcd'), { recursive: true });
  const tls = (kind: 'client' | 'peer') => [
    `${kind}-transport-security:`, `  cert-file: ${r(kind === 'client' ? HOST_PKI.serverCert : HOST_PKI.peerCert)}`,
    `  key-file: ${r(kind === 'client' ? HOST_PKI.serverKey : HOST_PKI.peerKey)}`, `  trusted-ca-file: ${r(HOST_PKI.cacert)}`, '  client-cert-auth: true',
  ];
  writeFileSync(r('etc/etcd/etcd.conf.yml'), [
    `name: ${o.name}`, `data-dir: ${r('var/lib/etcd/data')}`,
    `listen-peer-urls: ${host.peerUrl}`, `listen-client-urls: ${host.clientUrl}`,
    `initial-advertise-peer-urls: ${host.peerUrl}`, `advertise-client-urls: ${host.clientUrl}`,
    `initial-cluster: ${o.initialCluster}`, 'initial-cluster-state: new', `initial-cluster-token: ${o.token}`,
    'enable-grpc-gateway: true', ...(host.scheme === 'https' ? [...tls('client'), ...tls('peer')] : []), '',
  ].join('\n'));
  mkdirSync(r('etc/systemd/system/etcd.service.d'), { recursive: true });
  const etcd = host.binDir ? join(host.binDir, 'etcd') : 'etcd';
  writeFileSync(r('etc/systemd/system/etcd.service.d/05-local.conf'), `[Service]\nExecStart=\nExecStart=${etcd} --config-file ${r('etc/etcd/etcd.conf.yml')}\nTimeoutStartSec=infinity\n`);
  const out = await host.run(['systemctl daemon-reload', 'systemctl start --no-block etcd.service'], 30_000);
  if (out.exitCode !== 0) throw new Error(`starting etcd by hand on ${host.instanceId}: ${out.stderr}`);
}
