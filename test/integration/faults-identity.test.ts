/**
 * Identity and fencing (issue 18) end to end in the sandbox, real etcd, the continuous writer on:
 * a slot is its etcd member by identity (not only by name), and a copy of a member's volume never
 * runs as that member next to the live one. Each case is a fault-matrix row (docs/testing.md).
 */
import { CreateSubnetCommand, CreateVolumeCommand, DescribeSubnetsCommand } from '@aws-sdk/client-ec2';
import { DescribeAutoScalingGroupsCommand } from '@aws-sdk/client-auto-scaling';
import { cpSync, existsSync, lstatSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_RECONCILE } from '../../lib/domain/reconcile';
import { EtcdClient, localEtcdRunner } from '../../lib/etcd';
import { findMasterSlot, type MasterSlot } from '../../lib/flows/master-slot';
import { reconcileCluster } from '../../lib/flows/reconcile';
import { replaceMaster } from '../../lib/flows/replacement';
import { retireMaster } from '../../lib/flows/retirement';
import { TAG_CLUSTER, TAG_MEMBER } from '../../sandbox/cluster';
import { receivedAlerts, sandboxFlowDeps, sandboxReconcileDeps } from '../../sandbox/control';
import { countKeys, killMaster, launchAlongside, memberOf, TERMINATE_HOOK } from '../../sandbox/scenario';
import { freshClusterPerTest, type ScenarioWorld } from '../support/scenario-suite';

jest.setTimeout(240_000);

/** Every grace period over: whatever the reconciler would ever do, it does now. */
const GRACE_0 = { ...DEFAULT_RECONCILE, pendingGraceSec: 0, repairGraceSec: 0, strayGraceSec: 0 };

const members = async (t: ScenarioWorld) => (await new EtcdClient(localEtcdRunner(), { endpoints: t.cluster.members.map((m) => m.clientUrl) }).memberList()).members;
const slotOf = async (t: ScenarioWorld, asg: string): Promise<MasterSlot> => {
  const s = await findMasterSlot(t.c.asg, asg, { cluster: TAG_CLUSTER, member: TAG_MEMBER });
  if (s.kind !== 'master') throw new Error(s.reason);
  return s.slot;
};
const hookOf = (event: Awaited<ReturnType<typeof killMaster>>['event']) => ({
  asg: event.detail.AutoScalingGroupName, hook: event.detail.LifecycleHookName, token: event.detail.LifecycleActionToken, instanceId: event.detail.EC2InstanceId,
});

/** One fault-matrix row per case, printed at the end of the file. */
const rows: string[] = [];
afterAll(() => {
  if (rows.length) console.log(`fault matrix (identity and fencing):\n| case | outcome |\n|---|---|\n${rows.join('\n')}`);
});

describe('etcd names that are not the slot tags (kubeadm names members after hosts)', () => {
  const NAMES = ['ip-10-0-1-5', 'ip-10-0-2-5', 'ip-10-0-3-5'];
  const t = freshClusterPerTest({ keys: 300, etcdNames: NAMES });

  it('the reconciler 3x at grace 0 leaves 3 voters and raises nothing; a killed master comes back with the same member ID and its data', async () => {
    const before = await members(t);
    expect(before.map((m) => m.name).sort()).toEqual(NAMES);
    const w = t.writer.start('names');
    for (let run = 0; run < 3; run++) {
      const out = await reconcileCluster(sandboxReconcileDeps(t.c, t.ctl), 'prod', GRACE_0);
      expect(out.plan.actions).toEqual([]);
    }
    expect((await members(t)).map((m) => m.id).sort()).toEqual(before.map((m) => m.id).sort());
    expect(await receivedAlerts(t.ctl)).toEqual([]);

    // The reconciler recorded each slot's member ID: the replacement finds etcd-a's member by it.
    const a = memberOf(t.cluster, 'etcd-a');
    const idA = before.find((m) => m.name === 'ip-10-0-1-5')!.id;
    const { instanceId, event } = await killMaster(t.sandbox, t.c, a);
    const out = await replaceMaster(sandboxFlowDeps(t.c, t.ctl), { slot: await slotOf(t, a.asg), instanceId, hook: hookOf(event) });
    expect(out).toEqual({ result: 'continued', membership: 'update' });
    const host = t.sandbox.host(instanceId);
    const after = await members(t);
    expect(after).toHaveLength(3);
    expect(after.find((m) => m.id === idA)).toMatchObject({ name: 'ip-10-0-1-5', peerUrls: [host.peerUrl], isLearner: false });
    expect(await countKeys(host.clientUrl, '/registry/test/')).toBe(300);
    const again = await reconcileCluster(sandboxReconcileDeps(t.c, t.ctl), 'prod', GRACE_0);
    expect(again.plan.actions).toEqual([]);
    // A retirement judges the other slots whole by identity too: it leaves at once, not held.
    const b = memberOf(t.cluster, 'etcd-b');
    const term = t.sandbox.lifecycle.begin({ asg: b.asg, hook: TERMINATE_HOOK, instanceId: b.instanceId, transition: 'autoscaling:EC2_INSTANCE_TERMINATING' });
    const retired = await retireMaster(sandboxFlowDeps(t.c, t.ctl), { slot: await slotOf(t, b.asg), instanceId: b.instanceId, hook: hookOf(term) }, { waitSec: 5 });
    expect(retired.result).toBe('continued');
    expect(t.sandbox.host(b.instanceId).etcdPid()).toBeNull();
    expect(await receivedAlerts(t.ctl)).toEqual([]);
    await t.writer.check(w, 'etcd names not the slot tags: 3 reconciles, then a replacement');
    rows.push('| etcd names ≠ slot tags, reconciler 3× at grace 0, then etcd-a killed and replaced, then etcd-b retired | 3 voters, no action, no alert; etcd-a back as the same member ID with its 300 keys; etcd-b leaves at once (the others judged whole by ID) |');
  });
});

