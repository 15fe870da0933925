/**
 * Disaster recovery end to end in the sandbox: a real backup in S3 (moto), two of three
 * members killed with their data wiped, `restoreCluster` brings back a 3-member cluster with
 * every key and the snapshot's revision — with the continuous writer checking that every
 * write acknowledged up to the snapshot's revision survived.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { backupCluster } from '../../lib/flows/backup';
import { DEFAULT_WORK_DIR } from '../../lib/flows/backup';
import { findMasterSlot } from '../../lib/flows/master-slot';
import { replaceMaster } from '../../lib/flows/replacement';
import { refusal, RestoreRefused, restoreCluster, type RestorePlan } from '../../lib/flows/restore';
import { clusterStatus } from '../../lib/flows/status';
import { renderRestorePlan } from '../../cli/render/restore';
import { DEFAULT_RECONCILE } from '../../lib/domain/reconcile';
import { DEFAULT_RECOVERY } from '../../lib/domain/recovery';
import { reconcileCluster } from '../../lib/flows/reconcile';
import { destroyClients, provisionCluster, type SandboxClients, sandboxClients, type SandboxCluster } from '../../sandbox/cluster';
import {
  type BackupTarget, type Control, destroyBackups, destroyControl, provisionBackups, provisionControl, receivedAlerts, sandboxBackupDeps, sandboxBackupSettings, sandboxReconcileDeps,
  sandboxFlowDeps, sandboxRestoreDeps, sandboxStatusDeps,
} from '../../sandbox/control';
import { killHard } from '../../sandbox/procs';
import { countKeys, killMaster, putKeysBulk } from '../../sandbox/scenario';
import { Sandbox } from '../../sandbox/sandbox';
import { AckWriter, formatReport } from '../../sandbox/writer';
import { harnessEtcd } from '../../sandbox/etcd-http';

jest.setTimeout(240_000);

describe('disaster-recovery restore', () => {
  let sandbox: Sandbox;
  let c: SandboxClients;
  let ctl: Control;
  let b: BackupTarget;
  let cluster: SandboxCluster;
  let writer: AckWriter | null = null;
  const steps: string[] = [];
  const matrix: string[] = [];
  afterAll(() => {
    if (matrix.length) console.log(`fault matrix (DR after terminations):\n| case | after the terminations | restore --snapshot latest |\n|---|---|---|\n${matrix.join('\n')}`);
  });

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
    ctl = await provisionControl(sandbox);
    b = await provisionBackups(sandbox);
    cluster = await provisionCluster(sandbox, c, { name: 'prod' });
    await putKeysBulk(cluster.members[0]!.clientUrl, '/registry/bulk/', 3_000);
    steps.length = 0;
  });
  afterEach(async () => {
    await writer?.stop();
    writer = null;
    destroyControl(ctl);
    destroyBackups(b);
  });

  const deps = () => sandboxBackupDeps(c, ctl, b, (e) => steps.push(`${e.step}:${e.status} ${e.detail}`));
  const rdeps = () => sandboxRestoreDeps(c, ctl, b, (e) => steps.push(`${e.step}:${e.status} ${e.detail}`));
  const etcdOf = (clientUrl: string) => harnessEtcd([clientUrl]);
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
  const request = (over: { force?: boolean; confirm?: (p: RestorePlan) => Promise<boolean> } = {}) => ({
    cluster: 'prod', snapshot: 'latest', store: b.store, workDir: DEFAULT_WORK_DIR, force: over.force ?? false,
    confirm: over.confirm ?? (() => Promise.resolve(true)), leaderTimeoutSec: 60,
  });

  it('refuses while the cluster still has quorum, and changes nothing', async () => {
    await backupCluster(deps(), 'prod', sandboxBackupSettings(b));
    const before = await etcdOf(cluster.members[0]!.clientUrl).memberList();
    let asked = false;
    await expect(restoreCluster(rdeps(), request({ confirm: () => Promise.resolve((asked = true)) }))).rejects.toThrow(RestoreRefused);
    await expect(restoreCluster(rdeps(), request())).rejects.toThrow(/still has quorum .*--force/);
    expect(asked).toBe(false);
    const after = await etcdOf(cluster.members[0]!.clientUrl).memberList();
    expect(after.clusterId).toBe(before.clusterId);
    expect(after.members.map((m) => m.id).sort()).toEqual(before.members.map((m) => m.id).sort());
    // Declining the confirmation (even when forced) changes nothing either.
    const declined = await restoreCluster(rdeps(), request({ force: true, confirm: () => Promise.resolve(false) }));
    expect(declined.result).toBe('aborted');
    expect((await etcdOf(cluster.members[0]!.clientUrl).memberList()).clusterId).toBe(before.clusterId);
  });

  it('judges quorum by the one rule: one slow member still has quorum (and the plan names the revisions a restore would discard); every member frozen is "cannot see", never "no quorum"', async () => {
    await backupCluster(deps(), 'prod', sandboxBackupSettings(b));
    await putKeysBulk(cluster.members[0]!.clientUrl, '/registry/after/', 500); // written after the snapshot
    const before = await etcdOf(cluster.members[0]!.clientUrl).memberList();
    const hosts = cluster.members.map((m) => sandbox.host(m.instanceId));
    let shown: RestorePlan | undefined;
    const watch = { confirm: (p: RestorePlan) => { shown = p; return Promise.resolve(false); } };
    try {
      // One member frozen (a slow disk, a stalled process): two of three still follow the leader.
      // (Forced and then declined, so one read shows both the plan and the refusal it would get.)
      hosts[2]!.pauseEtcd();
      const forced = await restoreCluster(rdeps(), request({ force: true, ...watch }));
      expect(forced.result).toBe('aborted');
      expect(shown).toMatchObject({ quorum: 'quorate', hasQuorum: true });
      expect(shown!.liveRevision! - shown!.snapshot.meta.revision).toBeGreaterThanOrEqual(4); // 500 keys in batches of 128: 4 revisions at least
      expect(refusal(shown!)).toMatch(/still has quorum \(2\/3 voters follow .*at least \d+ revisions \(live revision \d+, snapshot \d+\).*--force/);

      // Every member frozen: nobody answers and every etcd process still runs. Quorum Keeper cannot
      // see; that is not "no quorum", and a restore is refused. (It once read as "no quorum" here.)
      for (const h of hosts.slice(0, 2)) h.pauseEtcd();
      await expect(restoreCluster(rdeps(), request())).rejects.toThrow(/CANNOT SEE whether prod has quorum: .*--force only if you know quorum is lost/);
    } finally {
      for (const h of hosts) h.resumeEtcd();
    }
    const after = await etcdOf(cluster.members[0]!.clientUrl).memberList();
    expect(after.clusterId).toBe(before.clusterId);
    expect(await countKeys(cluster.members[0]!.clientUrl, '/registry/after/')).toBe(500);
  });

  it('two of three members dead with their data wiped → restore latest brings back every key and the revision', async () => {
    writer = new AckWriter(() => cluster.members.map((m) => m.clientUrl), { prefix: '/qk-writer/restore/' }).start();
    await new Promise((r) => setTimeout(r, 1500));
    const backup = await backupCluster(deps(), 'prod', sandboxBackupSettings(b));
    expect(backup.result).toBe('uploaded');
    const snapRev = backup.revision!;
    // Writes continue after the backup: the restore will discard them, and must say how many.
    await new Promise((r) => setTimeout(r, 1500));
    const oldClusterId = (await etcdOf(cluster.members[2]!.clientUrl).memberList()).clusterId;

    for (const m of cluster.members.slice(0, 2)) {
      const h = sandbox.host(m.instanceId);
      killHard(h.etcdPid()!);
      rmSync(join(sandbox.volumeDir(m.volumeId), 'data'), { recursive: true, force: true });
    }
    await new Promise((r) => setTimeout(r, 1000));

    // Another flow holds the cluster lock (a replacement changing membership): refused after the
    // confirmation, and nothing was stopped.
    const other = sandboxRestoreDeps(c, ctl, b).lock!;
    expect(await other.tryAcquire('prod', 'a-replacement')).toBe(true);
    await expect(restoreCluster(rdeps(), request())).rejects.toThrow(/another flow holds prod's cluster lock .*nothing was changed/);
    expect(sandbox.host(cluster.members[2]!.instanceId).etcdPid()).not.toBeNull();
    await other.release('prod', 'a-replacement');

    let shown: RestorePlan | null = null;
    const summary = await restoreCluster(rdeps(), request({ confirm: (p) => Promise.resolve(Boolean((shown = p))) }));
    expect(shown!.hasQuorum).toBe(false);
    expect(shown!.snapshot.key).toBe(backup.key);
    expect(summary.result).toBe('restored');
    expect(summary.keysAtSnapshotRevision).toBe(backup.keys);
    expect(summary.revision).toBeGreaterThanOrEqual(snapRev);
    // Revisions never go backwards for a watcher: bumped past any seen and marked compacted
    // (etcdutl 3.5.10+); etcd 3.4's etcdctl has no such flag, and the summary says 0.
    if (!/^etcd Version: 3\.4\./m.test(spawnSync('etcd', ['--version'], { encoding: 'utf8' }).stdout)) {
      expect(summary.revisionBump).toBeGreaterThanOrEqual(1_000_000_000 + (summary.discardedAfterRevision ?? 0));
      expect(summary.revision).toBeGreaterThanOrEqual(snapRev + summary.revisionBump!);
    } else {
      expect(summary.revisionBump).toBe(0);
    }
    // SSM history (ssm:ListCommands, in ReadOnlyAccess) keeps every command's parameters: the
    // download URL it shows grants the whole snapshot, so it lives a minute: the master starts the
    // download at once, and S3 checks the expiry when a request starts, not while it streams.
    const urls = [...sandbox.invocations.values()].flatMap((i) => [...i.commands.join('\n').matchAll(/'--url-b64' '([A-Za-z0-9_=-]+)'/g)].map((m) => new URL(Buffer.from(m[1]!, 'base64url').toString())));
    expect(urls).toHaveLength(3);
    for (const u of urls) expect(Number(u.searchParams.get('X-Amz-Expires'))).toBe(60);
    expect(urls.every((u) => u.searchParams.has('X-Amz-Security-Token'))).toBe(true);

    // A 3-member cluster again, a new cluster ID, every member healthy.
    const list = await etcdOf(cluster.members[0]!.clientUrl).memberList();
    expect(list.members.map((m) => m.name).sort()).toEqual(['etcd-a', 'etcd-b', 'etcd-c']);
    expect(list.members.every((m) => !m.isLearner)).toBe(true);
    expect(list.clusterId).not.toBe(oldClusterId);
    for (const m of cluster.members) expect(await countKeys(m.clientUrl, '/registry/bulk/')).toBe(3_000);

    // The survivor's newer data was set aside, not deleted; the wiped members had none.
    const survivor = summary.members.find((m) => m.member === 'etcd-c')!;
    expect(survivor.asideDir).toMatch(/\/data\.pre-restore-prod-restore-/);
    expect(existsSync(join(sandbox.volumeDir(cluster.members[2]!.volumeId), survivor.asideDir!.split('/').pop()!, 'member'))).toBe(true);
    expect(summary.members.filter((m) => m.asideDir === null).map((m) => m.member).sort()).toEqual(['etcd-a', 'etcd-b']);
    // Downloads removed from every master.
    for (const m of cluster.members) {
      const d = join(sandbox.host(m.instanceId).root, DEFAULT_WORK_DIR);
      expect(existsSync(d) ? readdirSync(d) : []).toEqual([]);
    }

    // Zero acknowledged writes lost up to the snapshot; the later ones are reported as discarded,
    // and the restore summary saw them too (revisions the set-aside data was ahead by).
    await new Promise((r) => setTimeout(r, 1000));
    await writer.stop();
    const report = await writer.verify(cluster.members.map((m) => m.clientUrl), { upToRevision: snapRev });
    console.log(`restore: ${formatReport(report)}; restore summary discardedAfterRevision=${summary.discardedAfterRevision}`);
    expect(report.acknowledgedButMissing).toBe(0);
    expect(report.discardedAfterRevision).toBeGreaterThan(0);
    expect(summary.discardedAfterRevision).toBeGreaterThanOrEqual(report.discardedAfterRevision);

    // Running the same restore again with the same token would be harmless, but a restore of a
    // healthy cluster is refused without --force.
    await expect(restoreCluster(rdeps(), request())).rejects.toThrow(/still has quorum/);
  });

  it('a restore interrupted between steps is finished by the next run with the same snapshot and token: one cluster, nothing mixed', async () => {
    const backup = await backupCluster(deps(), 'prod', sandboxBackupSettings(b));
    for (const m of cluster.members.slice(0, 2)) {
      killHard(sandbox.host(m.instanceId).etcdPid()!);
      rmSync(join(sandbox.volumeDir(m.volumeId), 'data'), { recursive: true, force: true });
    }
    // Interrupted once every member's data is the snapshot's and before etcd starts anywhere (the
    // Lambda deadline, an operator's ^C, a lost laptop).
    const interrupted = sandboxRestoreDeps(c, ctl, b, (e) => {
      if (e.step === 'start' && e.status === 'start') throw new Error('interrupted');
    });
    await expect(restoreCluster(interrupted, request())).rejects.toThrow(/interrupted/);
    const journal = await rdeps().journal!.get('prod');
    expect(journal).toMatchObject({ snapshotKey: backup.key });

    let shown: RestorePlan | undefined;
    const summary = await restoreCluster(rdeps(), request({ confirm: (p) => { shown = p; return Promise.resolve(true); } }));
    expect(shown).toMatchObject({ token: journal!.token, resuming: expect.anything() as unknown });
    expect(renderRestorePlan(shown!)).toMatch(/RESUMING: +a restore begun .* was interrupted: this run finishes it/);
    expect(summary).toMatchObject({ result: 'restored', keysAtSnapshotRevision: 3_000 });
    const ids = await Promise.all(cluster.members.map(async (m) => (await etcdOf(m.clientUrl).memberList()).clusterId));
    expect(new Set(ids).size).toBe(1);
    for (const m of cluster.members) expect(await countKeys(m.clientUrl, '/registry/bulk/')).toBe(3_000);
    expect(await rdeps().journal!.get('prod')).toBeNull();
  });

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
    writer = new AckWriter(() => cluster.members.map((m) => m.clientUrl), { prefix: '/qk-writer/restore/' }).start();
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
    writer = new AckWriter(() => cluster.members.map((m) => m.clientUrl), { prefix: '/qk-writer/restore/' }).start();
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
