/**
 * Disaster recovery end to end in the sandbox: a real backup in S3 (moto), two of three
 * members killed with their data wiped, `restoreCluster` brings back a 3-member cluster with
 * every key and the snapshot's revision — with the continuous writer checking that every
 * write acknowledged up to the snapshot's revision survived.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { backupCluster } from '../../lib/flows/backup';
import { DEFAULT_WORK_DIR } from '../../lib/flows/backup';
import { refusal, RestoreRefused, restoreCluster, type RestorePlan } from '../../lib/flows/restore';
import { renderRestorePlan } from '../../cli/render/restore';
import type { SandboxClients, SandboxCluster } from '../../sandbox/cluster';
import { type BackupTarget, type Control, sandboxBackupSettings, sandboxRestoreDeps } from '../../sandbox/control';
import { killHard } from '../../sandbox/procs';
import { countKeys, putKeysBulk } from '../../sandbox/scenario';
import type { Sandbox } from '../../sandbox/sandbox';
import { AckWriter, formatReport } from '../../sandbox/writer';
import { harnessEtcd } from '../../sandbox/etcd-http';
import { useDrSandbox } from '../support/dr-sandbox';

jest.setTimeout(240_000);

describe('disaster-recovery restore', () => {
  const t = useDrSandbox();
  let sandbox: Sandbox;
  let c: SandboxClients;
  let ctl: Control;
  let b: BackupTarget;
  let cluster: SandboxCluster;
  const { deps, rdeps } = t;
  beforeEach(() => {
    ({ sandbox, c, ctl, b, cluster } = t);
  });
  const etcdOf = (clientUrl: string) => harnessEtcd([clientUrl]);
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
    const writer = (t.writer = new AckWriter(() => cluster.members.map((m) => m.clientUrl), { prefix: '/qk-writer/restore/' }).start());
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
});