describe('a copy of a member volume (an EBS snapshot restored in another AZ with the same tags)', () => {
  const t = freshClusterPerTest({ keys: 300 });

  /** A copy of etcd-a's volume, taken while it runs, in us-east-1d; and a subnet there. */
  const copyOfA = async (edit?: (marker: string) => string) => {
    const a = memberOf(t.cluster, 'etcd-a');
    const g = await t.c.asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [a.asg] }));
    const subnet = await t.c.ec2.send(new DescribeSubnetsCommand({ SubnetIds: [g.AutoScalingGroups![0]!.VPCZoneIdentifier!.split(',')[0]!] }));
    const other = await t.c.ec2.send(new CreateSubnetCommand({ VpcId: subnet.Subnets![0]!.VpcId!, CidrBlock: '10.0.9.0/24', AvailabilityZone: 'us-east-1d' }));
    const vol = await t.c.ec2.send(new CreateVolumeCommand({
      AvailabilityZone: 'us-east-1d', Size: 20, VolumeType: 'gp3', Encrypted: true,
      TagSpecifications: [{ ResourceType: 'volume', Tags: [{ Key: TAG_CLUSTER, Value: 'prod' }, { Key: TAG_MEMBER, Value: 'etcd-a' }] }],
    }));
    const dir = t.sandbox.volumeDir(vol.VolumeId!);
    cpSync(t.sandbox.volumeDir(a.volumeId), dir, { recursive: true });
    const marker = join(dir, '.quorum-keeper-volume');
    if (edit) writeFileSync(marker, edit(readFileSync(marker, 'utf8')));
    return { a, copyId: vol.VolumeId!, subnetId: other.Subnet!.SubnetId! };
  };

  const expectUntouched = async (before: Awaited<ReturnType<typeof members>>, a: ReturnType<typeof memberOf>, newInstance: string) => {
    expect(await members(t)).toEqual(before);
    expect(t.sandbox.host(a.instanceId).etcdPid()).not.toBeNull();
    expect(t.sandbox.host(newInstance).etcdPid()).toBeNull();
    expect(t.sandbox.lifecycle.results(newInstance)).toEqual(['ABANDON']);
    expect(await countKeys(a.clientUrl, '/registry/test/')).toBe(300);
  };

  it('its marker names the original volume: the mount refuses it, ABANDON, one alert, the live member untouched', async () => {
    const { a, copyId, subnetId } = await copyOfA();
    const before = await members(t);
    const w = t.writer.start('copy');
    const { instanceId, event } = await launchAlongside(t.sandbox, t.c, a, { subnetId });
    const out = await replaceMaster(sandboxFlowDeps(t.c, t.ctl), { slot: await slotOf(t, a.asg), instanceId, hook: hookOf(event) });
    expect(out).toMatchObject({ result: 'abandoned', step: 'mount' });
    await expectUntouched(before, a, instanceId);
    const mount = join(t.sandbox.host(instanceId).root, 'var/lib/etcd');
    expect(existsSync(mount) && lstatSync(mount).isSymbolicLink()).toBe(false); // unmounted again
    const alerts = await receivedAlerts(t.ctl);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatch(new RegExp(`${copyId} is a copy of ${a.volumeId}`));
    await t.writer.check(w, 'a copy of a member volume: refused at mount');
    rows.push('| a copy of etcd-a\'s volume in another AZ, a launch there while etcd-a runs | refused at mount (exit 7), ABANDON, 1 alert, members unchanged |');
  });

  it('a copy whose marker does not name its volume (adopted, or written before volume IDs were): the live incarnation answers, no member update, one alert', async () => {
    const { a, subnetId } = await copyOfA((m) => m.replace(/^volume=.*\n/m, ''));
    const before = await members(t);
    const w = t.writer.start('copy-unmarked');
    const { instanceId, event } = await launchAlongside(t.sandbox, t.c, a, { subnetId });
    const out = await replaceMaster(sandboxFlowDeps(t.c, t.ctl), { slot: await slotOf(t, a.asg), instanceId, hook: hookOf(event) });
    expect(out).toMatchObject({ result: 'abandoned', step: 'membership' });
    await expectUntouched(before, a, instanceId);
    const alerts = await receivedAlerts(t.ctl);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatch(/member [0-9a-f]+ of etcd-a still answers at http:\/\/127\.0\.0\.1:\d+: its current incarnation is alive/);
    await t.writer.check(w, 'an unmarked copy of a member volume: refused before member update');
    rows.push('| the same copy with no volume ID in its marker | refused before `member update` (the live incarnation answers), ABANDON, 1 alert, members unchanged |');
  });
});
