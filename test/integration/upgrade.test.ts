/**
 * Rolling minor upgrade (issue 20): a cluster on etcd 3.4 whose masters are replaced one by one by
 * masters whose AMI carries etcd 3.5 — an instance refresh per master ASG after the launch
 * template moved to the new AMI: each old master retires through its terminate hook, the ASG
 * launches the new one, the replacement brings it in with its volume. The continuous writer runs
 * throughout. And the replacements that must be refused: a downgrade, a skipped minor version.
 * Both etcds are real (Debian bookworm's 3.4.23 and trixie's 3.5.16), over mutual TLS.
 */
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findMasterSlot, type MasterSlot } from '../../lib/flows/master-slot';
import { replaceMaster } from '../../lib/flows/replacement';
import { retireMaster } from '../../lib/flows/retirement';
import { clusterStatus } from '../../lib/flows/status';
import { statusDeps } from '../../lib/compose';
import type { LifecycleEvent } from '../../sandbox/lifecycle';
import { receivedAlerts, sandboxFlowDeps, sandboxRoot } from '../../sandbox/control';
import { etcdBinDirs } from '../../sandbox/etcd-bin';
import { harnessEtcd } from '../../sandbox/etcd-http';
import { waitFor } from '../../sandbox/ports';
import { makeTempDir } from '../../sandbox/procs';
import { countKeys, killMaster, memberOf } from '../../sandbox/scenario';
import type { SandboxMember } from '../../sandbox/cluster';
import { freshClusterPerTest, type ScenarioWorld } from '../support/scenario-suite';

jest.setTimeout(300_000);

const bins = etcdBinDirs();
const TERMINATING = 'autoscaling:EC2_INSTANCE_TERMINATING';
const LAUNCHING = 'autoscaling:EC2_INSTANCE_LAUNCHING';

const slotIn = async (t: ScenarioWorld, asg: string): Promise<MasterSlot> => {
  const s = await findMasterSlot(t.c.asg, asg, { cluster: 'quorum-keeper/cluster', member: 'quorum-keeper/etcd-member' });
  if (s.kind !== 'master') throw new Error(s.reason);
  return s.slot;
};

describe('rolling minor upgrade: 3.4 masters replaced one by one by 3.5 masters', () => {
  const t = freshClusterPerTest({ keys: 300, prepare: (sandbox) => { sandbox.etcdBinDir = bins['3.4']; } });

  const slotOf = (asg: string) => slotIn(t, asg);
  const hookOf = (e: LifecycleEvent) => ({ asg: e.detail.AutoScalingGroupName, hook: e.detail.LifecycleHookName, token: e.detail.LifecycleActionToken, instanceId: e.detail.EC2InstanceId });
  const status = () => clusterStatus(statusDeps(sandboxRoot(t.c, t.ctl)), 'prod');
  const eventFor = (transition: string, pred: (e: LifecycleEvent) => boolean) => waitFor(`a ${transition} event`, () =>
    Promise.resolve(t.sandbox.asgModel.undelivered.find((e) => e.detail.LifecycleTransition === transition && pred(e))), { timeoutMs: 60_000, intervalMs: 100 });

  /** An instance refresh of the member's ASG, driven as the deployed functions would: retire, then replace. */
  async function refresh(m: SandboxMember): Promise<{ instanceId: string; result: string; membership?: string }> {
    t.sandbox.asgModel.undelivered.length = 0;
    await t.sandbox.asgModel.startRefresh(m.asg);
    const slot = await slotOf(m.asg);
    const term = await eventFor(TERMINATING, (e) => e.detail.EC2InstanceId === m.instanceId);
    const retired = await retireMaster(sandboxFlowDeps(t.c, t.ctl), { slot, instanceId: m.instanceId, hook: hookOf(term) }, { waitSec: 60 });
    expect(retired.result).toBe('continued');
    const launch = await eventFor(LAUNCHING, (e) => e.detail.EC2InstanceId !== m.instanceId);
    const instanceId = launch.detail.EC2InstanceId;
    const out = await replaceMaster(sandboxFlowDeps(t.c, t.ctl), { slot, instanceId, hook: hookOf(launch) });
    const host = t.sandbox.host(instanceId);
    Object.assign(m, { instanceId, peerUrl: host.peerUrl, clientUrl: host.clientUrl });
    return { instanceId, result: out.result, ...(out.membership ? { membership: out.membership } : {}) };
  }

  it('each 3.5 master joins the 3.4 cluster with its data; the cluster version moves to 3.5 only after the last; 0 acknowledged writes lost', async () => {
    const before = await status();
    expect(before.etcd.clusterVersion).toBe('3.4.0');
    expect(before.members.map((m) => m.version)).toEqual(['3.4.23', '3.4.23', '3.4.23']);
    const ids = new Map((await harnessEtcd(t.cluster.members.map((m) => m.clientUrl)).memberList()).members.map((m) => [m.name, m.id]));
    const w = t.writer.start('rolling upgrade 3.4 → 3.5');
    // The new AMI: every master launched from now on carries etcd 3.5.
    t.sandbox.etcdBinDir = bins['3.5'];
    const seen: string[] = [];
    for (const [i, name] of ['etcd-a', 'etcd-b', 'etcd-c'].entries()) {
      const m = memberOf(t.cluster, name);
      const out = await refresh(m);
      expect(out).toMatchObject({ result: 'continued', membership: 'update' });
      expect(t.sandbox.lifecycle.results(out.instanceId)).toEqual(['CONTINUE']);
      const list = (await harnessEtcd([m.clientUrl]).memberList()).members;
      expect(list.find((x) => x.name === name)).toMatchObject({ id: ids.get(name), peerUrls: [m.peerUrl], isLearner: false });
      expect(await countKeys(m.clientUrl, '/registry/test/')).toBe(300);
      const st = await waitFor(`the cluster version after ${name}`, async () => {
        const s = await status();
        const want = i < 2 ? '3.4.0' : '3.5.0'; // etcd's leader moves it once every member runs 3.5
        return s.etcd.clusterVersion === want && s.members.every((x) => x.version !== null) ? s : undefined;
      }, { timeoutMs: 30_000, intervalMs: 1000 });
      expect(st.members.map((x) => x.version)).toEqual(['3.5.16', '3.4.23', '3.4.23'].map((v, j) => (j <= i ? '3.5.16' : v)));
      seen.push(`${name} → ${st.etcd.clusterVersion}`);
    }
    expect(await receivedAlerts(t.ctl)).toEqual([]);
    await t.writer.check(w, 'rolling upgrade 3.4 → 3.5 (three instance refreshes)');
    console.log(`rolling upgrade: cluster version after each master: ${seen.join(', ')}`);
  });
});

