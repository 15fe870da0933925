/**
 * Bootstrap from nothing (issue 21): three master ASGs created together, each launching its
 * master through its launch hook onto a blank volume, no backup, no etcd running anywhere.
 * Quorum Keeper's replacement flow, run for the three launch events at once, forms the cluster:
 * exactly one master seeds (the DynamoDB fence), the other two join as learners and are
 * promoted; every hook is CONTINUEd once; a second run of every flow changes nothing. And the
 * refusals: no seed when a backup of the cluster exists, or when a volume holds etcd data.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { DEFAULT_RECONCILE } from '../../lib/domain/reconcile';
import { findMasterSlot, type MasterSlot } from '../../lib/flows/master-slot';
import { reconcileCluster } from '../../lib/flows/reconcile';
import { replaceMaster, type ReplacementOutcome } from '../../lib/flows/replacement';
import { targetHealth } from '../../lib/aws/lb';
import { destroyClients, provisionInfrastructure, type SandboxClients, sandboxClients, type SandboxCluster } from '../../sandbox/cluster';
import {
  type BackupTarget, type Control, destroyBackups, destroyControl, provisionBackups, provisionControl, receivedAlerts, sandboxFlowDeps, sandboxReconcileDeps, sandboxRoot,
} from '../../sandbox/control';
import { harnessEtcd, localMemberList } from '../../sandbox/etcd-http';
import type { LifecycleEvent } from '../../sandbox/lifecycle';
import { countKeys, putKeys } from '../../sandbox/scenario';
import { waitFor } from '../../sandbox/ports';
import { Sandbox } from '../../sandbox/sandbox';
import { sandboxCli } from '../support/cli';
import type { DoctorReport } from '../../lib/flows/doctor';
import { writerKit } from '../support/writers';

jest.setTimeout(240_000);

const TAGS = { cluster: 'quorum-keeper/cluster', member: 'quorum-keeper/etcd-member' };

describe('bootstrap from nothing', () => {
  let sandbox: Sandbox;
  let c: SandboxClients;
  let ctl: Control;
  let backups: BackupTarget;
  const writer = writerKit(() => sandbox);

  beforeAll(async () => {
    sandbox = await Sandbox.start();
    c = sandboxClients(sandbox);
  });
  afterAll(async () => {
    writer.report();
    destroyClients(c);
    await sandbox.stop();
  });
  beforeEach(async () => {
    await sandbox.reset();
    ctl = await provisionControl(sandbox);
    backups = await provisionBackups(sandbox);
  });
  afterEach(async () => {
    await writer.stopAll();
    destroyControl(ctl);
    destroyBackups(backups);
  });

  const slotOf = async (asg: string): Promise<MasterSlot> => {
    const s = await findMasterSlot(c.asg, asg, TAGS);
    if (s.kind !== 'master') throw new Error(s.reason);
    return s.slot;
  };
  const hookOf = (e: LifecycleEvent) => ({ asg: e.detail.AutoScalingGroupName, hook: e.detail.LifecycleHookName, token: e.detail.LifecycleActionToken, instanceId: e.detail.EC2InstanceId });
  const flowDeps = () => sandboxFlowDeps(c, ctl, undefined, backups);
  const formation = () => sandboxRoot(c, ctl).formation.get('prod');

  const cli = sandboxCli(() => sandbox, () => ['--bucket', backups.store.bucket, '--state-table', ctl.table]);
  async function doctor(): Promise<DoctorReport> {
    const { code, out } = await cli(['doctor', '--cluster', 'prod', '--json']);
    expect(code).toBe(0);
    return JSON.parse(out) as DoctorReport;
  }

  /** The three ASGs launch together; the three launch events run the replacement flow at once, as three Lambda invocations would. */
  async function launchAll(): Promise<{ cluster: SandboxCluster; outcomes: ReplacementOutcome[] }> {
    const cluster = await provisionInfrastructure(sandbox, c, { name: 'prod', launch: 'through-hooks' });
    const events = sandbox.asgModel.undelivered.splice(0);
    expect(events).toHaveLength(3);
    const outcomes = await Promise.all(events.map(async (e) => replaceMaster(flowDeps(), { slot: await slotOf(e.detail.AutoScalingGroupName), instanceId: e.detail.EC2InstanceId, hook: hookOf(e) })));
    return { cluster, outcomes };
  }

  it('three masters launched at once: one seed, 3/3 voters, every hook CONTINUEd once; a second run of every flow changes nothing', async () => {
    const { cluster, outcomes } = await launchAll();
    expect(outcomes.map((o) => o.result)).toEqual(['continued', 'continued', 'continued']);
    // Exactly one seed, fenced: the record names it, with the cluster's ID.
    const list = await harnessEtcd(cluster.members.map((m) => m.clientUrl)).memberList();
    const rec = await formation();
    expect(rec).toMatchObject({ state: 'formed', how: 'bootstrap', clusterId: list.clusterId });
    expect(cluster.members.map((m) => m.name)).toContain(rec!.seed);
    expect(outcomes.filter((o) => o.membership === 'replace')).toHaveLength(2);
    // 3/3 voters, no learner, each at its master's peer URL, named after its slot.
    expect(list.members.filter((m) => !m.isLearner)).toHaveLength(3);
    for (const m of cluster.members) expect(list.members.find((x) => x.peerUrls.includes(m.peerUrl))?.name).toBe(m.name);
    // Every hook CONTINUEd exactly once; every master healthy in the target group.
    for (const m of cluster.members) expect(sandbox.lifecycle.results(m.instanceId)).toEqual(['CONTINUE']);
    const health = await targetHealth(c.elb, TAGS.cluster, 'prod');
    expect(cluster.members.map((m) => health?.get(m.instanceId))).toEqual(['healthy', 'healthy', 'healthy']);
    // Each volume's marker records its member ID; the state table maps each slot to it.
    const ids = await sandboxRoot(c, ctl).memberIds.get('prod', cluster.members.map((m) => m.name));
    for (const m of cluster.members) {
      const id = list.members.find((x) => x.peerUrls.includes(m.peerUrl))!.id;
      expect(ids[m.name]).toBe(id);
      expect(readFileSync(join(sandbox.volumeDir(m.volumeId), '.quorum-keeper-volume'), 'utf8')).toContain(`memberId=${id}\n`);
    }
    // doctor, as the operator guide's "Start a new cluster" ends: nothing fails, nothing warns.
    const report = await doctor();
    expect(report.checks.filter((x) => x.status === 'fail' || x.status === 'warn').map((x) => `${x.id}@${x.member ?? ''}: ${x.detail}`)).toEqual([]);
    // Data written now survives a second run of every flow, which changes nothing: no membership
    // change, no etcd restart, no hook call, no reconciler action.
    const w = writer.start('bootstrap');
    await putKeys(cluster.members[0]!.clientUrl, '/registry/test/', 200);
    const pids = cluster.members.map((m) => sandbox.host(m.instanceId).etcdPid());
    const again = await Promise.all(cluster.members.map(async (m) => replaceMaster(flowDeps(), { slot: await slotOf(m.asg), instanceId: m.instanceId, hook: null })));
    expect(again.map((o) => [o.result, o.membership])).toEqual(cluster.members.map(() => ['continued', 'in-place']));
    const rec2 = await reconcileCluster(sandboxReconcileDeps(c, ctl), 'prod', DEFAULT_RECONCILE);
    expect(rec2.plan.actions).toEqual([]);
    expect(cluster.members.map((m) => sandbox.host(m.instanceId).etcdPid())).toEqual(pids);
    expect((await harnessEtcd(cluster.members.map((m) => m.clientUrl)).memberList()).members.map((m) => m.id).sort()).toEqual(list.members.map((m) => m.id).sort());
    for (const m of cluster.members) expect(sandbox.lifecycle.results(m.instanceId)).toEqual(['CONTINUE']);
    expect(await formation()).toEqual(rec);
    expect(await countKeys(cluster.members[2]!.clientUrl, '/registry/test/')).toBe(200);
    await writer.check(w, 'bootstrap, then every flow again');
  });

  it('a master that comes late: the others wait, then come in awaiting; the late one seeds and the reconciler brings them in', async () => {
    const cluster = await provisionInfrastructure(sandbox, c, { name: 'prod', launch: 'through-hooks' });
    const events = sandbox.asgModel.undelivered.splice(0);
    const late = events.find((e) => e.detail.AutoScalingGroupName === cluster.members[2]!.asg)!;
    // A short wait (600 s on AWS) so the test does not sit it out.
    const impatient = () => { const d = flowDeps(); return { ...d, timings: { ...d.timings, bootstrapTimeoutSec: 6 } }; };
    const early = await Promise.all(events.filter((e) => e !== late).map(async (e) => replaceMaster(impatient(), { slot: await slotOf(e.detail.AutoScalingGroupName), instanceId: e.detail.EC2InstanceId, hook: hookOf(e) })));
    expect(early.map((o) => o.result)).toEqual(['awaiting-dr', 'awaiting-dr']);
    expect(await formation()).toBeNull();
    const waited = (await receivedAlerts(ctl)).filter((a) => a.includes('answered within'));
    expect(waited).toHaveLength(1);
    expect(waited[0]).toMatch(/waiting for (etcd-b, )?etcd-c to mount/);
    // The late master finds every other slot reported blank: it seeds.
    const out = await replaceMaster(flowDeps(), { slot: await slotOf(late.detail.AutoScalingGroupName), instanceId: late.detail.EC2InstanceId, hook: hookOf(late) });
    expect(out.result).toBe('continued');
    expect(await formation()).toMatchObject({ state: 'formed', seed: 'etcd-c' });
    // The reconciler repairs the two InService masters that wait: they join as learners, promoted.
    const rec = await reconcileCluster(sandboxReconcileDeps(c, ctl), 'prod', { ...DEFAULT_RECONCILE, repairGraceSec: 0 });
    expect(rec.steps.map((x) => `${x.result}: ${x.detail}`)).toEqual([expect.stringMatching(/^done: etcd-[ab] on i-\w+ repaired \(replace\)$/), expect.stringMatching(/^done: etcd-[ab] on i-\w+ repaired \(replace\)$/)]);
    const list = await harnessEtcd(cluster.members.map((m) => m.clientUrl)).memberList();
    expect(list.members.filter((m) => !m.isLearner)).toHaveLength(3);
    for (const m of cluster.members) expect(sandbox.lifecycle.results(m.instanceId)).toEqual(['CONTINUE']);
  });

  it('a seed ABANDONed after the cluster formed (its API server never came up): its next instance starts it again on its data, and the others join', async () => {
    const cluster = await provisionInfrastructure(sandbox, c, { name: 'prod', launch: 'through-hooks' });
    // No master's kube-apiserver answers: every launch hook would time out at /readyz.
    const readyz = (id: string, url: string) => {
      const f = join(sandbox.host(id).root, 'etc/quorum-keeper/host.env');
      writeFileSync(f, readFileSync(f, 'utf8').replace(/^QK_APISERVER_READYZ=.*$/m, `QK_APISERVER_READYZ=${url}`));
    };
    for (const m of cluster.members) readyz(m.instanceId, 'http://127.0.0.1:9/readyz');
    const short = () => { const d = flowDeps(); return { ...d, timings: { ...d.timings, targetTimeoutSec: 3, bootstrapTimeoutSec: 15 } }; };
    const events = sandbox.asgModel.undelivered.splice(0);
    const first = await Promise.all(events.map(async (e) => replaceMaster(short(), { slot: await slotOf(e.detail.AutoScalingGroupName), instanceId: e.detail.EC2InstanceId, hook: hookOf(e) })));
    // The seed formed the cluster, then its hook was ABANDONed at the API server; the others
    // waited for it to come InService, in vain, and came in awaiting.
    expect(first.map((o) => `${o.result}${o.step ? `@${o.step}` : ''}`).sort()).toEqual(['abandoned@apiserver', 'awaiting-dr@bootstrap', 'awaiting-dr@bootstrap']);
    const rec = await formation();
    expect(rec).toMatchObject({ state: 'formed', how: 'bootstrap' });
    const seed = cluster.members.find((m) => m.name === rec!.seed)!;
    const seedId = (await sandboxRoot(c, ctl).memberIds.get('prod', [seed.name]))[seed.name];
    expect(seedId).toMatch(/^[0-9a-f]+$/);
    // The ASG launches the seed's slot again; this master's API server is fine.
    const again = await waitFor('the seed slot\'s next launch', () => Promise.resolve(sandbox.asgModel.undelivered.find((e) => e.detail.AutoScalingGroupName === seed.asg)));
    const out = await replaceMaster(flowDeps(), { slot: await slotOf(seed.asg), instanceId: again.detail.EC2InstanceId, hook: hookOf(again) });
    expect(out.result).toBe('continued');
    const host = sandbox.host(again.detail.EC2InstanceId);
    const alone = await harnessEtcd([host.clientUrl]).memberList();
    expect(alone.members).toEqual([expect.objectContaining({ id: seedId, name: seed.name, peerUrls: [host.peerUrl] })]);
    expect(alone.clusterId).toBe(rec!.clusterId);
    // The reconciler brings the two waiting masters in.
    for (const m of cluster.members) if (m !== seed) readyz(m.instanceId, sandbox.host(m.instanceId).apiserver.readyzUrl);
    const rc = await reconcileCluster(sandboxReconcileDeps(c, ctl), 'prod', { ...DEFAULT_RECONCILE, repairGraceSec: 0 });
    expect(rc.steps.map((x) => x.result)).toEqual(['done', 'done']);
    const list = await harnessEtcd([host.clientUrl]).memberList();
    expect(list.members.filter((m) => !m.isLearner).map((m) => m.id)).toHaveLength(3);
    expect(list.members.map((m) => m.id)).toContain(seedId);
  });

  it('refuses to seed when a backup of the cluster exists: every master awaits DR, nothing started, one alert naming restore', async () => {
    await backups.s3.send(new PutObjectCommand({ Bucket: backups.store.bucket, Key: `${backups.store.prefix}/prod/etcd-a/20261201T000000Z.db.zst`, Body: 'an old backup' }));
    const { cluster, outcomes } = await launchAll();
    expect(outcomes.map((o) => o.result)).toEqual(['awaiting-dr', 'awaiting-dr', 'awaiting-dr']);
    expect(await formation()).toBeNull();
    for (const m of cluster.members) {
      expect(sandbox.host(m.instanceId).etcdPid()).toBeNull();
      expect(sandbox.lifecycle.results(m.instanceId)).toEqual(['CONTINUE']);
    }
    const alerts = (await receivedAlerts(ctl)).filter((a) => a.includes('not seeding'));
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatch(/backups of this cluster exist/);
    expect(alerts[0]).toMatch(/quorum-keeper restore --cluster prod/);
  });

  it('refuses to seed when a volume holds etcd data (a cluster that existed): nobody seeds, the data is untouched', async () => {
    const cluster = await provisionInfrastructure(sandbox, c, { name: 'prod', launch: 'through-hooks' });
    // etcd-b's volume was restored from an EBS snapshot of an earlier master of this cluster.
    const b = cluster.members[1]!;
    const vol = sandbox.volumeDir(b.volumeId);
    mkdirSync(join(vol, 'data/member/snap'), { recursive: true });
    mkdirSync(join(vol, 'data/member/wal'), { recursive: true });
    writeFileSync(join(vol, '.qk-fs'), 'ext4\n');
    writeFileSync(join(vol, 'data/member/snap/db'), 'an etcd database');
    writeFileSync(join(vol, 'data/member/wal/0000000000000000-0000000000000000.wal'), 'its write-ahead log');
    writeFileSync(join(vol, '.quorum-keeper-volume'), `cluster=prod\nmember=${b.name}\nvolume=${b.volumeId}\nmemberId=8e9e05c52164694d\n`);
    const events = sandbox.asgModel.undelivered.splice(0);
    const outcomes = await Promise.all(events.map(async (e) => replaceMaster(flowDeps(), { slot: await slotOf(e.detail.AutoScalingGroupName), instanceId: e.detail.EC2InstanceId, hook: hookOf(e) })));
    expect(outcomes.map((o) => o.result)).toEqual(['awaiting-dr', 'awaiting-dr', 'awaiting-dr']);
    expect(await formation()).toBeNull();
    for (const m of cluster.members) expect(sandbox.host(m.instanceId).etcdPid()).toBeNull();
    expect(readFileSync(join(vol, 'data/member/snap/db'), 'utf8')).toBe('an etcd database');
    const alerts = (await receivedAlerts(ctl)).filter((a) => a.includes('not seeding'));
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toContain(`${b.name} (${b.volumeId})`);
    await expect(localMemberList(cluster.members[0]!.clientUrl)).rejects.toThrow();
  });
});
