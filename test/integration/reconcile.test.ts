/**
 * The reconciler end to end in the sandbox (real etcd, moto, the project's host scripts over
 * SSM): events that never came, leftovers, stale backups, and racing the event handler.
 * Every scenario runs with the continuous writer (issue 9): no acknowledged write may be lost.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DeregisterTargetsCommand, DescribeTargetHealthCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import { listBackups } from '../../lib/aws/backups';
import { DEFAULT_RECONCILE } from '../../lib/domain/reconcile';
import { EtcdError, hasNoLeader } from '../../lib/etcd';
import { findMasterSlot } from '../../lib/flows/master-slot';
import { reconcileCluster } from '../../lib/flows/reconcile';
import { replaceMaster } from '../../lib/flows/replacement';
import type { SandboxMember } from '../../sandbox/cluster';
import { receivedAlerts, sandboxFlowDeps, sandboxReconcileDeps } from '../../sandbox/control';
import { freePort, waitFor } from '../../sandbox/ports';
import { killHard, makeTempDir, removeDir } from '../../sandbox/procs';
import { countKeys, killMaster, leaveAttached, memberOf } from '../../sandbox/scenario';
import { freshClusterPerTest } from '../support/scenario-suite';
import { harnessEtcd, localMemberList } from '../../sandbox/etcd-http';
import { SandboxPki } from '../../sandbox/pki';

jest.setTimeout(240_000);

/**
 * Tests do not wait out grace periods: a re-drive or stray removal is due at once. Repairs keep
 * their grace (a killed leader makes the others' API servers briefly not ready: not a repair).
 */
const NOW = { ...DEFAULT_RECONCILE, pendingGraceSec: 0, strayGraceSec: 0 };

