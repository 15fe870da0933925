/**
 * The lifecycle Lambda entry (middy + Powertools, host scripts embedded as text) against the
 * sandbox: the composition root product code really runs with.
 */
import { AutoScalingClient, CreateAutoScalingGroupCommand } from '@aws-sdk/client-auto-scaling';
import type { Context } from 'aws-lambda';
import { sandboxLambdaEnv } from '../../sandbox/control';
import { killMaster, memberOf, LAUNCH_HOOK } from '../../sandbox/scenario';
import { oneClusterPerFile } from '../support/scenario-suite';

jest.setTimeout(120_000);

const context = { getRemainingTimeInMillis: () => 900_000, functionName: 'lifecycle', awsRequestId: 'test' } as unknown as Context;
type Handler = (event: unknown, ctx: Context) => Promise<{ outcome: string; reason?: string; cluster?: string; member?: string }>;

describe('lifecycle handler', () => {
  let handler: Handler;
  const t = oneClusterPerFile({
    ready: async (w) => {
      Object.assign(process.env, sandboxLambdaEnv(w.sandbox, w.ctl));
      handler = (await import('../../functions/lifecycle')).handler;
    },
  });

  async function group(name: string, tags: Record<string, string>): Promise<void> {
    const asg = new AutoScalingClient(t.sandbox.clientConfig());
    await asg.send(new CreateAutoScalingGroupCommand({
      AutoScalingGroupName: name, MinSize: 0, MaxSize: 1, DesiredCapacity: 0, LaunchTemplate: { LaunchTemplateName: 'prod-master' }, AvailabilityZones: ['us-east-1a'],
      Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value, PropagateAtLaunch: true, ResourceId: name, ResourceType: 'auto-scaling-group' })),
    }));
    asg.destroy();
  }
  const eventFor = (asg: string) => t.sandbox.lifecycle.begin({ asg, hook: LAUNCH_HOOK, instanceId: 'i-0123456789abcdef0', transition: 'autoscaling:EC2_INSTANCE_LAUNCHING' });

  it('replaces a dead master end to end through the Lambda handler', async () => {
    const w = t.writer.start('handler');
    const { instanceId, event } = await killMaster(t.sandbox, t.c, memberOf(t.cluster, 'etcd-c'));
    await expect(handler(event, context)).resolves.toEqual({ outcome: 'continued', cluster: 'prod', member: 'etcd-c' });
    expect(t.sandbox.lifecycle.results(instanceId)).toEqual(['CONTINUE']);
    await t.writer.check(w, 'replacement through the Lambda handler');
  });

  it('ignores an ASG that is not a Quorum Keeper master, without failing', async () => {
    await group('workers', { team: 'web' });
    await expect(handler(eventFor('workers'), context)).resolves.toMatchObject({ outcome: 'ignored', reason: expect.stringMatching(/no quorum-keeper\/cluster tag/) as unknown });
  });

  it('ignores a slot whose tag carries shell metacharacters', async () => {
    await group('evil', { 'quorum-keeper/cluster': 'prod', 'quorum-keeper/etcd-member': 'etcd-a;reboot' });
    await expect(handler(eventFor('evil'), context)).resolves.toMatchObject({ outcome: 'ignored', reason: expect.stringMatching(/not a valid member name/) as unknown });
  });

  it('rejects a malformed event with a clear error and no side effect', async () => {
    const bad = eventFor('evil') as unknown as { detail: Record<string, unknown> };
    bad.detail.EC2InstanceId = 'i-$(reboot)';
    await expect(handler(bad, context)).rejects.toThrow(/detail.EC2InstanceId: not an EC2 instance ID/);
    await expect(handler({ hello: 'world' }, context)).rejects.toThrow(/not a valid Auto Scaling lifecycle event/);
  });
});
