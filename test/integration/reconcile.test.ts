/**
 * The reconciler end to end in the sandbox (real etcd, moto, the project's host scripts over
 * SSM): events that never came, leftovers, stale backups, and racing the event handler.
 * Every scenario runs with the continuous writer (issue 9): no acknowledged write may be lost.
 */
import { DescribeTargetHealthCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import { listBackups } from '../../lib/aws/backups';
import { DEFAULT_RECONCILE } from '../../lib/domain/reconcile';
import { EtcdClient, EtcdError, hasNoLeader, localEtcdRunner } from '../../lib/etcd';
import { findMasterSlot } from '../../lib/flows/master-slot';
import { reconcileCluster } from '../../lib/flows/reconcile';
import { replaceMaster } from '../../lib/flows/replacement';
import { destroyClients, provisionCluster, type SandboxClients, sandboxClients, type SandboxCluster } from '../../sandbox/cluster';
import {
  type BackupTarget, type Control, destroyBackups, destroyControl, provisionBackups, provisionControl, receivedAlerts, sandboxFlowDeps, sandboxReconcileDeps,
} from '../../sandbox/control';
import { waitFor } from '../../sandbox/ports';
import { countKeys, killMaster, leaveAttached, memberOf, putKeys } from '../../sandbox/scenario';
import { Sandbox } from '../../sandbox/sandbox';
import { AckWriter, formatReport } from '../../sandbox/writer';

jest.setTimeout(240_000);

/** Tests do not wait out grace periods: a re-drive or stray removal is due at once. */
const NOW = { ...DEFAULT_RECONCILE, pendingGraceSec: 0, strayGraceSec: 0 };

describe('reconciler', () => {
  let sandbox: Sandbox;
  let c: SandboxClients;
  let ctl: Control;
  let backups: BackupTarget;
  let cluster: SandboxCluster;
  const gaps: string[] = [];
  const writers: AckWriter[] = [];
  const events: string[] = [];

  beforeAll(async () => {
    sandbox = await Sandbox.start();
    c = sandboxClients(sandbox);
  });
  afterAll(async () => {
    if (gaps.length) console.log(`continuous writer, per scenario:\n${gaps.join('\n')}`);
    destroyClients(c);
    await sandbox?.stop();
  });
  beforeEach(async () => {
    await sandbox.reset();
    ctl = await provisionControl(sandbox);
    backups = await provisionBackups(sandbox);
    cluster = await provisionCluster(sandbox, c, { name: 'prod' });
    await putKeys(cluster.members[1]!.clientUrl, '/registry/test/', 300);
    events.length = 0;
  });
  afterEach(async () => {
    await Promise.all(writers.splice(0).map((w) => w.stop()));
    destroyControl(ctl);
    destroyBackups(backups);
  });

  const startWriter = (label: string) => {
    const w = new AckWriter(() => [...sandbox.hosts.values()].map((h) => h.clientUrl), { prefix: `/qk-writer/${label}/` }).start();
    writers.push(w);
    return w;
  };
  const checkWriter = async (w: AckWriter, label: string) => {
    const r = await w.verify();
    gaps.push(`${label}: ${formatReport(r)}`);
    expect(r.acknowledgedButMissing).toBe(0);
    expect(r.acknowledged).toBeGreaterThan(0);
  };
  const record = (who: string) => (e: { step: string; status: string; detail: string }) => {
    if (e.status !== 'start') events.push(`${who} ${e.step}:${e.status}`);
    if (process.env.QK_TRACE) console.log(who, e);
  };
  const etcd = () => new EtcdClient(localEtcdRunner(), { endpoints: cluster.members.map((m) => m.clientUrl) });
  const members = async () => (await etcd().memberList()).members;
  /** A member no slot claims, never started (etcd refuses reconfiguration for ~5 s after start-up). */
  const addStray = (learner: boolean) => waitFor('etcd to accept a member add', async () => {
    try {
      return await etcd().memberAdd('etcd-gone', ['http://127.0.0.1:1'], { learner });
    } catch (err) {
      if (err instanceof EtcdError && err.kind === 'unhealthy-cluster') return undefined;
      throw err;
    }
  }, { timeoutMs: 30_000, intervalMs: 500 });
  const targetHealth = async (instanceId: string) => {
    const out = await c.elb.send(new DescribeTargetHealthCommand({ TargetGroupArn: cluster.targetGroupArn }));
    return out.TargetHealthDescriptions?.find((d) => d.Target?.Id === instanceId)?.TargetHealth?.State;
  };
  /** What a replacement through the event path leaves behind (replacement test (a)). */
  const expectReplaced = async (name: string, instanceId: string, memberId: string) => {
    const now = await members();
    expect(now).toHaveLength(3);
    expect(now.find((m) => m.name === name)).toMatchObject({ id: memberId, peerUrls: [sandbox.host(instanceId).peerUrl], isLearner: false });
    expect(await countKeys(sandbox.host(instanceId).clientUrl, '/registry/test/')).toBe(300);
    expect((await sandbox.describeVolume(memberOf(cluster, name).volumeId))?.Attachments?.[0]).toMatchObject({ InstanceId: instanceId, State: 'attached' });
    expect(await targetHealth(instanceId)).toBe('healthy');
    expect(sandbox.lifecycle.results(instanceId)).toEqual(['CONTINUE']);
  };

  it('a launch event that never came: one run brings the replacement in exactly as the event path would; the next run does nothing', async () => {
    const m = memberOf(cluster, 'etcd-c');
    const id = (await members()).find((x) => x.name === 'etcd-c')!.id;
    const writer = startWriter('lost-launch');
    const { instanceId } = await killMaster(sandbox, c, m); // the event is never delivered

    const first = await reconcileCluster(sandboxReconcileDeps(c, ctl, undefined, record('reconciler')), 'prod', NOW);
    expect(first.steps.map((s) => [s.action.kind, s.result])).toEqual([['redrive-replacement', 'done']]);
    expect(first.summary).toMatch(/^reconcile prod: drift 1; found: re-drive the replacement of etcd-c on i-\w+ \(in Pending:Wait for \d+ s with no flow making progress\); did: etcd-c on i-\w+ brought in \(update\), hook completed$/);
    await expectReplaced('etcd-c', instanceId, id);
    expect(await receivedAlerts(ctl)).toEqual([]);

    const second = await reconcileCluster(sandboxReconcileDeps(c, ctl), 'prod', NOW);
    expect(second.plan.actions).toEqual([]);
    expect(second.steps).toEqual([]);
    expect(second.summary).toBe('reconcile prod: in shape, nothing to do');
    await checkWriter(writer, 'lost launch event, re-driven by the reconciler');
  });

  it('a stray member, a volume left on a terminated master and a stale backup: all fixed in one run; a second run does nothing', async () => {
    const b = memberOf(cluster, 'etcd-b');
    const id = (await members()).find((x) => x.name === 'etcd-b')!.id;
    // A stray: a learner added for a slot that no longer exists, never started.
    const stray = await addStray(true);
    const writer = startWriter('leftovers');
    const { instanceId } = await killMaster(sandbox, c, b);
    await leaveAttached(c, b.volumeId, b.instanceId);
    expect((await sandbox.describeVolume(b.volumeId))?.Attachments?.[0]?.InstanceId).toBe(b.instanceId);
    expect(await listBackups(backups.s3, backups.store, 'prod')).toEqual([]);

    const deps = () => sandboxReconcileDeps(c, ctl, backups, record('reconciler'));
    const first = await reconcileCluster(deps(), 'prod', NOW);
    expect(first.steps.map((s) => [s.action.kind, s.result])).toEqual([
      ['detach-volume', 'done'], ['redrive-replacement', 'done'], ['remove-stray', 'done'], ['backup', 'done'], ['alert', 'done'],
    ]);
    // Real outcomes: the stray is gone, b is back with its own member ID and data, a verified backup exists.
    expect((await members()).map((m) => m.id)).not.toContain(stray.member.id);
    await expectReplaced('etcd-b', instanceId, id);
    const listed = await listBackups(backups.s3, backups.store, 'prod');
    expect(listed).toHaveLength(1);
    const alerts = await receivedAlerts(ctl);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatch(/etcd backups of prod are stale: there is no backup/);

    const second = await reconcileCluster(deps(), 'prod', NOW);
    expect(second.plan.actions).toEqual([]);
    expect(second.drift).toBe(0);
    expect(second.steps).toEqual([]);
    expect(await receivedAlerts(ctl)).toEqual([]);
    expect(await listBackups(backups.s3, backups.store, 'prod')).toHaveLength(1);
    await checkWriter(writer, 'stray + volume on a terminated master + stale backup');
  });

  it('a stray is never removed while the cluster has no quorum: membership unchanged, the operator is told', async () => {
    // An unstarted stray VOTER makes 4 voters (quorum 3); then b dies: 2 of 4 left, no leader.
    const stray = await addStray(false);
    const before = (await members()).map((m) => m.id).sort();
    expect(before).toContain(stray.member.id);
    sandbox.host(memberOf(cluster, 'etcd-b').instanceId).crash();
    const survivor = new EtcdClient(localEtcdRunner(), { endpoints: [memberOf(cluster, 'etcd-a').clientUrl] });
    await waitFor('the survivors to lose their leader', async () => ((await survivor.endpointStatus({ cluster: false })).statuses.every(hasNoLeader) ? true : undefined));
    const out = await reconcileCluster(sandboxReconcileDeps(c, ctl, undefined, record('reconciler')), 'prod', NOW);
    expect(out.steps.filter((s) => s.action.kind === 'remove-stray')).toEqual([]);
    expect((await members()).map((m) => m.id).sort()).toEqual(before);
    const alerts = await receivedAlerts(ctl);
    // Survivors may still name the old leader for an election timeout: either reason is right.
    expect(alerts.filter((a) => /etcd member \(unstarted \w+\) has no slot, but (the cluster has no leader|removing it would leave [01]\/3 healthy voters)/.test(a))).toHaveLength(1);
  });

  it('reconciler and event handler start on the same slot at the same moment: one membership change, one CONTINUE', async () => {
    const a = memberOf(cluster, 'etcd-a');
    const id = (await members()).find((x) => x.name === 'etcd-a')!.id;
    const writer = startWriter('race');
    const { instanceId, event } = await killMaster(sandbox, c, a);
    const found = await findMasterSlot(c.asg, a.asg, { cluster: 'quorum-keeper/cluster', member: 'quorum-keeper/etcd-member' });
    if (found.kind !== 'master') throw new Error(found.reason);
    const hook = { asg: a.asg, hook: event.detail.LifecycleHookName, token: event.detail.LifecycleActionToken, instanceId };
    const [handled, reconciled] = await Promise.all([
      replaceMaster(sandboxFlowDeps(c, ctl, record('handler')), { slot: found.slot, instanceId, hook }),
      reconcileCluster(sandboxReconcileDeps(c, ctl, undefined, record('reconciler')), 'prod', NOW),
    ]);
    expect(handled.result).toBe('continued');
    expect(reconciled.steps.filter((s) => s.result === 'failed')).toEqual([]);
    expect(events.filter((e) => e.endsWith('membership:ok'))).toHaveLength(1);
    await expectReplaced('etcd-a', instanceId, id);
    expect(await receivedAlerts(ctl)).toEqual([]);
    await checkWriter(writer, 'reconciler and event handler at once');
  });

  it('the reconciler drives the slot first: the late event handler waits for it, changes nothing more, and ends cleanly', async () => {
    const a = memberOf(cluster, 'etcd-a');
    const id = (await members()).find((x) => x.name === 'etcd-a')!.id;
    const writer = startWriter('race-2');
    const { instanceId, event } = await killMaster(sandbox, c, a);
    const found = await findMasterSlot(c.asg, a.asg, { cluster: 'quorum-keeper/cluster', member: 'quorum-keeper/etcd-member' });
    if (found.kind !== 'master') throw new Error(found.reason);
    const reconciling = reconcileCluster(sandboxReconcileDeps(c, ctl, undefined, record('reconciler')), 'prod', NOW);
    await waitFor('the reconciler to hold the slot', async () => ((await ctl.lock.isHeld('prod/etcd-a')) ? true : undefined), { timeoutMs: 60_000, intervalMs: 50 });
    const handled = await replaceMaster(sandboxFlowDeps(c, ctl, record('handler')), {
      slot: found.slot, instanceId, hook: { asg: a.asg, hook: event.detail.LifecycleHookName, token: event.detail.LifecycleActionToken, instanceId },
    });
    const reconciled = await reconciling;
    expect(reconciled.steps.find((s) => s.action.kind === 'redrive-replacement')).toMatchObject({ result: 'done' });
    expect(handled).toEqual({ result: 'continued', membership: 'in-place' });
    expect(events).toContain('handler slot:wait');
    expect(events.filter((e) => e.endsWith('membership:ok'))).toEqual(['reconciler membership:ok']);
    await expectReplaced('etcd-a', instanceId, id);
    await checkWriter(writer, 'reconciler first, late event handler');
  });
});