describe('reconciler', () => {
  const events: string[] = [];
  const t = freshClusterPerTest({ keys: 300, backups: true, beforeEach: () => { events.length = 0; } });

  const record = (who: string) => (e: { step: string; status: string; detail: string }) => {
    if (e.status !== 'start') events.push(`${who} ${e.step}:${e.status}`);
    if (process.env.QK_TRACE) console.log(who, e);
  };
  const etcd = () => harnessEtcd(t.cluster.members.map((m) => m.clientUrl));
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
    const out = await t.c.elb.send(new DescribeTargetHealthCommand({ TargetGroupArn: t.cluster.targetGroupArn }));
    return out.TargetHealthDescriptions?.find((d) => d.Target?.Id === instanceId)?.TargetHealth?.State;
  };
  /** What a replacement through the event path leaves behind (replacement test (a)). */
  const expectReplaced = async (name: string, instanceId: string, memberId: string) => {
    const now = await members();
    expect(now).toHaveLength(3);
    expect(now.find((m) => m.name === name)).toMatchObject({ id: memberId, peerUrls: [t.sandbox.host(instanceId).peerUrl], isLearner: false });
    expect(await countKeys(t.sandbox.host(instanceId).clientUrl, '/registry/test/')).toBe(300);
    expect((await t.sandbox.describeVolume(memberOf(t.cluster, name).volumeId))?.Attachments?.[0]).toMatchObject({ InstanceId: instanceId, State: 'attached' });
    expect(await targetHealth(instanceId)).toBe('healthy');
    expect(t.sandbox.lifecycle.results(instanceId)).toEqual(['CONTINUE']);
  };

  it('a launch event that never came: one run brings the replacement in exactly as the event path would; the next run does nothing', async () => {
    const m = memberOf(t.cluster, 'etcd-c');
    const id = (await members()).find((x) => x.name === 'etcd-c')!.id;
    const w = t.writer.start('lost-launch');
    const { instanceId } = await killMaster(t.sandbox, t.c, m); // the event is never delivered

    const first = await reconcileCluster(sandboxReconcileDeps(t.c, t.ctl, undefined, record('reconciler')), 'prod', NOW);
    expect(first.steps.map((s) => [s.action.kind, s.result])).toEqual([['redrive-replacement', 'done']]);
    expect(first.summary).toMatch(/^reconcile prod: drift 1; found: re-drive the replacement of etcd-c on i-\w+ \(in Pending:Wait for \d+ s with no flow making progress\); did: etcd-c on i-\w+ brought in \(update\), hook completed(; noted: .*)?$/);
    await expectReplaced('etcd-c', instanceId, id);
    expect(await receivedAlerts(t.ctl)).toEqual([]);

    const second = await reconcileCluster(sandboxReconcileDeps(t.c, t.ctl), 'prod', NOW);
    expect(second.plan.actions).toEqual([]);
    expect(second.steps).toEqual([]);
    expect(second.summary).toBe('reconcile prod: in shape, nothing to do');
    await t.writer.check(w, 'lost launch event, re-driven by the reconciler');
  });

  it('a stray member, a volume left on a terminated master and a stale backup: all fixed in one run; a second run does nothing', async () => {
    const b = memberOf(t.cluster, 'etcd-b');
    const id = (await members()).find((x) => x.name === 'etcd-b')!.id;
    // A stray: a learner added for a slot that no longer exists, never started.
    const stray = await addStray(true);
    const w = t.writer.start('leftovers');
    const { instanceId } = await killMaster(t.sandbox, t.c, b);
    await leaveAttached(t.c, b.volumeId, b.instanceId);
    expect((await t.sandbox.describeVolume(b.volumeId))?.Attachments?.[0]?.InstanceId).toBe(b.instanceId);
    expect(await listBackups(t.backups.s3, t.backups.store, 'prod')).toEqual([]);

    const deps = () => sandboxReconcileDeps(t.c, t.ctl, t.backups, record('reconciler'));
    const first = await reconcileCluster(deps(), 'prod', NOW);
    expect(first.steps.map((s) => [s.action.kind, s.result])).toEqual([
      ['detach-volume', 'done'], ['redrive-replacement', 'done'], ['remove-stray', 'done'], ['backup', 'done'], ['alert', 'done'],
    ]);
    // Real outcomes: the stray is gone, b is back with its own member ID and data, a verified backup exists.
    expect((await members()).map((m) => m.id)).not.toContain(stray.member.id);
    await expectReplaced('etcd-b', instanceId, id);
    const listed = await listBackups(t.backups.s3, t.backups.store, 'prod');
    expect(listed).toHaveLength(1);
    const alerts = await receivedAlerts(t.ctl);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatch(/etcd backups of prod are stale: there is no backup/);

    const second = await reconcileCluster(deps(), 'prod', NOW);
    expect(second.plan.actions).toEqual([]);
    expect(second.drift).toBe(0);
    expect(second.steps).toEqual([]);
    expect(await receivedAlerts(t.ctl)).toEqual([]);
    expect(await listBackups(t.backups.s3, t.backups.store, 'prod')).toHaveLength(1);
    await t.writer.check(w, 'stray + volume on a terminated master + stale backup');
  });

  it('an InService master whose etcd died is repaired in place by one run (same member, data, healthy target); a dead host only raises an alert', async () => {
    // Followers only: a dead leader makes the other API servers briefly not ready, and with
    // the repair grace at 0 the reconciler would (harmlessly) repair those too.
    const leaderUrl = (await etcd().endpointStatus({ cluster: false })).statuses.find((x) => x.isLeader)!.endpoint;
    const [b, cm] = t.cluster.members.filter((m) => m.clientUrl !== leaderUrl) as [SandboxMember, SandboxMember];
    const id = (await members()).find((x) => x.name === b.name)!.id;
    const w = t.writer.start('repair');
    t.sandbox.host(b.instanceId).killEtcd(); // the process dies; the instance stays InService
    await waitFor('the target to turn unhealthy', async () => ((await targetHealth(b.instanceId)) === 'unhealthy' ? true : undefined));
    const first = await reconcileCluster(sandboxReconcileDeps(t.c, t.ctl, undefined, record('reconciler')), 'prod', { ...NOW, repairGraceSec: 0 });
    expect(first.steps.map((s) => [s.action.kind, s.result, s.detail])).toEqual([['repair-master', 'done', `${b.name} on ${b.instanceId} repaired (in-place)`]]);
    expect((await members()).find((m) => m.name === b.name)).toMatchObject({ id, peerUrls: [b.peerUrl], isLearner: false });
    expect(await countKeys(b.clientUrl, '/registry/test/')).toBe(300);
    expect(await targetHealth(b.instanceId)).toBe('healthy');
    expect((await reconcileCluster(sandboxReconcileDeps(t.c, t.ctl), 'prod', { ...NOW, repairGraceSec: 0 })).plan.actions).toEqual([]);
    await t.writer.check(w, 'etcd process died on an InService master, repaired');

    // The whole host is gone (agent offline) but still InService: nothing to run there; say so.
    t.sandbox.host(cm.instanceId).crash();
    await waitFor('the target to turn unhealthy', async () => ((await targetHealth(cm.instanceId)) === 'unhealthy' ? true : undefined));
    const dead = await reconcileCluster(sandboxReconcileDeps(t.c, t.ctl), 'prod', { ...NOW, repairGraceSec: 0 });
    expect(dead.steps.map((s) => [s.action.kind, s.result])).toEqual([['repair-master', 'failed']]);
    const alerts = await receivedAlerts(t.ctl);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatch(new RegExp(`reconciler could not repair ${cm.name} on ${cm.instanceId} .*the SSM agent on ${cm.instanceId} is offline: if the instance is impaired, terminate it`));
    expect((await members()).map((m) => m.id)).toContain((await members()).find((m) => m.name === cm.name)!.id);
    expect(await members()).toHaveLength(3);
  });

  it('a repair never restarts a running, healthy member for a configuration change (an adopted master\'s own etcd settings): it says so instead', async () => {
    // A follower whose running etcd was configured by hand (as on a master adopted from another
    // tool), and which the load balancer lost: the reconciler repairs the registration. Restarting
    // etcd for its settings would cost a voter — with another member down, quorum.
    const leaderUrl = (await etcd().endpointStatus({ cluster: false })).statuses.find((x) => x.isLeader)!.endpoint;
    const b = t.cluster.members.find((m) => m.clientUrl !== leaderUrl)!;
    const host = t.sandbox.host(b.instanceId);
    const conf = join(host.root, 'etc/quorum-keeper/etcd.conf.yml');
    appendFileSync(conf, '# tuned by hand before Quorum Keeper adopted this master\nheartbeat-interval: 100\n');
    // As on an adopted master: no copy of what Quorum Keeper last started etcd with.
    rmSync(`${conf}.running`, { force: true });
    const pid = host.etcdPid();
    await t.c.elb.send(new DeregisterTargetsCommand({ TargetGroupArn: t.cluster.targetGroupArn, Targets: [{ Id: b.instanceId, Port: 6443 }] }));
    const details: string[] = [];
    const out = await reconcileCluster(sandboxReconcileDeps(t.c, t.ctl, undefined, (e) => { if (e.step === 'start') details.push(e.detail); }), 'prod', { ...NOW, repairGraceSec: 0 });
    expect(out.steps.map((x) => [x.action.kind, x.result])).toEqual([['repair-master', 'done']]);
    expect(host.etcdPid()).toBe(pid); // not restarted
    expect(details.join('\n')).toMatch(/configuration differs from Quorum Keeper's: not restarted for it .*applied at its next start/);
    expect(await targetHealth(b.instanceId)).toBe('healthy');
    // Quorum Keeper's configuration is what etcd's next start reads.
    expect(readFileSync(conf, 'utf8')).not.toMatch(/tuned by hand/);
  });

  it('a stray is never removed while the cluster has no quorum: membership unchanged, the operator is told', async () => {
    // An unstarted stray VOTER makes 4 voters (quorum 3); then b dies: 2 of 4 left, no leader.
    const stray = await addStray(false);
    const before = (await members()).map((m) => m.id).sort();
    expect(before).toContain(stray.member.id);
    t.sandbox.host(memberOf(t.cluster, 'etcd-b').instanceId).crash();
    const survivor = harnessEtcd([memberOf(t.cluster, 'etcd-a').clientUrl]);
    await waitFor('the survivors to lose their leader', async () => ((await survivor.endpointStatus({ cluster: false })).statuses.every(hasNoLeader) ? true : undefined));
    const out = await reconcileCluster(sandboxReconcileDeps(t.c, t.ctl, undefined, record('reconciler')), 'prod', NOW);
    expect(out.steps.filter((s) => s.action.kind === 'remove-stray')).toEqual([]);
    // Without quorum only a member's own view can be read (etcd 3.5's member list is linearizable).
    expect((await localMemberList(memberOf(t.cluster, 'etcd-a').clientUrl)).members.map((m) => m.id).sort()).toEqual(before);
    const alerts = await receivedAlerts(t.ctl);
    // Survivors may still name the old leader for an election timeout: either reason is right.
    expect(alerts.filter((a) => /etcd member \(unstarted \w+\) has no slot, but (the cluster has no leader|removing it would leave [01]\/3 healthy voters)/.test(a))).toHaveLength(1);
  });

  it('a 4th voter that answers and follows the leader, no slot claiming it: three runs at grace 0 leave 4 members, one alert (issue 18)', async () => {
    // A voter added by hand: member add, then a real etcd started for it (its own process).
    const [peerPort, clientPort] = [await freePort(), await freePort()];
    const [peerUrl, clientUrl] = [`https://127.0.0.1:${peerPort}`, `https://127.0.0.1:${clientPort}`];
    const added = await waitFor('etcd to accept a member add', async () => {
      try {
        return await etcd().memberAdd('etcd-hand', [peerUrl], { learner: false });
      } catch (err) {
        if (err instanceof EtcdError && err.kind === 'unhealthy-cluster') return undefined;
        throw err;
      }
    }, { timeoutMs: 30_000, intervalMs: 500 });
    const dir = makeTempDir('hand');
    const tlsFlags = await (await SandboxPki.get()).etcdFlags(dir, 'etcd-hand');
    const initial = [...t.cluster.members.map((m) => `${m.name}=${m.peerUrl}`), `etcd-hand=${peerUrl}`].join(',');
    const child = spawn('setsid', ['etcd', '--name', 'etcd-hand', '--data-dir', join(dir, 'data'), '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl,
      '--listen-client-urls', clientUrl, '--advertise-client-urls', clientUrl, '--initial-cluster', initial, '--initial-cluster-state', 'existing', ...tlsFlags],
    { stdio: 'ignore', env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD'))) });
    child.unref();
    const w = t.writer.start('live-stray');
    try {
      await waitFor('the 4th voter to follow the leader', async () => {
        const st = await harnessEtcd([clientUrl]).endpointStatus({ cluster: false }).catch(() => null);
        return st?.statuses[0]?.leader ? true : undefined;
      }, { timeoutMs: 30_000, intervalMs: 500 });
      for (let run = 0; run < 3; run++) {
        const out = await reconcileCluster(sandboxReconcileDeps(t.c, t.ctl), 'prod', { ...NOW, repairGraceSec: 3600 });
        expect(out.steps.filter((x) => x.action.kind === 'remove-stray')).toEqual([]);
      }
      const after = await members();
      expect(after).toHaveLength(4);
      expect(after.find((m) => m.id === added.member.id)).toMatchObject({ name: 'etcd-hand', isLearner: false });
      const alerts = await receivedAlerts(t.ctl);
      expect(alerts).toHaveLength(1);
      expect(alerts[0]).toMatch(/etcd-hand \([0-9a-f]+\) answers and follows the leader, but no slot claims it: not removed/);
      await t.writer.check(w, 'a live 4th voter no slot claims');
    } finally {
      if (child.pid) killHard(child.pid);
      removeDir(dir);
    }
  });

  it('reconciler and event handler start on the same slot at the same moment: one membership change, one CONTINUE', async () => {
    const a = memberOf(t.cluster, 'etcd-a');
    const id = (await members()).find((x) => x.name === 'etcd-a')!.id;
    const w = t.writer.start('race');
    const { instanceId, event } = await killMaster(t.sandbox, t.c, a);
    const found = await findMasterSlot(t.c.asg, a.asg, { cluster: 'quorum-keeper/cluster', member: 'quorum-keeper/etcd-member' });
    if (found.kind !== 'master') throw new Error(found.reason);
    const hook = { asg: a.asg, hook: event.detail.LifecycleHookName, token: event.detail.LifecycleActionToken, instanceId };
    const [handled, reconciled] = await Promise.all([
      replaceMaster(sandboxFlowDeps(t.c, t.ctl, record('handler')), { slot: found.slot, instanceId, hook }),
      reconcileCluster(sandboxReconcileDeps(t.c, t.ctl, undefined, record('reconciler')), 'prod', NOW),
    ]);
    expect(handled.result).toBe('continued');
    expect(reconciled.steps.filter((s) => s.result === 'failed')).toEqual([]);
    expect(events.filter((e) => e.endsWith('membership:ok'))).toHaveLength(1);
    await expectReplaced('etcd-a', instanceId, id);
    expect(await receivedAlerts(t.ctl)).toEqual([]);
    await t.writer.check(w, 'reconciler and event handler at once');
  });

  it('the reconciler drives the slot first: the late event handler waits for it, then finds the master InService and touches nothing', async () => {
    const a = memberOf(t.cluster, 'etcd-a');
    const id = (await members()).find((x) => x.name === 'etcd-a')!.id;
    const w = t.writer.start('race-2');
    const { instanceId, event } = await killMaster(t.sandbox, t.c, a);
    const found = await findMasterSlot(t.c.asg, a.asg, { cluster: 'quorum-keeper/cluster', member: 'quorum-keeper/etcd-member' });
    if (found.kind !== 'master') throw new Error(found.reason);
    const reconciling = reconcileCluster(sandboxReconcileDeps(t.c, t.ctl, undefined, record('reconciler')), 'prod', NOW);
    await waitFor('the reconciler to hold the slot', async () => ((await t.ctl.lock.isHeld('prod/etcd-a')) ? true : undefined), { timeoutMs: 60_000, intervalMs: 50 });
    const handled = await replaceMaster(sandboxFlowDeps(t.c, t.ctl, record('handler')), {
      slot: found.slot, instanceId, hook: { asg: a.asg, hook: event.detail.LifecycleHookName, token: event.detail.LifecycleActionToken, instanceId },
    });
    const reconciled = await reconciling;
    expect(reconciled.steps.find((s) => s.action.kind === 'redrive-replacement')).toMatchObject({ result: 'done' });
    expect(handled).toMatchObject({ result: 'ignored', reason: expect.stringMatching(/is InService in .*, not Pending:Wait/) as unknown });
    expect(events).toContain('handler slot:wait');
    expect(events.filter((e) => e.endsWith('membership:ok'))).toEqual(['reconciler membership:ok']);
    await expectReplaced('etcd-a', instanceId, id);
    await t.writer.check(w, 'reconciler first, late event handler');
  });
});