describe('a replacement that would change etcd the wrong way is refused', () => {
  const t = freshClusterPerTest({ keys: 100, prepare: (sandbox) => { sandbox.etcdBinDir = bins['3.5']; } });

  const slotOf = (asg: string) => slotIn(t, asg);

  it.each([
    ['a downgrade: a 3.4 master into a cluster at 3.5', () => bins['3.4'], /runs etcd 3\.4\.23, older than the cluster's version 3\.5: a downgrade/],
    ['a skipped minor version: a 3.7 master into a cluster at 3.5', () => fakeEtcd('3.7.0'), /runs etcd 3\.7\.0, more than one minor version above the cluster's 3\.5/],
  ])('%s: ABANDON before etcd starts, membership untouched, one critical alert naming both versions', async (_label, binDir, why) => {
    const a = memberOf(t.cluster, 'etcd-a');
    const before = (await harnessEtcd(t.cluster.members.map((m) => m.clientUrl)).memberList()).members;
    t.sandbox.etcdBinDir = binDir();
    const { instanceId, event } = await killMaster(t.sandbox, t.c, a);
    const out = await replaceMaster(sandboxFlowDeps(t.c, t.ctl), {
      slot: await slotOf(a.asg), instanceId, hook: { asg: event.detail.AutoScalingGroupName, hook: event.detail.LifecycleHookName, token: event.detail.LifecycleActionToken, instanceId },
    });
    expect(out).toMatchObject({ result: 'abandoned', step: 'version' });
    expect(out.reason).toMatch(why);
    expect(t.sandbox.lifecycle.results(instanceId)).toEqual(['ABANDON']);
    expect(t.sandbox.host(instanceId).etcdPid()).toBeNull();
    const others = t.cluster.members.filter((m) => m !== a).map((m) => m.clientUrl);
    expect((await harnessEtcd(others).memberList()).members).toEqual(before);
    const alerts = await receivedAlerts(t.ctl);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatch(/Severity: critical/);
    expect(alerts[0]).toMatch(why);
    expect(alerts[0]).toMatch(/launch template at an AMI whose etcd is 3\.5\.x \(or 3\.6\.x to upgrade one minor version/);
  });
});

/** A stand-in etcd that only says its version (a release this machine has no package of); etcdctl is the real 3.5. */
function fakeEtcd(version: string): string {
  const dir = join(makeTempDir('fake-etcd'), 'bin');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'etcd'), `#!/bin/sh\n[ "$1" = --version ] && { echo 'etcd Version: ${version}'; exit 0; }\necho 'fake etcd ${version}: not runnable' >&2\nexit 1\n`);
  chmodSync(join(dir, 'etcd'), 0o755);
  for (const tool of ['etcdctl', 'etcdutl']) symlinkSync(join(bins['3.5'], tool), join(dir, tool));
  return dir; // in this process's temp dir: removed with it (sandbox/procs.ts reapStrays)
}
