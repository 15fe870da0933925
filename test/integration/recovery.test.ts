/**
 * Quorum loss recovered by the reconciler, end to end in the sandbox (issue 30): masters
 * terminated at once, their replacements coming in awaiting DR, then the scheduled reconciler
 * with automatic recovery — members on their own data started (no restore), or the cluster
 * restored from a copy of the survivor or the newest backup — with the continuous writer
 * checking what was acknowledged against what is readable and what was reported lost.
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_RECONCILE } from '../../lib/domain/reconcile';
import { DEFAULT_RECOVERY } from '../../lib/domain/recovery';
import { backupCluster } from '../../lib/flows/backup';
import { findMasterSlot } from '../../lib/flows/master-slot';
import { reconcileCluster } from '../../lib/flows/reconcile';
import { replaceMaster } from '../../lib/flows/replacement';
import { clusterStatus } from '../../lib/flows/status';
import type { SandboxClients, SandboxCluster } from '../../sandbox/cluster';
import {
  type BackupTarget, type Control, receivedAlerts, sandboxBackupSettings, sandboxFlowDeps, sandboxReconcileDeps, sandboxRestoreDeps, sandboxStatusDeps,
} from '../../sandbox/control';
import { countKeys, killMaster, putKeysBulk } from '../../sandbox/scenario';
import type { Sandbox } from '../../sandbox/sandbox';
import { AckWriter, formatReport } from '../../sandbox/writer';
import { harnessEtcd } from '../../sandbox/etcd-http';
import { sandboxCli } from '../support/cli';
import { useDrSandbox } from '../support/dr-sandbox';

jest.setTimeout(240_000);

describe('quorum-loss recovery by the reconciler', () => {
  const t = useDrSandbox();
  let sandbox: Sandbox;
  let c: SandboxClients;
  let ctl: Control;
  let b: BackupTarget;
  let cluster: SandboxCluster;
  const { steps, deps, rdeps } = t;
  beforeEach(() => {
    ({ sandbox, c, ctl, b, cluster } = t);
  });
  const etcdOf = (clientUrl: string) => harnessEtcd([clientUrl]);
  const matrix: string[] = [];
  afterAll(() => {
    if (matrix.length) console.log(`fault matrix (DR after terminations):\n| case | after the terminations | restore --snapshot latest |\n|---|---|---|\n${matrix.join('\n')}`);
  });
  // The scheduled reconciler, this cluster opted in to automatic recovery (no wait, for the test).
  const reconciler = () => ({
    ...sandboxReconcileDeps(c, ctl, b, (e) => steps.push(`${e.step}:${e.status} ${e.detail}`)),
    recovery: { settings: () => ({ ...DEFAULT_RECOVERY, mode: 'automatic' as const, waitSec: 0 }), journal: rdeps().journal! },
  });
  const RECONCILE = { ...DEFAULT_RECONCILE, repairGraceSec: 0, pendingGraceSec: 0 };
  /** Runs the reconciler until `status` finds nothing wrong (members started or restored, then each replaced master repaired). */
  const reconcileUntilWhole = async () => {
    let st = await clusterStatus(sandboxStatusDeps(c, ctl), 'prod');
    for (let run = 0; run < 6 && st.problems.length; run++) {
      await new Promise((res) => setTimeout(res, 2000));
      steps.push((await reconcileCluster(reconciler(), 'prod', RECONCILE)).summary);
      st = await clusterStatus(sandboxStatusDeps(c, ctl), 'prod');
    }
    if (st.problems.length) console.log(steps.join('\n'));
    expect(st.problems).toEqual([]);
    return st;
  };
  /** Every slot's master terminated before any replacement runs (an AZ outage), their volumes wiped or not; each replacement runs. */
  const terminate = async (members: SandboxCluster['members'], wipe: boolean) => {
    const flow = sandboxFlowDeps(c, ctl, undefined, b);
    const launched = [];
    for (const m of members) {
      launched.push({ m, ...(await killMaster(sandbox, c, m)) });
      if (wipe) rmSync(join(sandbox.volumeDir(m.volumeId), 'data'), { recursive: true, force: true });
    }
    const outcomes = await Promise.all(launched.map(async ({ m, instanceId, event }) => {
      const found = await findMasterSlot(c.asg, m.asg, { cluster: 'quorum-keeper/cluster', member: 'quorum-keeper/etcd-member' });
      if (found.kind !== 'master') throw new Error(found.reason);
      return (await replaceMaster(flow, { slot: found.slot, instanceId, hook: { asg: m.asg, hook: event.detail.LifecycleHookName, token: event.detail.LifecycleActionToken, instanceId } })).result;
    }));
    return { launched, outcomes, flow };
  };

  it.each([
    { volumes: 'with their data intact', wipe: false, then: 'the reconciler starts them on their own data: quorum back, NO restore, nothing lost' },
    { volumes: 'with those volumes wiped', wipe: true, then: 'the reconciler (automatic recovery) restores from a copy of the survivor, ahead of the newest backup: nothing lost' },
  ])('two of three masters TERMINATED $volumes → their slots come InService awaiting DR, one alert each; $then', async ({ wipe }) => {
    const backup = await backupCluster(deps(), 'prod', sandboxBackupSettings(b));
    expect(backup.result).toBe('uploaded');
    // Written after the newest backup: only the survivor holds them.
    await putKeysBulk(cluster.members[2]!.clientUrl, '/registry/late/', 200);
    // Both masters terminated before either replacement runs (an AZ outage, ELB health checks),
    // with the writer on: what it saw acknowledged is what must be readable afterwards.
    const writer = (t.writer = new AckWriter(() => cluster.members.map((m) => m.clientUrl), { prefix: '/qk-writer/restore/' }).start());
    await new Promise((r) => setTimeout(r, 1500));
    const { launched, outcomes, flow } = await terminate(cluster.members.slice(0, 2), wipe);
    expect(outcomes).toEqual(['awaiting-dr', 'awaiting-dr']);
    for (const { m, instanceId } of launched) {
      // In service, volume mounted, etcd stopped: what a restore needs.
      expect(sandbox.lifecycle.results(instanceId)).toEqual(['CONTINUE']);
      expect(sandbox.host(instanceId).etcdPid()).toBeNull();
      Object.assign(m, { instanceId, peerUrl: sandbox.host(instanceId).peerUrl, clientUrl: sandbox.host(instanceId).clientUrl });
    }
    const alerts = (await receivedAlerts(ctl)).filter((x) => /awaiting disaster recovery/.test(x));
    expect(alerts).toHaveLength(2);
    expect(alerts.every((x) => (wipe ? /, blank, etcd left stopped/ : /with its data, etcd left stopped/).test(x))).toBe(true);
    expect(alerts.map((x) => /member (etcd-[ab])/.exec(x)?.[1]).sort()).toEqual(['etcd-a', 'etcd-b']);

    // `quorum-keeper plan` judges it as the reconciler does (recovery manual there, its memory
    // not yet written): members on their own data would be started; a restore is only said, with its wait.
    const shown = await sandboxCli(() => sandbox, () => ['--state-table', ctl.table])(['plan', '--cluster', 'prod']);
    expect(shown.code).toBe(0);
    expect(shown.out).toMatch(wipe ? /note: quorum lost.*a restore from a copy of etcd-c's data .*is due after 600 s/ : /start etcd of etcd-a on i-\w+ on its own data/);

    const first = await reconcileCluster(reconciler(), 'prod', RECONCILE);
    const did = first.steps.map((x) => `${x.action.kind}:${x.result}`);
    const survivor = cluster.members[2]!;
    if (!wipe) {
      // Their data is intact: started as themselves, they and the survivor make a quorum again.
      expect(did.filter((x) => x.startsWith('start-member')).sort()).toEqual(['start-member:done', 'start-member:done']);
      expect(did.some((x) => x.startsWith('recover'))).toBe(false);
    } else {
      expect(did).toContain('recover:done');
      const told = (await receivedAlerts(ctl)).filter((x) => /restoring it from|is restored from/.test(x));
      expect(told.find((x) => /restoring it from a copy of etcd-c's data/.test(x))).toMatch(/Revisions lost: 0 /);
      expect(told.some((x) => /is restored from .*etcd-c/.test(x))).toBe(true);
    }
    // Until whole: members started or restored, then each replaced master repaired (its peer URL,
    // the load balancer, its awaiting-DR record) by the same reconciler.
    const st = await reconcileUntilWhole();
    const list = await etcdOf(sandbox.host(survivor.instanceId).clientUrl).memberList();
    const aside = cluster.members.flatMap((m) => readdirSync(sandbox.volumeDir(m.volumeId)).filter((d) => d.includes('pre-restore')));
    matrix.push(`| 2 of 3 masters terminated ${wipe ? 'and their volumes wiped' : 'with their data intact'} | replacements ${outcomes.join(', ')}, ${alerts.length} alerts | reconciler: ${did.join(', ')}; ${aside.length ? 'restored' : 'no restore'} |`);
    expect(aside.length > 0).toBe(wipe);
    expect(list.members.map((m) => m.name).sort()).toEqual(['etcd-a', 'etcd-b', 'etcd-c']);
    expect(list.members.every((m) => !m.isLearner && m.started)).toBe(true);
    for (const m of cluster.members) {
      expect(await countKeys(sandbox.host(m.instanceId).clientUrl, '/registry/bulk/')).toBe(3_000);
      expect(await countKeys(sandbox.host(m.instanceId).clientUrl, '/registry/late/')).toBe(200);
    }
    const report = await writer.verify(cluster.members.map((m) => sandbox.host(m.instanceId).clientUrl));
    console.log(`two masters terminated ${wipe ? 'and wiped (recovered from the survivor)' : 'with their data (started)'}: ${formatReport(report)}`);
    expect(report.acknowledgedButMissing).toBe(0);

    // The cluster can heal: each slot's new member ID is in its marker and in the state table, no
    // awaiting-DR record is left, every master is registered, and `status` says healthy.
    const recorded = await sandboxRestoreDeps(c, ctl, b).memberIds!.get('prod', ['etcd-a', 'etcd-b', 'etcd-c']);
    for (const m of list.members) {
      expect(recorded[m.name]).toBe(m.id);
      const vol = cluster.members.find((x) => x.name === m.name)!.volumeId;
      expect(readFileSync(join(sandbox.volumeDir(vol), '.quorum-keeper-volume'), 'utf8')).toContain(`memberId=${m.id}\n`);
    }
    expect(st.members.map((m) => m.awaitingDr)).toEqual([null, null, null]);
    if (!wipe) return;
    // And a master lost now is replaced as usual: its volume's marker names the member that exists.
    const a = cluster.members[0]!;
    const { instanceId, event } = await killMaster(sandbox, c, a);
    const found = await findMasterSlot(c.asg, a.asg, { cluster: 'quorum-keeper/cluster', member: 'quorum-keeper/etcd-member' });
    if (found.kind !== 'master') throw new Error(found.reason);
    const again = await replaceMaster(flow, { slot: found.slot, instanceId, hook: { asg: a.asg, hook: event.detail.LifecycleHookName, token: event.detail.LifecycleActionToken, instanceId } });
    expect(again).toMatchObject({ result: 'continued', membership: 'update' });
  });

  it('all three masters TERMINATED with their volumes wiped → awaiting DR; the reconciler (automatic) restores the newest backup, and the revisions it reports lost are the writes the writer saw discarded', async () => {
    const writer = (t.writer = new AckWriter(() => cluster.members.map((m) => m.clientUrl), { prefix: '/qk-writer/restore/' }).start());
    await new Promise((r) => setTimeout(r, 1500));
    const backup = await backupCluster(deps(), 'prod', sandboxBackupSettings(b));
    expect(backup.result).toBe('uploaded');
    await new Promise((r) => setTimeout(r, 1500));
    await writer.stop();
    // A reconciler run after the last write remembers the cluster's revision (the highest seen).
    await reconcileCluster(reconciler(), 'prod', RECONCILE);
    const { launched, outcomes } = await terminate(cluster.members, true);
    expect(outcomes).toEqual(['awaiting-dr', 'awaiting-dr', 'awaiting-dr']);
    for (const { m, instanceId } of launched) Object.assign(m, { instanceId, peerUrl: sandbox.host(instanceId).peerUrl, clientUrl: sandbox.host(instanceId).clientUrl });

    const first = await reconcileCluster(reconciler(), 'prod', RECONCILE);
    expect(first.steps.map((x) => `${x.action.kind}:${x.result}`)).toContain('recover:done');
    const before = (await receivedAlerts(ctl)).find((x) => /Quorum Keeper is restoring it from backup/.test(x));
    expect(before).toContain(backup.key);
    const reported = Number(/Revisions lost: (\d+) /.exec(before ?? '')?.[1]);
    await reconcileUntilWhole();
    const report = await writer.verify(cluster.members.map((m) => m.clientUrl), { upToRevision: backup.revision! });
    console.log(`all three terminated and wiped (recovered from the newest backup): ${formatReport(report)}; reported lost: ${reported} revisions`);
    expect(report.acknowledgedButMissing).toBe(0);
    expect(report.discardedAfterRevision).toBeGreaterThan(0);
    expect(reported).toBe(report.discardedAfterRevision);
    for (const m of cluster.members) expect(await countKeys(m.clientUrl, '/registry/bulk/')).toBe(3_000);
  });
});
