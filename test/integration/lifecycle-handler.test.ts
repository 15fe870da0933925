/**
 * The lifecycle Lambda entry (middy + Powertools, host scripts embedded as text) against the
 * sandbox: the composition root product code really runs with.
 */
import { AutoScalingClient, CreateAutoScalingGroupCommand } from '@aws-sdk/client-auto-scaling';
import type { Context } from 'aws-lambda';
import { receivedAlerts, sandboxLambdaEnv } from '../../sandbox/control';
import { killMaster, launchAlongside, memberOf, LAUNCH_HOOK } from '../../sandbox/scenario';
import { oneClusterPerFile } from '../support/scenario-suite';

jest.setTimeout(120_000);

const context = { getRemainingTimeInMillis: () => 900_000, functionName: 'lifecycle', awsRequestId: 'test' } as unknown as Context;
type Handler = (event: unknown, ctx: Context) => Promise<{ outcome: string; reason?: string; cluster?: string; member?: string }>;

describe('lifecycle handler', () => {
  let handler: Handler;
  const t = oneClusterPerFile({
    ready: async (w) => {
      // The stack's `clusters` parameter: this deployment serves prod only.
      Object.assign(process.env, sandboxLambdaEnv(w.sandbox, w.ctl), { QK_CLUSTERS: 'prod' });
      handler = (await import('../../functions/lifecycle')).handler;
    },
  });
  afterAll(() => {
    delete process.env.QK_CLUSTERS;
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

  it('a launch into the warm pool is CONTINUEd at once: no SSM command, no volume change, no alert', async () => {
    const a = memberOf(t.cluster, 'etcd-a');
    const volumeBefore = (await t.sandbox.describeVolume(a.volumeId))?.Attachments;
    const { instanceId, event } = await launchAlongside(t.sandbox, t.c, a, { destination: 'WarmPool' });
    const commands = t.sandbox.invocations.size;
    await expect(handler(event, context)).resolves.toEqual({ outcome: 'continued', cluster: 'prod', member: 'etcd-a', reason: expect.stringMatching(/warm pool/) as unknown });
    expect(t.sandbox.lifecycle.results(instanceId)).toEqual(['CONTINUE']);
    expect(t.sandbox.invocations.size).toBe(commands);
    expect((await t.sandbox.describeVolume(a.volumeId))?.Attachments).toEqual(volumeBefore);
    expect(await receivedAlerts(t.ctl)).toEqual([]);
  });

  it('ignores an ASG that is not a Quorum Keeper master, without failing', async () => {
    await group('workers', { team: 'web' });
    await expect(handler(eventFor('workers'), context)).resolves.toMatchObject({ outcome: 'ignored', reason: expect.stringMatching(/no quorum-keeper\/cluster tag/) as unknown });
  });

  it('ignores a master of a cluster the deployment does not serve (its roles may not act on it), without failing or alerting', async () => {
    await group('other-a', { 'quorum-keeper/cluster': 'other', 'quorum-keeper/etcd-member': 'etcd-a' });
    await expect(handler(eventFor('other-a'), context)).resolves.toMatchObject({ outcome: 'ignored', reason: expect.stringMatching(/cluster other, which this deployment does not serve \(its `clusters` parameter: prod\)/) as unknown });
    expect(await receivedAlerts(t.ctl)).toEqual([]);
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

  describe('fault matrix: malformed and hostile events → a clear answer and no side effect', () => {
    const rows: string[] = [];
    afterAll(() => console.log(`fault matrix (hostile events, lifecycle handler):\n| event | answer |\n|---|---|\n${rows.join('\n')}`));
    const launch = () => eventFor('evil') as unknown as { source: string; detail: Record<string, unknown> };
    const mutated = (f: (e: ReturnType<typeof launch>) => void) => () => {
      const e = launch();
      f(e);
      return e;
    };
    const CASES: Array<[string, () => unknown, RegExp]> = [
      ['not an object (a string)', () => 'reboot', /not a valid Auto Scaling lifecycle event/],
      ['null', () => null, /not a valid Auto Scaling lifecycle event/],
      ['an array', () => [launch()], /not a valid Auto Scaling lifecycle event/],
      ['another source (aws.ec2)', mutated((e) => { e.source = 'aws.ec2'; }), /source/],
      ['a number as the token', mutated((e) => { e.detail.LifecycleActionToken = 42; }), /LifecycleActionToken/],
      ['an instance ID carrying a command', mutated((e) => { e.detail.EC2InstanceId = 'i-$(reboot)'; }), /EC2InstanceId: not an EC2 instance ID/],
      ['an ASG name with a newline and backticks', mutated((e) => { e.detail.AutoScalingGroupName = 'prod\n`reboot`'; }), /AutoScalingGroupName/],
      ['a 100 KB metadata blob', mutated((e) => { e.detail.NotificationMetadata = 'x'.repeat(100_000); }), /NotificationMetadata/],
      ['a 1 MB event of unknown fields', mutated((e) => { e.detail.Junk = 'y'.repeat(1_000_000); }), /larger than any EventBridge event/],
    ];
    it.each(CASES)('%s', async (what, event, answer) => {
      const before = { commands: t.sandbox.invocations.size, hooks: t.sandbox.lifecycle.calls.length, detaches: t.sandbox.detachCalls.length };
      let said = '';
      await handler(event(), context).then((r) => { said = `resolved ${JSON.stringify(r)}`; }, (err: unknown) => { said = err instanceof Error ? err.message : String(err); });
      rows.push(`| ${what} | ${said.replace(/\|/g, '\\|').slice(0, 160)} |`);
      expect(said).toMatch(answer);
      expect({ commands: t.sandbox.invocations.size, hooks: t.sandbox.lifecycle.calls.length, detaches: t.sandbox.detachCalls.length }).toEqual(before);
    });
    it.each([
      ['a member tag carrying shell metacharacters', { 'quorum-keeper/cluster': 'prod', 'quorum-keeper/etcd-member': 'etcd-a;reboot' }, /not a valid member name/],
      ['a cluster tag carrying a command substitution', { 'quorum-keeper/cluster': '$(reboot)', 'quorum-keeper/etcd-member': 'etcd-a' }, /not a valid cluster name/],
    ])('%s: ignored', async (what, tags, reason) => {
      const name = `evil-${rows.length}`;
      await group(name, tags);
      const before = { commands: t.sandbox.invocations.size, hooks: t.sandbox.lifecycle.calls.length };
      const out = await handler(eventFor(name), context);
      rows.push(`| ${what} | ${out.outcome}: ${out.reason ?? ''} |`);
      expect(out).toMatchObject({ outcome: 'ignored', reason: expect.stringMatching(reason) as unknown });
      expect({ commands: t.sandbox.invocations.size, hooks: t.sandbox.lifecycle.calls.length }).toEqual(before);
    });
  });
});
