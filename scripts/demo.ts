/**
 * `npm run demo`: the local sandbox scenario. Brings up moto behind the sandbox endpoint and the
 * bare infrastructure of a 3-master cluster (one ASG per AZ with its lifecycle hooks, a blank EBS
 * "volume" per member, etcd installed but not running); the three launch events run Quorum
 * Keeper's replacement flow at once and it forms the cluster (one seed, two learners promoted).
 * Then it writes data and kills a master: its ASG launches a replacement, the lifecycle
 * event runs Quorum Keeper's replacement flow (progress per step, with timings), and the
 * operator sees the final status table; a verified, encrypted backup goes to S3, and the
 * watchdog probe reports the cluster's health. Then a launch event gets lost: the reconciler
 * finds the waiting master and brings it in; its next run finds nothing to do. A continuous
 * writer runs throughout; its report (writes lost: 0) ends the demo.
 * Everything is torn down at the end.
 */
import { planReplacement, replaceMaster } from '../lib/flows/replacement';
import { findMasterSlot } from '../lib/flows/master-slot';
import { destroyClients, provisionInfrastructure, sandboxClients } from '../sandbox/cluster';
import type { LifecycleEvent } from '../sandbox/lifecycle';
import { backupCluster } from '../lib/flows/backup';
import { probeCluster } from '../lib/flows/probe';
import { writeLease } from '../sandbox/apiserver';
import {
  destroyBackups, destroyControl, provisionBackups, provisionControl, sandboxBackupDeps, sandboxBackupSettings, sandboxFlowDeps, sandboxProbeDeps, sandboxReconcileDeps,
  sandboxRoot, sandboxStatusDeps,
} from '../sandbox/control';
import { useEtcd } from '../sandbox/etcd-bin';
import { reapStrays } from '../sandbox/procs';
import { countKeys, killMaster, memberOf, putKeys } from '../sandbox/scenario';
import { reconcileCluster } from '../lib/flows/reconcile';
import { DEFAULT_RECONCILE } from '../lib/domain/reconcile';
import { Sandbox } from '../sandbox/sandbox';
import { clusterStatus } from '../lib/flows/status';
import { renderStatus } from '../cli/render/status';
import { AckWriter, formatReport } from '../sandbox/writer';

const t0 = Date.now();
const stamp = () => `[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s]`;
const say = (line: string) => console.log(`${stamp()} ${line}`);
const KEYS = 1000;
const TAGS = { cluster: 'quorum-keeper/cluster', member: 'quorum-keeper/etcd-member' };
const hookRef = (e: LifecycleEvent) => ({ asg: e.detail.AutoScalingGroupName, hook: e.detail.LifecycleHookName, token: e.detail.LifecycleActionToken, instanceId: e.detail.EC2InstanceId });

