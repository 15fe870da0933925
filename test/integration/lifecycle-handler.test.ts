/** The lifecycle Lambda entry (middy + Powertools) against moto: validation and slot lookup. */
import { AutoScalingClient, CreateAutoScalingGroupCommand } from '@aws-sdk/client-auto-scaling';
import { CreateLaunchTemplateCommand, CreateSubnetCommand, CreateVpcCommand, EC2Client } from '@aws-sdk/client-ec2';
import type { Context } from 'aws-lambda';
import { MotoServer } from '../../sandbox/moto';
import { LifecycleModel } from '../../sandbox/lifecycle';

jest.setTimeout(60_000);

const context = { getRemainingTimeInMillis: () => 60_000, functionName: 'lifecycle', awsRequestId: 'test' } as unknown as Context;

describe('lifecycle handler', () => {
  let moto: MotoServer;
  let handler: (event: unknown, ctx: Context) => Promise<{ outcome: string; reason?: string; cluster?: string; member?: string }>;
  let asg: AutoScalingClient;
  let subnetId: string;

  beforeAll(async () => {
    moto = await MotoServer.start();
    process.env.AWS_REGION = 'us-east-1';
    process.env.QK_AWS_ENDPOINT = moto.url;
    process.env.AWS_ACCESS_KEY_ID = 'test';
    process.env.AWS_SECRET_ACCESS_KEY = 'test';
    process.env.POWERTOOLS_LOG_LEVEL = 'ERROR';
    handler = (await import('../../functions/lifecycle')).handler;
    const cfg = { endpoint: moto.url, region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } };
    asg = new AutoScalingClient(cfg);
    const ec2 = new EC2Client(cfg);
    const vpc = await ec2.send(new CreateVpcCommand({ CidrBlock: '10.0.0.0/16' }));
    subnetId = (await ec2.send(new CreateSubnetCommand({ VpcId: vpc.Vpc!.VpcId!, CidrBlock: '10.0.1.0/24', AvailabilityZone: 'us-east-1a' }))).Subnet!.SubnetId!;
    await ec2.send(new CreateLaunchTemplateCommand({ LaunchTemplateName: 'lt', LaunchTemplateData: { ImageId: 'ami-12c6146b' } }));
    ec2.destroy();
  });
  afterAll(async () => {
    asg?.destroy();
    await moto?.stop();
  });

  async function group(name: string, tags: Record<string, string>): Promise<void> {
    await asg.send(new CreateAutoScalingGroupCommand({
      AutoScalingGroupName: name, MinSize: 0, MaxSize: 1, DesiredCapacity: 0, LaunchTemplate: { LaunchTemplateName: 'lt' }, VPCZoneIdentifier: subnetId,
      Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value, PropagateAtLaunch: true, ResourceId: name, ResourceType: 'auto-scaling-group' })),
    }));
  }

  const event = (asgName: string) => new LifecycleModel().begin({ asg: asgName, hook: 'qk-launch', instanceId: 'i-0123456789abcdef0', transition: 'autoscaling:EC2_INSTANCE_LAUNCHING' });

  it('accepts an event for a tagged master slot', async () => {
    await group('prod-master-a', { 'quorum-keeper/cluster': 'prod', 'quorum-keeper/etcd-member': 'etcd-a' });
    await expect(handler(event('prod-master-a'), context)).resolves.toEqual({ outcome: 'accepted', cluster: 'prod', member: 'etcd-a' });
  });

  it('ignores an ASG that is not a Quorum Keeper master, without failing', async () => {
    await group('workers', { team: 'web' });
    await expect(handler(event('workers'), context)).resolves.toMatchObject({ outcome: 'ignored', reason: expect.stringMatching(/no quorum-keeper\/cluster tag/) as unknown });
  });

  it('ignores a slot whose tag carries shell metacharacters', async () => {
    await group('evil', { 'quorum-keeper/cluster': 'prod', 'quorum-keeper/etcd-member': 'etcd-a;reboot' });
    await expect(handler(event('evil'), context)).resolves.toMatchObject({ outcome: 'ignored', reason: expect.stringMatching(/not a valid member name/) as unknown });
  });

  it('rejects a malformed event with a clear error', async () => {
    const bad = event('prod-master-a') as unknown as { detail: Record<string, unknown> };
    bad.detail.EC2InstanceId = 'i-$(reboot)';
    await expect(handler(bad, context)).rejects.toThrow(/detail.EC2InstanceId: not an EC2 instance ID/);
    await expect(handler({ hello: 'world' }, context)).rejects.toThrow(/not a valid Auto Scaling lifecycle event/);
  });
});
