/**
 * Fault matrix (issue 8): the Lambda deadline in every step of the retirement, backup and
 * reconciler flows (the replacement's own case is replacement test (g)). middy aborts the
 * flow's signal shortly before the deadline; the flow stops, and the next run (the retried
 * event, the next schedule) must converge from wherever the world was left. Each case
 * asserts the real outcome: etcd membership, volume state, hook results, objects in S3,
 * files left on the masters, alerts, and no acknowledged write lost.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { listBackups } from '../../lib/aws/backups';
import { DEFAULT_RECONCILE } from '../../lib/domain/reconcile';
import { EtcdError } from '../../lib/etcd';
import { backupCluster, DEFAULT_WORK_DIR } from '../../lib/flows/backup';
import type { FlowDeps } from '../../lib/flows/deps';
import { findMasterSlot, type MasterSlot } from '../../lib/flows/master-slot';
import { reconcileCluster } from '../../lib/flows/reconcile';
import { replaceMaster } from '../../lib/flows/replacement';
import { retireMaster } from '../../lib/flows/retirement';
import { receivedAlerts, sandboxBackupDeps, sandboxBackupSettings, sandboxFlowDeps, sandboxReconcileDeps } from '../../sandbox/control';
import { waitFor } from '../../sandbox/ports';
import { countKeys, killMaster, leaveAttached, memberOf, TERMINATE_HOOK } from '../../sandbox/scenario';
import { freshClusterPerTest } from '../support/scenario-suite';
import { harnessEtcd } from '../../sandbox/etcd-http';

jest.setTimeout(300_000);

/** A progress callback that aborts the run right after `step` reports ok (the deadline hits there). */
function deadlineAfter(step: string): { signal: AbortSignal; progress: FlowDeps['progress'] } {
  const abort = new AbortController();
  return {
    signal: abort.signal,
    progress: (e) => {
      if (e.step === step && e.status === 'ok' && !abort.signal.aborted) abort.abort(new Error(`deadline after ${step}`));
    },
  };
}

