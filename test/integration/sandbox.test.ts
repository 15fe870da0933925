/**
 * The sandbox AWS endpoint with real SDK clients: SSM really runs the project's host scripts
 * on sandbox hosts backed by real etcd; the gaps moto leaves are filled as AWS behaves.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { CompleteLifecycleActionCommand, RecordLifecycleActionHeartbeatCommand } from '@aws-sdk/client-auto-scaling';
import { DetachVolumeCommand, AttachVolumeCommand, waitUntilVolumeAvailable, waitUntilVolumeInUse } from '@aws-sdk/client-ec2';
import { DescribeTargetHealthCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import { DescribeInstanceInformationCommand, SendCommandCommand } from '@aws-sdk/client-ssm';
import { ssmEtcdRunner, runHostScript } from '../../lib/aws/run-command';
import { EtcdClient } from '../../lib/etcd';
import { destroyClients, SANDBOX_RUN, hostScripts, hostOk, provisionCluster, type SandboxClients, sandboxClients, type SandboxCluster } from '../../sandbox/cluster';
import { waitFor } from '../../sandbox/ports';
import { Sandbox } from '../../sandbox/sandbox';

jest.setTimeout(120_000);

describe('sandbox AWS with a real etcd control plane', () => {
  let sandbox: Sandbox;
  let c: SandboxClients;
  let cluster: SandboxCluster;

  beforeAll(async () => {
    sandbox = await Sandbox.start();
    c = sandboxClients(sandbox);
  });
  afterAll(async () => {
    destroyClients(c);
    await sandbox?.stop();
  });
  beforeEach(async () => {
    await sandbox.reset();
    cluster = await provisionCluster(sandbox, c, { name: 'prod' });
  });

  it('runs etcdctl through a real SSM SendCommand on a sandbox host and returns the real member list', async () => {
    const a = cluster.members[0]!;
    const etcd = new EtcdClient(ssmEtcdRunner(c.ssm, hostScripts(), a.instanceId, SANDBOX_RUN), { endpoints: [a.clientUrl] });
    const list = await etcd.memberList();
    expect(list.members.map((m) => [m.name, m.peerUrls[0]]).sort()).toEqual(cluster.members.map((m) => [m.name, m.peerUrl]).sort());
    // Independent check: etcdctl run directly here prints the same IDs in hex.
    const direct = execFileSync('etcdctl', [`--endpoints=${a.clientUrl}`, 'member', 'list'], { encoding: 'utf8', env: { PATH: process.env.PATH } });
    for (const m of list.members) expect(direct).toContain(`${m.id}, started, ${m.name}`);
  });

  it('reports a failing script as Failed with its real exit code and stderr', async () => {
    const a = cluster.members[0]!;
    const res = await runHostScript(c.ssm, hostScripts(), a.instanceId, 'etcd-mount.sh', ['--volume-id', 'vol-bad', '--cluster', 'prod', '--member', 'etcd-a'], SANDBOX_RUN);
    expect(res).toMatchObject({ status: 'Failed', exitCode: 2 });
    expect(res.stderr).toMatch(/invalid volume ID/);
  });

  it('knows which SSM agents are online and refuses commands to a dead instance', async () => {
    const [a, b] = cluster.members;
    const online = await c.ssm.send(new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [a!.instanceId, b!.instanceId] }] }));
    expect(online.InstanceInformationList?.map((i) => [i.InstanceId, i.PingStatus]).sort()).toEqual([[a!.instanceId, 'Online'], [b!.instanceId, 'Online']].sort());
    sandbox.host(b!.instanceId).crash();
    const after = await c.ssm.send(new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [b!.instanceId] }] }));
    expect(after.InstanceInformationList?.[0]?.PingStatus).toBe('ConnectionLost');
    await expect(c.ssm.send(new SendCommandCommand({ DocumentName: 'AWS-RunShellScript', InstanceIds: [b!.instanceId], Parameters: { commands: ['true'] } })))
      .rejects.toMatchObject({ name: 'InvalidInstanceId' });
  });

  it('makes target health follow each host apiserver /readyz (which follows its etcd)', async () => {
    const health = async (): Promise<Record<string, string | undefined>> => {
      const out = await c.elb.send(new DescribeTargetHealthCommand({ TargetGroupArn: cluster.targetGroupArn }));
      return Object.fromEntries((out.TargetHealthDescriptions ?? []).map((d) => [d.Target?.Id ?? '', d.TargetHealth?.State]));
    };
    expect(Object.values(await health())).toEqual(['healthy', 'healthy', 'healthy']);
    const b = cluster.members[1]!;
    await hostOk(c, b.instanceId, 'etcd-member.sh', ['stop']);
    expect((await health())[b.instanceId]).toBe('unhealthy');
    expect((await health())[cluster.members[0]!.instanceId]).toBe('healthy');
  });

  it('models lifecycle actions: CONTINUE recorded once, a second completion refused, heartbeats counted', async () => {
    const a = cluster.members[0]!;
    const event = sandbox.lifecycle.begin({ asg: a.asg, hook: 'qk-launch', instanceId: a.instanceId, transition: 'autoscaling:EC2_INSTANCE_LAUNCHING' });
    expect(event).toMatchObject({ source: 'aws.autoscaling', 'detail-type': 'EC2 Instance-launch Lifecycle Action', detail: { EC2InstanceId: a.instanceId, AutoScalingGroupName: a.asg } });
    const ids = { AutoScalingGroupName: a.asg, LifecycleHookName: 'qk-launch', LifecycleActionToken: event.detail.LifecycleActionToken };
    await c.asg.send(new RecordLifecycleActionHeartbeatCommand(ids));
    await c.asg.send(new CompleteLifecycleActionCommand({ ...ids, LifecycleActionResult: 'CONTINUE' }));
    await expect(c.asg.send(new CompleteLifecycleActionCommand({ ...ids, LifecycleActionResult: 'ABANDON' }))).rejects.toMatchObject({ name: 'ValidationError' });
    expect(sandbox.lifecycle.results(a.instanceId)).toEqual(['CONTINUE']);
    expect(sandbox.lifecycle.calls.filter((x) => x.kind === 'heartbeat' && x.accepted)).toHaveLength(1);
  });

  it('makes an EBS volume appear in and vanish from the host as moto attaches and detaches it', async () => {
    const a = cluster.members[0]!;
    const byId = join(sandbox.host(a.instanceId).root, 'dev/disk/by-id');
    const link = `nvme-Amazon_Elastic_Block_Store_${a.volumeId.replace('-', '')}`;
    expect(readdirSync(byId)).toContain(link);
    await hostOk(c, a.instanceId, 'etcd-member.sh', ['stop']);
    await c.ec2.send(new DetachVolumeCommand({ VolumeId: a.volumeId, InstanceId: a.instanceId }));
    await waitUntilVolumeAvailable({ client: c.ec2, maxWaitTime: 30, minDelay: 1 }, { VolumeIds: [a.volumeId] });
    expect(existsSync(join(byId, link))).toBe(false);
    // Mounting now fails cleanly: no device.
    const res = await runHostScript(c.ssm, hostScripts(), a.instanceId, 'etcd-mount.sh', ['--volume-id', a.volumeId, '--cluster', 'prod', '--member', 'etcd-a'], SANDBOX_RUN);
    expect(res.exitCode).toBe(5);
    await c.ec2.send(new AttachVolumeCommand({ VolumeId: a.volumeId, InstanceId: a.instanceId, Device: '/dev/xvdf' }));
    await waitUntilVolumeInUse({ client: c.ec2, maxWaitTime: 30, minDelay: 1 }, { VolumeIds: [a.volumeId] });
    const mounted = JSON.parse(await hostOk(c, a.instanceId, 'etcd-mount.sh', ['--volume-id', a.volumeId, '--cluster', 'prod', '--member', 'etcd-a'])) as { hasData: boolean; formatted: boolean };
    expect(mounted).toMatchObject({ hasData: true, formatted: false });
    await waitFor('etcd-a back', async () => {
      const out = await hostOk(c, a.instanceId, 'etcd-member.sh', ['start', '--name', 'etcd-a', '--initial-cluster', cluster.members.map((m) => `${m.name}=${m.peerUrl}`).join(','), '--initial-cluster-state', 'existing', '--token', cluster.token]);
      return (JSON.parse(out) as { healthy: boolean }).healthy ? true : undefined;
    });
  });
});
