/**
 * Identity, fencing and time (issue 18) end to end in the sandbox, real etcd, the continuous writer on:
 * a slot is its etcd member by identity (not only by name), and a copy of a member's volume never
 * runs as that member next to the live one. Each case is a fault-matrix row (docs/testing.md).
 */
import { CreateSubnetCommand, CreateVolumeCommand, DescribeSubnetsCommand, DetachVolumeCommand, waitUntilVolumeAvailable } from '@aws-sdk/client-ec2';
import { DescribeAutoScalingGroupsCommand } from '@aws-sdk/client-auto-scaling';
import { cpSync, existsSync, lstatSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CopyObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { renderRestorePlan } from '../../cli/render/restore';
import { backupKey, listBackups } from '../../lib/aws/backups';
import { type Clock, systemClock } from '../../lib/clock';
import { backupDeps, restoreDeps, statusDeps } from '../../lib/compose';
import { clusterStatus } from '../../lib/flows/status';
import { DEFAULT_RECONCILE } from '../../lib/domain/reconcile';
import { backupCluster, DEFAULT_WORK_DIR, pruneBackups } from '../../lib/flows/backup';
import { restoreCluster, type RestorePlan } from '../../lib/flows/restore';
import { findMasterSlot, type MasterSlot } from '../../lib/flows/master-slot';
import { reconcileCluster } from '../../lib/flows/reconcile';
import { replaceMaster } from '../../lib/flows/replacement';
import { retireMaster } from '../../lib/flows/retirement';
import { TAG_CLUSTER, TAG_MEMBER } from '../../sandbox/cluster';
import { receivedAlerts, sandboxBackupSettings, sandboxFlowDeps, sandboxReconcileDeps, sandboxRoot } from '../../sandbox/control';
import { countKeys, killMaster, launchAlongside, memberOf, TERMINATE_HOOK } from '../../sandbox/scenario';
import { freshClusterPerTest, type ScenarioWorld } from '../support/scenario-suite';
import { harnessEtcd } from '../../sandbox/etcd-http';
import { waitFor } from '../../sandbox/ports';
import { QuorumWatch } from '../../sandbox/quorum-watch';

jest.setTimeout(240_000);

/** Every grace period over: whatever the reconciler would ever do, it does now. */
const GRACE_0 = { ...DEFAULT_RECONCILE, pendingGraceSec: 0, repairGraceSec: 0, strayGraceSec: 0 };

const members = async (t: ScenarioWorld) => (await harnessEtcd(t.cluster.members.map((m) => m.clientUrl)).memberList()).members;
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
    // status judges by identity too: every slot a follower or the leader, no "stray".
    const st = await clusterStatus(statusDeps(sandboxRoot(t.c, t.ctl)), 'prod');
    expect(st.problems).toEqual([]);
    expect(st.members.map((m) => m.etcd).sort()).toEqual(['follower', 'follower', 'leader']);

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

describe('the member ID in the volume marker: identity travels with the data', () => {
  // kubeadm names members after their hosts, FQDNs on EC2 (dots are etcd names, not slot tags).
  const NAMES = ['ip-10-0-1-5.eu-west-1.compute.internal', 'ip-10-0-2-5.eu-west-1.compute.internal', 'ip-10-0-3-5.eu-west-1.compute.internal'];
  const t = freshClusterPerTest({ keys: 300, etcdNames: NAMES });

  it('nothing recorded in the state table (a new or lost table): the marker\'s member ID maps the slot, and a killed master comes back as that member with its data', async () => {
    const idA = (await members(t)).find((m) => m.name === NAMES[0])!.id;
    const a = memberOf(t.cluster, 'etcd-a');
    expect(await sandboxFlowDeps(t.c, t.ctl).memberIds.get('prod', ['etcd-a'])).toEqual({});
    const w = t.writer.start('marker');
    const { instanceId, event } = await killMaster(t.sandbox, t.c, a);
    const out = await replaceMaster(sandboxFlowDeps(t.c, t.ctl), { slot: await slotOf(t, a.asg), instanceId, hook: hookOf(event) });
    expect(out).toEqual({ result: 'continued', membership: 'update' });
    const host = t.sandbox.host(instanceId);
    expect((await members(t)).find((m) => m.id === idA)).toMatchObject({ name: NAMES[0], peerUrls: [host.peerUrl], isLearner: false });
    expect(await countKeys(host.clientUrl, '/registry/test/')).toBe(300);
    expect(await sandboxFlowDeps(t.c, t.ctl).memberIds.get('prod', ['etcd-a'])).toEqual({ 'etcd-a': idA });
    expect(await receivedAlerts(t.ctl)).toEqual([]);
    await t.writer.check(w, 'marker member ID');
    rows.push('| etcd names are host FQDNs (≠ slot tags) and no ID in the state table; etcd-a killed and replaced | mapped by the marker\'s member ID: member update, same ID, 300 keys, recorded in the table |');
  });

  it('the state table and the marker name different members for a slot with data: refused before any change, one critical alert naming both', async () => {
    const list = await members(t);
    const [idA, idB] = [list.find((m) => m.name === NAMES[0])!.id, list.find((m) => m.name === NAMES[1])!.id];
    await sandboxFlowDeps(t.c, t.ctl).memberIds.record('prod', 'etcd-a', idB, 'a wrong record (test)');
    const a = memberOf(t.cluster, 'etcd-a');
    const { instanceId, event } = await killMaster(t.sandbox, t.c, a);
    const out = await replaceMaster(sandboxFlowDeps(t.c, t.ctl), { slot: await slotOf(t, a.asg), instanceId, hook: hookOf(event) });
    expect(out).toMatchObject({ result: 'abandoned', step: 'membership' });
    expect((await members(t)).map((m) => `${m.id} ${m.peerUrls.join(',')}`).sort()).toEqual(list.map((m) => `${m.id} ${m.peerUrls.join(',')}`).sort());
    const alerts = await receivedAlerts(t.ctl);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatch(new RegExp(`says it holds member ${idA}, but the state table records ${idB}`));
    rows.push('| the state table names etcd-b\'s ID for etcd-a\'s slot, its volume\'s marker etcd-a\'s; etcd-a replaced | ABANDON at membership, members unchanged, one critical alert naming both IDs |');
  });
});

describe('one incarnation per member: copies of a volume, and a host booting without its volume', () => {
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

  /** etcd-a's ASG launches a master in the copy's subnet, and its launch event is handled. */
  const launchThere = async (a: ReturnType<typeof memberOf>, subnetId: string) => {
    const { instanceId, event } = await launchAlongside(t.sandbox, t.c, a, { subnetId });
    return { instanceId, out: await replaceMaster(sandboxFlowDeps(t.c, t.ctl), { slot: await slotOf(t, a.asg), instanceId, hook: hookOf(event) }) };
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
    const { instanceId, out } = await launchThere(a, subnetId);
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
    const { instanceId, out } = await launchThere(a, subnetId);
    expect(out).toMatchObject({ result: 'abandoned', step: 'membership' });
    await expectUntouched(before, a, instanceId);
    const alerts = await receivedAlerts(t.ctl);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatch(/member [0-9a-f]+ of etcd-a still answers at https:\/\/127\.0\.0\.1:\d+: its current incarnation is alive/);
    await t.writer.check(w, 'an unmarked copy of a member volume: refused before member update');
    rows.push('| the same copy with no volume ID in its marker | refused before `member update` (the live incarnation answers), ABANDON, 1 alert, members unchanged |');
  });

  it('a reboot with etcd\'s unit enabled and the volume not attached: etcd stays down; the reconciler brings the volume back and the member rejoins with its data', async () => {
    const a = memberOf(t.cluster, 'etcd-a');
    const idA = (await members(t)).find((m) => m.name === 'etcd-a')!.id;
    const w = t.writer.start('boot');
    // The master stops, its volume is force-detached (as a replacement does from a stopped
    // predecessor), and the instance is started again: the init system starts the enabled etcd.
    const host = t.sandbox.host(a.instanceId);
    host.killEtcd();
    await t.c.ec2.send(new DetachVolumeCommand({ VolumeId: a.volumeId, InstanceId: a.instanceId, Force: true }));
    await waitUntilVolumeAvailable({ client: t.c.ec2, maxWaitTime: 30, minDelay: 1 }, { VolumeIds: [a.volumeId] });
    const boot = host.reboot();
    // Its boot mount names this volume's device, which is gone: the mount fails, and etcd (which
    // requires it) is not started — nor on the root disk.
    expect(boot).toEqual({ started: false, why: `dependency failed: var-lib-etcd.mount (/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${a.volumeId.replace('-', '')} did not appear)` });
    await new Promise((r) => setTimeout(r, 2000));
    expect(host.etcdPid()).toBeNull();
    expect(existsSync(join(host.root, 'var/lib/etcd/data'))).toBe(false); // nothing written on the root disk
    expect((await members(t)).find((m) => m.id === idA)).toMatchObject({ name: 'etcd-a', peerUrls: [a.peerUrl] });

    const out = await reconcileCluster(sandboxReconcileDeps(t.c, t.ctl), 'prod', GRACE_0);
    expect(out.steps.map((x) => [x.action.kind, x.result])).toEqual([['repair-master', 'done']]);
    expect(host.etcdPid()).not.toBeNull();
    expect((await t.sandbox.describeVolume(a.volumeId))?.Attachments?.[0]).toMatchObject({ InstanceId: a.instanceId, State: 'attached' });
    const after = await members(t);
    expect(after).toHaveLength(3);
    expect(after.find((m) => m.id === idA)).toMatchObject({ name: 'etcd-a', peerUrls: [a.peerUrl], isLearner: false });
    expect(await countKeys(a.clientUrl, '/registry/test/')).toBe(300);
    await t.writer.check(w, 'a reboot without the volume: etcd stays down, then repaired');
    rows.push('| a reboot with etcd\'s unit enabled and the volume detached | the boot guard skips etcd (nothing on the root disk); one reconcile repairs: volume back, same member ID, 300 keys |');
  });

  it('masters rebooted one after another, then all three at once: each etcd is back by itself (its verified volume mounted at boot), quorum kept through the rolling reboots, no write lost', async () => {
    const w = t.writer.start('reboots');
    const watch = new QuorumWatch(t.sandbox).start();
    const follows = async (clientUrl: string) => {
      try {
        const st = await harnessEtcd([clientUrl]).endpointStatus({ cluster: false });
        return st.statuses[0]?.leader ? true : undefined;
      } catch {
        return undefined;
      }
    };
    const backAfter: string[] = [];
    // One after another, each once the previous one is back (patch tooling waits for the
    // instance, not for etcd: the gap here is how long etcd took, which the boot mount makes short).
    for (const m of t.cluster.members) {
      const host = t.sandbox.host(m.instanceId);
      const t0 = Date.now();
      expect(host.reboot()).toMatchObject({ started: true });
      await waitFor(`${m.name} following a leader again`, () => follows(m.clientUrl), { timeoutMs: 60_000, intervalMs: 250 });
      backAfter.push(`${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
    const q = await watch.stop();
    expect(q.belowQuorum).toEqual([]);
    // All three at once (a power cut, an AZ-wide maintenance): the cluster comes back by itself.
    const t1 = Date.now();
    for (const m of t.cluster.members) expect(t.sandbox.host(m.instanceId).reboot()).toMatchObject({ started: true });
    for (const m of t.cluster.members) await waitFor(`${m.name} back after the full reboot`, () => follows(m.clientUrl), { timeoutMs: 60_000, intervalMs: 250 });
    const allBack = ((Date.now() - t1) / 1000).toFixed(1);
    expect(await members(t)).toHaveLength(3);
    await t.writer.check(w, 'rolling reboots, then all three at once');
    rows.push(`| masters rebooted one after another, then all at once | etcd back by itself each time (volume mounted at boot): ${backAfter.join(', ')} one by one (quorum kept: ${q.belowQuorum.length} of ${q.samples} samples below), ${allBack} s for all three; no acknowledged write lost |`);
  });

  it('a retiring master whose SSM agent is lost while its etcd runs: held, never detached, one alert; with the agent back it leaves cleanly', async () => {
    const a = memberOf(t.cluster, 'etcd-a');
    const w = t.writer.start('agent-lost');
    const host = t.sandbox.host(a.instanceId);
    host.agentOnline = false;
    const term = t.sandbox.lifecycle.begin({ asg: a.asg, hook: TERMINATE_HOOK, instanceId: a.instanceId, transition: 'autoscaling:EC2_INSTANCE_TERMINATING' });
    const input = { slot: await slotOf(t, a.asg), instanceId: a.instanceId, hook: hookOf(term) };
    for (let run = 0; run < 2; run++) {
      const held = await retireMaster(sandboxFlowDeps(t.c, t.ctl), input, { waitSec: 5 });
      expect(held).toMatchObject({ result: 'held', reason: expect.stringMatching(/SSM agent on i-\w+ is unreachable and its etcd still runs \(member \w+ answers at https:/) as unknown });
    }
    expect(t.sandbox.detachCalls).toEqual([]);
    expect(host.etcdPid()).not.toBeNull();
    expect((await t.sandbox.describeVolume(a.volumeId))?.Attachments?.[0]).toMatchObject({ InstanceId: a.instanceId, State: 'attached' });
    expect(t.sandbox.lifecycle.results(a.instanceId)).toEqual([]);
    const alerts = await receivedAlerts(t.ctl);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatch(/not detaching its volume from under it; holding the termination/);
    // status shows the hold, from the state table.
    const st = await clusterStatus(statusDeps(sandboxRoot(t.c, t.ctl)), 'prod');
    expect(st.members.find((m) => m.member === 'etcd-a')?.held).toMatchObject({ instanceId: a.instanceId, reason: expect.stringMatching(/SSM agent on .* is unreachable/) as unknown });
    expect(st.problems).toContainEqual(expect.stringMatching(new RegExp(`^etcd-a: the terminate hook of ${a.instanceId} is held \\(\\d+ min\\): the SSM agent`)));

    host.agentOnline = true;
    const left = await retireMaster(sandboxFlowDeps(t.c, t.ctl), input, { waitSec: 60 });
    expect(left.result).toBe('continued');
    expect(host.etcdPid()).toBeNull();
    expect(t.sandbox.detachCalls).toEqual([{ volumeId: a.volumeId, instanceId: a.instanceId, force: false }]);
    expect(t.sandbox.lifecycle.results(a.instanceId)).toEqual(['CONTINUE']);
    expect((await clusterStatus(statusDeps(sandboxRoot(t.c, t.ctl)), 'prod')).members.find((m) => m.member === 'etcd-a')?.held).toBeNull();
    await t.writer.check(w, 'a retiring master with its agent lost: held, then left cleanly');
    rows.push('| a retiring master whose SSM agent is lost, etcd alive (asked through another master) | held twice, never detached, 1 alert; with the agent back: etcd stopped, detached without force, CONTINUE |');
  });
});

describe('time from AWS, not from the caller: a CLI whose clock is hours fast', () => {
  const t = freshClusterPerTest({ keys: 100, backups: true });
  const HOUR = 3_600_000;
  const fast = (ms: number): Clock => ({ now: () => Date.now() + ms, sleep: (d, signal) => systemClock.sleep(d, signal) });

  it('takes no lock a Lambda holds (15 min fast), dates its backup by AWS time (3 h fast); a future-dated key is never latest, and staleness still shows', async () => {
    // A Lambda (right clock) holds the cluster lock; the CLI, 15 min fast, would see it expired.
    const lambda = sandboxRoot(t.c, t.ctl);
    expect(await lambda.lock.tryAcquire('prod', 'lambda-run')).toBe(true);
    await new Promise((r) => setTimeout(r, 1100)); // held a moment: its 15 min TTL is less than 15 min away now
    const cli15 = sandboxRoot(t.c, t.ctl, { clock: fast(15 * 60_000) });
    expect(await cli15.lock.tryAcquire('prod', 'cli-run')).toBe(false);
    expect(await lambda.lock.extend('prod', 'lambda-run')).toBe(true);

    // A backup from the CLI 3 h fast: its key carries AWS's time.
    const cli3h = sandboxRoot(t.c, t.ctl, { clock: fast(3 * HOUR), backups: t.backups });
    const out = await backupCluster(backupDeps(cli3h), 'prod', sandboxBackupSettings(t.backups));
    expect(out.result).toBe('uploaded');
    const listed = await listBackups(t.backups.s3, t.backups.store, 'prod');
    expect(listed.map((b) => b.key)).toEqual([out.key]);
    expect(Math.abs(listed[0]!.takenAt.getTime() - Date.now())).toBeLessThan(60_000);
    expect(listed[0]!.futureDated).toBe(false);

    // A key an older writer dated 3 h ahead: never latest, never fresh, one alert naming it.
    const future = backupKey(t.backups.store, 'prod', 'etcd-b', new Date(Date.now() + 3 * HOUR), 'zstd');
    await t.backups.s3.send(new PutObjectCommand({ Bucket: t.backups.store.bucket, Key: future, Body: 'not a snapshot' }));
    let plan: RestorePlan | undefined;
    const restore = await restoreCluster(restoreDeps(cli3h), {
      cluster: 'prod', snapshot: 'latest', store: t.backups.store, workDir: DEFAULT_WORK_DIR, force: true, confirm: (p) => { plan = p; return Promise.resolve(false); },
    });
    expect(restore.result).toBe('aborted');
    expect(plan?.snapshot.key).toBe(out.key);
    expect(plan?.warnings).toEqual([]);

    // `latest` cross-checked by revision: a backup dated a minute before it but at a higher revision
    // (what a clock set back, a member far behind or a restore in between leaves) is named in the plan.
    const head = await t.backups.s3.send(new HeadObjectCommand({ Bucket: t.backups.store.bucket, Key: out.key }));
    const earlier = backupKey(t.backups.store, 'prod', 'etcd-c', new Date(listed[0]!.takenAt.getTime() - 60_000), 'zstd');
    const higher = String(Number(head.Metadata!.revision) + 1000);
    await t.backups.s3.send(new CopyObjectCommand({
      Bucket: t.backups.store.bucket, Key: earlier, CopySource: `${t.backups.store.bucket}/${out.key}`, MetadataDirective: 'REPLACE',
      Metadata: { ...head.Metadata, revision: higher, member: 'etcd-c' },
      ...(head.ServerSideEncryption ? { ServerSideEncryption: head.ServerSideEncryption } : {}), ...(head.SSEKMSKeyId ? { SSEKMSKeyId: head.SSEKMSKeyId } : {}),
    }));
    let crossChecked: RestorePlan | undefined;
    await restoreCluster(restoreDeps(cli3h), {
      cluster: 'prod', snapshot: 'latest', store: t.backups.store, workDir: DEFAULT_WORK_DIR, force: true, confirm: (p) => { crossChecked = p; return Promise.resolve(false); },
    });
    expect(crossChecked?.snapshot.key).toBe(out.key);
    expect(crossChecked?.warnings).toEqual([expect.stringContaining(`BELOW the one taken before it (${earlier}, revision ${higher})`)]);
    expect(renderRestorePlan(crossChecked!)).toMatch(/WARNING: +the latest backup is at revision/);

    // Backups stop: two hours later (a plain clock 2 h on stands in for the time passing) the
    // newest real backup is stale, whatever the future key says.
    const stale = await pruneBackups({ ...backupDeps(sandboxRoot(t.c, t.ctl, { backups: t.backups })), clock: fast(2 * HOUR) }, 'prod', sandboxBackupSettings(t.backups, { staleAfterSec: 3600 }));
    expect(stale.stale).toBe(true);
    expect(stale.newestGoodAgeSec).toBeGreaterThan(7000);
    const plan2 = await reconcileCluster({ ...sandboxReconcileDeps(t.c, t.ctl, t.backups), clock: fast(2 * HOUR) }, 'prod', DEFAULT_RECONCILE, { dryRun: true });
    expect(plan2.plan.actions.filter((a) => a.kind === 'backup')).toHaveLength(1);
    const alerts = await receivedAlerts(t.ctl);
    expect(alerts.filter((a) => a.includes(future) && /after S3 stored it/.test(a)).length).toBeGreaterThanOrEqual(1);
    expect(alerts.some((a) => /backups of prod are stale/.test(a))).toBe(true);
    rows.push('| a CLI 15 min / 3 h fast; a key dated 3 h ahead | no lock taken from a Lambda; its backup dated by AWS time; the future key is never `latest` nor fresh (stale still alerted), 1 alert names it; an earlier backup at a higher revision is a WARNING in the restore plan |');
  });
});