describe('fault matrix: the Lambda deadline in every step, then a re-run', () => {
  const t = freshClusterPerTest({ keys: 300, backups: true });
  const summary: string[] = [];
  afterAll(() => {
    if (summary.length) console.log(`fault matrix (deadline):\n| flow | stopped after | re-run |\n|---|---|---|\n${summary.join('\n')}`);
  });
  const etcd = () => harnessEtcd(t.cluster.members.map((m) => m.clientUrl));
  const slotOf = async (asg: string): Promise<MasterSlot> => {
    const s = await findMasterSlot(t.c.asg, asg, { cluster: 'quorum-keeper/cluster', member: 'quorum-keeper/etcd-member' });
    if (s.kind !== 'master') throw new Error(s.reason);
    return s.slot;
  };

  it('retirement: stopped after each step, the retried event drains, hands over, stops and detaches; one CONTINUE', async () => {
    const w = t.writer.start('retire-deadline');
    const ids = new Map((await etcd().memberList()).members.map((m) => [m.name, m.id]));
    for (const stopAfter of ['instance', 'deregister', 'move-leader', 'stop', 'detach']) {
      // Retire the current leader each time, so leadership is handed over in every round.
      const status = await etcd().endpointStatus({ cluster: true });
      const leader = t.cluster.members.find((m) => m.clientUrl === status.statuses.find((s) => s.isLeader)?.endpoint)!;
      const term = t.sandbox.lifecycle.begin({ asg: leader.asg, hook: TERMINATE_HOOK, instanceId: leader.instanceId, transition: 'autoscaling:EC2_INSTANCE_TERMINATING' });
      const hook = { asg: leader.asg, hook: term.detail.LifecycleHookName, token: term.detail.LifecycleActionToken, instanceId: leader.instanceId };
      const input = { slot: await slotOf(leader.asg), instanceId: leader.instanceId, hook };
      // (A master brought in by an earlier round has its launch hook's CONTINUE on record.)
      const prior = t.sandbox.lifecycle.results(leader.instanceId).length;
      const hookResults = () => t.sandbox.lifecycle.results(leader.instanceId).slice(prior);
      const d = deadlineAfter(stopAfter);
      await expect(retireMaster({ ...sandboxFlowDeps(t.c, t.ctl, d.progress), signal: d.signal }, input)).rejects.toThrow(`deadline after ${stopAfter}`);
      expect(hookResults()).toEqual([]);
      const again = await retireMaster(sandboxFlowDeps(t.c, t.ctl), input);
      summary.push(`| retirement | ${stopAfter} | ${again.result}${again.reason ? `: ${again.reason}` : ''} |`);
      expect({ stopAfter, result: again.result }).toEqual({ stopAfter, result: 'continued' });
      expect(hookResults()).toEqual(['CONTINUE']);
      expect(t.sandbox.host(leader.instanceId).etcdPid()).toBeNull();
      expect((await t.sandbox.describeVolume(leader.volumeId))?.State).toBe('available');
      // The others kept quorum with a leader; nobody was removed.
      const others = t.cluster.members.filter((m) => m !== leader);
      const after = await harnessEtcd(others.map((m) => m.clientUrl)).endpointStatus({ cluster: false });
      expect(after.statuses).toHaveLength(2);
      expect(after.statuses.every((s) => s.leader !== null && s.leader === after.statuses[0]!.leader)).toBe(true);
      // The ASG goes on to terminate it and launch the replacement, which needs no force.
      const { instanceId, event } = await killMaster(t.sandbox, t.c, leader);
      const rep = await replaceMaster(sandboxFlowDeps(t.c, t.ctl), {
        slot: input.slot, instanceId, hook: { asg: leader.asg, hook: event.detail.LifecycleHookName, token: event.detail.LifecycleActionToken, instanceId },
      });
      expect(rep).toEqual({ result: 'continued', membership: 'update' });
      Object.assign(leader, { instanceId, peerUrl: t.sandbox.host(instanceId).peerUrl, clientUrl: t.sandbox.host(instanceId).clientUrl });
    }
    expect(new Map((await etcd().memberList()).members.map((m) => [m.name, m.id]))).toEqual(ids);
    expect(await countKeys(t.cluster.members[0]!.clientUrl, '/registry/test/')).toBe(300);
    expect(t.sandbox.detachCalls.filter((x) => x.force)).toEqual([]);
    expect(await receivedAlerts(t.ctl)).toEqual([]);
    await t.writer.check(w, 'retirement stopped at every step');
  });

  it('backup: stopped after each step, nothing unverified in S3, no snapshot left on the master, one warning; the next run uploads', async () => {
    const settings = sandboxBackupSettings(t.backups);
    const leftovers = () => t.cluster.members.flatMap((m) => {
      const dir = join(t.sandbox.host(m.instanceId).root, DEFAULT_WORK_DIR);
      return existsSync(dir) ? readdirSync(dir).filter((f) => f.startsWith('snapshot-')).map((f) => `${m.name}:${f}`) : [];
    });
    for (const stopAfter of ['source', 'snapshot']) {
      const d = deadlineAfter(stopAfter);
      const out = await backupCluster({ ...sandboxBackupDeps(t.c, t.ctl, t.backups, d.progress), signal: d.signal }, 'prod', settings);
      summary.push(`| backup | ${stopAfter} | ${out.result}: ${out.failure?.message ?? ''} |`);
      expect(out).toMatchObject({ result: 'failed', failure: { step: 'deadline' }, pruneSkipped: 'stopped before the Lambda deadline' });
      expect(await listBackups(t.backups.s3, t.backups.store, 'prod')).toEqual([]);
      // The prepared snapshot (and its trial restore) is discarded even though the run was aborted.
      await waitFor('the discarded snapshot to go', () => Promise.resolve(leftovers().length === 0 ? true : undefined), { timeoutMs: 10_000, intervalMs: 200 })
        .catch(() => expect(leftovers()).toEqual([]));
    }
    const alerts = await receivedAlerts(t.ctl);
    expect(alerts).toHaveLength(1); // the same cause twice in the window: said once
    expect(alerts[0]).toMatch(/stopped before the Lambda deadline[\s\S]*The next scheduled run starts over/);
    const next = await backupCluster(sandboxBackupDeps(t.c, t.ctl, t.backups), 'prod', settings);
    summary.push(`| backup | (next run) | ${next.result} |`);
    expect(next.result).toBe('uploaded');
    expect(await listBackups(t.backups.s3, t.backups.store, 'prod')).toHaveLength(1);
    expect(leftovers()).toEqual([]);
  });

  it('reconciler: stopped after each of its steps (and inside the re-driven replacement), later runs converge; then in shape', async () => {
    const NOW = { ...DEFAULT_RECONCILE, pendingGraceSec: 0, strayGraceSec: 0 };
    const b = memberOf(t.cluster, 'etcd-b');
    const id = (await etcd().memberList()).members.find((x) => x.name === 'etcd-b')!.id;
    const stray = await waitFor('etcd to accept a member add', async () => {
      try {
        return await etcd().memberAdd('etcd-gone', ['http://127.0.0.1:1'], { learner: true });
      } catch (err) {
        if (err instanceof EtcdError && err.kind === 'unhealthy-cluster') return undefined;
        throw err;
      }
    }, { timeoutMs: 30_000, intervalMs: 500 });
    const w = t.writer.start('reconcile-deadline');
    const { instanceId } = await killMaster(t.sandbox, t.c, b); // its launch event never comes
    await leaveAttached(t.c, b.volumeId, b.instanceId);
    for (const stopAfter of ['detach-volume', 'mount', 'redrive-replacement', 'remove-stray', 'backup']) {
      const d = deadlineAfter(stopAfter);
      await expect(reconcileCluster({ ...sandboxReconcileDeps(t.c, t.ctl, t.backups, d.progress), signal: d.signal }, 'prod', NOW))
        .rejects.toThrow(`deadline after ${stopAfter}`);
      summary.push(`| reconciler | ${stopAfter} | next run picks up |`);
    }
    const last = await reconcileCluster(sandboxReconcileDeps(t.c, t.ctl, t.backups), 'prod', NOW);
    expect(last.steps.filter((s) => s.result === 'failed')).toEqual([]);
    const settled = await reconcileCluster(sandboxReconcileDeps(t.c, t.ctl, t.backups), 'prod', NOW);
    summary.push(`| reconciler | (two more runs) | drift ${settled.drift} |`);
    expect(settled.drift).toBe(0);
    expect(settled.steps).toEqual([]);
    const now = (await etcd().memberList()).members;
    expect(now.map((m) => m.id)).not.toContain(stray.member.id);
    expect(now.find((m) => m.name === 'etcd-b')).toMatchObject({ id, peerUrls: [t.sandbox.host(instanceId).peerUrl], isLearner: false });
    expect(await countKeys(t.sandbox.host(instanceId).clientUrl, '/registry/test/')).toBe(300);
    expect(t.sandbox.lifecycle.results(instanceId)).toEqual(['CONTINUE']);
    expect(t.sandbox.detachCalls.filter((x) => x.force && x.instanceId !== b.instanceId)).toEqual([]);
    expect(await listBackups(t.backups.s3, t.backups.store, 'prod')).toHaveLength(1);
    expect((await receivedAlerts(t.ctl)).filter((a) => !/stale/.test(a))).toEqual([]);
    await t.writer.check(w, 'reconciler stopped at every step');
  });
});