async function main(): Promise<void> {
  reapStrays({ own: false });
  const etcd = useEtcd();
  say(`etcd ${etcd.version} (${etcd.path}), mutual TLS on client and peer URLs (per-master certificates from a CA made for this run)`);
  say('starting the sandbox (moto_server + sandbox AWS endpoint)');
  const sandbox = await Sandbox.start();
  const c = sandboxClients(sandbox);
  const ctl = await provisionControl(sandbox);
  const backups = await provisionBackups(sandbox);
  try {
    say(`sandbox AWS endpoint ${sandbox.endpoint} (moto at ${sandbox.moto.url})`);
    // Day 0: bare infrastructure (three ASGs with their hooks, blank volumes, etcd installed but
    // not running); the three launch events arrive together and Quorum Keeper forms the cluster.
    const cluster = await provisionInfrastructure(sandbox, c, { name: 'demo', launch: 'through-hooks', progress: say });
    say('no etcd runs anywhere, no backup exists: the three launch events run Quorum Keeper\'s replacement flow at once');
    const launches = sandbox.asgModel.undelivered.splice(0);
    const bootT0 = Date.now();
    const formed = await Promise.all(launches.map(async (e) => {
      const slot = await findMasterSlot(c.asg, e.detail.AutoScalingGroupName, TAGS);
      if (slot.kind !== 'master') throw new Error(slot.reason);
      const m = slot.slot.member;
      let last = '';
      return replaceMaster(sandboxFlowDeps(c, ctl, (p) => {
        if (p.status === 'start' || !['bootstrap', 'membership', 'start', 'caught-up', 'complete'].includes(p.step)) return;
        const line = `  ${m} ${p.step.padEnd(10)} ${p.status.padEnd(4)} ${p.detail}`;
        if (line !== last) say((last = line)); // a wait for the cluster lock is said once, not every poll
      }, backups), { slot: slot.slot, instanceId: e.detail.EC2InstanceId, hook: hookRef(e) });
    }));
    const seed = await sandboxRoot(c, ctl).formation.get(cluster.name);
    say(`cluster formed in ${((Date.now() - bootT0) / 1000).toFixed(1)} s: seed ${seed?.seed ?? 'none'} (etcd cluster ${seed?.clusterId ?? '?'}), `
      + `${formed.filter((o) => o.membership === 'replace').length} joined as learners and were promoted; hooks: ${cluster.members.map((m) => `${m.name} ${sandbox.lifecycle.results(m.instanceId).join(',')}`).join(', ')}`);
    say(`etcd client URLs: ${cluster.members.map((m) => `${m.name} ${m.clientUrl}`).join(', ')}`);
    say(`writing ${KEYS} keys through the etcd API`);
    await putKeys(cluster.members[0]!.clientUrl, '/registry/demo/', KEYS);
    console.log(`\n${renderStatus(await clusterStatus(sandboxStatusDeps(c, ctl), cluster.name))}\n`);

    say('starting a continuous writer (50 writes/s through whichever member answers)');
    const writer = new AckWriter(() => [...sandbox.hosts.values()].map((h) => h.clientUrl), { prefix: '/qk-demo-writer/' }).start();
    const victim = memberOf(cluster, 'etcd-a');
    say(`killing the master of ${victim.name} (${victim.instanceId}): etcd dies, the instance is terminated`);
    const { instanceId, event } = await killMaster(sandbox, c, victim);
    say(`ASG ${victim.asg} launched ${instanceId}; lifecycle hook ${event.detail.LifecycleHookName} is waiting`);
    const found = await findMasterSlot(c.asg, victim.asg, TAGS);
    if (found.kind !== 'master') throw new Error(found.reason);
    const hook = { asg: event.detail.AutoScalingGroupName, hook: event.detail.LifecycleHookName, token: event.detail.LifecycleActionToken, instanceId };
    say('dry run (what the flow would do, nothing changed):');
    for (const p of await planReplacement(sandboxFlowDeps(c, ctl), { slot: found.slot, instanceId, hook })) say(`  ${p.step.padEnd(11)} ${p.action}`);
    say('running the replacement flow:');
    const flowStart = Date.now();
    const out = await replaceMaster(sandboxFlowDeps(c, ctl, (e) => {
      if (e.status === 'start') return;
      say(`  ${e.step.padEnd(11)} ${e.status.padEnd(4)} ${e.ms !== undefined ? `${String(e.ms).padStart(5)} ms  ` : ''}${e.detail}`);
    }), { slot: found.slot, instanceId, hook });
    say(`replacement ${out.result}${out.reason ? `: ${out.reason}` : ''} in ${((Date.now() - flowStart) / 1000).toFixed(1)} s; lifecycle action: ${sandbox.lifecycle.results(instanceId).join(', ') || 'none'}`);

    const host = sandbox.host(instanceId);
    Object.assign(victim, { instanceId, peerUrl: host.peerUrl, clientUrl: host.clientUrl });
    const status = await clusterStatus(sandboxStatusDeps(c, ctl), cluster.name);
    console.log(`\n${renderStatus(status)}\n`);
    const rows = status.members;
    const keys = await countKeys(host.clientUrl, '/registry/demo/');
    const leaders = rows.filter((r) => r.etcd === 'leader').length;
    const healthy = rows.filter((r) => r.lb === 'healthy').length;
    say(`${rows.length} members, ${leaders} leader, ${healthy}/${rows.length} healthy in the load balancer; ${keys}/${KEYS} keys readable on the new master`);

    say('taking a backup (snapshot on a follower, trial restore, zstd, SHA-256, SSE-KMS upload from the master):');
    const backup = await backupCluster(sandboxBackupDeps(c, ctl, backups, (e) => {
      if (e.status !== 'start') say(`  ${e.step.padEnd(11)} ${e.status.padEnd(4)} ${e.detail}`);
    }), cluster.name, sandboxBackupSettings(backups));
    say(backup.result === 'uploaded'
      ? `backup uploaded: s3://${backups.store.bucket}/${backup.key} (revision ${backup.revision}, ${backup.keys} keys, ${backup.size} bytes) in ${(backup.ms.total / 1000).toFixed(1)} s`
      : `backup FAILED: ${backup.failure?.message}`);

    // kube-controller-manager and kube-scheduler renew their leader-election Leases (in etcd).
    for (const [component, holder] of [['kube-controller-manager', 'master-b_1'], ['kube-scheduler', 'master-c_1']] as const) {
      await writeLease(host.clientUrl, component, { holderIdentity: holder, leaseDurationSeconds: 15, renewTime: new Date() });
    }
    const probe = await probeCluster(sandboxProbeDeps(c, ctl), cluster.name, { components: ['kube-controller-manager', 'kube-scheduler'], quotaBytes: 2 * 1024 ** 3 });
    const h = probe.health;
    say(`watchdog probe (one SSM command on ${probe.via?.member ?? 'no master'}): ${h.problems.length ? h.problems.map((p) => p.summary).join('; ') : 'healthy'} — leader ${h.leaderName ?? 'none'}, ${h.healthyVoters}/${h.voters} healthy, quorum margin ${h.quorumMargin}, `
      + `${h.leases.map((l) => `${l.component} held by ${l.holder ?? 'nobody'} (${l.staleSec ?? '?'} s ago)`).join(', ')}`);

    const lost = memberOf(cluster, 'etcd-b');
    say(`killing the master of ${lost.name} (${lost.instanceId}) — and this time its launch event is LOST`);
    const redriven = await killMaster(sandbox, c, lost);
    say(`${redriven.instanceId} waits in Pending:Wait; nobody will tell Quorum Keeper. The reconciler's next run (grace shortened to 0 s for the demo):`);
    const settings = { ...DEFAULT_RECONCILE, pendingGraceSec: 0 };
    const rec = await reconcileCluster(sandboxReconcileDeps(c, ctl, backups, (e) => {
      if (e.status !== 'start') say(`  ${e.step.padEnd(19)} ${e.status.padEnd(4)} ${e.detail}`);
    }), cluster.name, settings);
    say(rec.summary);
    const calm = await reconcileCluster(sandboxReconcileDeps(c, ctl, backups), cluster.name, settings);
    say(`and the run after it: ${calm.summary}`);
    const report = await writer.verify();
    say(formatReport(report));
    const failed = formed.some((o) => o.result !== 'continued') || out.result !== 'continued' || leaders !== 1 || healthy !== rows.length || keys !== KEYS || backup.result !== 'uploaded' || h.problems.length > 0;
    if (failed || report.acknowledgedButMissing !== 0 || rec.steps.some((x) => x.result !== 'done') || calm.drift !== 0) process.exitCode = 1;
  } finally {
    say('tearing the sandbox down');
    destroyBackups(backups);
    destroyControl(ctl);
    destroyClients(c);
    await sandbox.stop();
  }
  say('done');
}

main().catch((err: unknown) => {
  console.error(`demo failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exitCode = 1;
});
