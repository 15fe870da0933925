/**
 * Master replacement end to end in the sandbox: real etcd, real SDK clients, the project's
 * host scripts over SSM. Each test kills a master the way AWS would and runs the flow.
 */
import { DeleteTagsCommand } from '@aws-sdk/client-ec2';
import { DescribeTargetHealthCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import { rmSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { findMasterSlot, type MasterSlot } from '../../lib/flows/master-slot';
import { planReplacement, replaceMaster, replacementSteps } from '../../lib/flows/replacement';
import { stepNames } from '../../lib/flows/steps';
import { retireMaster } from '../../lib/flows/retirement';
import { statusDeps } from '../../lib/compose';
import { clusterStatus } from '../../lib/flows/status';
import { receivedAlerts, sandboxFlowDeps, sandboxRoot } from '../../sandbox/control';
import { countKeys, killMaster, launchAlongside, memberOf, TERMINATE_HOOK } from '../../sandbox/scenario';
import { AWS_LATENCY, SANDBOX_LATENCY } from '../../sandbox/latency';
import { freshClusterPerTest } from '../support/scenario-suite';
import { harnessEtcd, localMemberList } from '../../sandbox/etcd-http';

jest.setTimeout(180_000);

describe('master replacement (launch hook)', () => {
  const steps: string[] = [];
  const t = freshClusterPerTest({ keys: 500, beforeEach: () => { steps.length = 0; } });

  const deps = () => sandboxFlowDeps(t.c, t.ctl, (e) => {
    if (e.status !== 'start') steps.push(`${e.step}:${e.status}`);
    if (process.env.QK_TRACE) console.log(e);
  });
  const slotOf = async (asg: string): Promise<MasterSlot> => {
    const s = await findMasterSlot(t.c.asg, asg, { cluster: 'quorum-keeper/cluster', member: 'quorum-keeper/etcd-member' });
    if (s.kind !== 'master') throw new Error(s.reason);
    return s.slot;
  };
  const hookOf = (event: Awaited<ReturnType<typeof killMaster>>['event']) => ({
    asg: event.detail.AutoScalingGroupName, hook: event.detail.LifecycleHookName, token: event.detail.LifecycleActionToken, instanceId: event.detail.EC2InstanceId,
  });
  const members = async () => {
    // Any live member answers; etcdctl's balancer skips the dead endpoints.
    return (await harnessEtcd(t.cluster.members.map((m) => m.clientUrl)).memberList()).members;
  };
  const targetHealth = async (instanceId: string) => {
    const out = await t.c.elb.send(new DescribeTargetHealthCommand({ TargetGroupArn: t.cluster.targetGroupArn }));
    return out.TargetHealthDescriptions?.find((d) => d.Target?.Id === instanceId)?.TargetHealth?.State;
  };

  it('(a) brings the dead master back with its own volume, member ID and data', async () => {
    const a = memberOf(t.cluster, 'etcd-a');
    const before = (await members()).find((m) => m.name === 'etcd-a')!;
    const w = t.writer.start('a');
    const { instanceId, event } = await killMaster(t.sandbox, t.c, a);
    const t0 = Date.now();
    const out = await replaceMaster(deps(), { slot: await slotOf(a.asg), instanceId, hook: hookOf(event) });
    const elapsed = Date.now() - t0;
    expect(out).toEqual({ result: 'continued', membership: 'update' });
    const after = await members();
    expect(after).toHaveLength(3);
    const newHost = t.sandbox.host(instanceId);
    expect(after.find((m) => m.name === 'etcd-a')).toMatchObject({ id: before.id, peerUrls: [newHost.peerUrl], isLearner: false });
    expect(await countKeys(newHost.clientUrl, '/registry/test/')).toBe(500);
    expect((await t.sandbox.describeVolume(a.volumeId))?.Attachments?.[0]).toMatchObject({ InstanceId: instanceId, State: 'attached' });
    expect(await targetHealth(instanceId)).toBe('healthy');
    expect(t.sandbox.lifecycle.results(instanceId)).toEqual(['CONTINUE']);
    expect(await receivedAlerts(t.ctl)).toEqual([]);
    console.log(`(a) replacement end to end: ${elapsed} ms; steps ${steps.join(' ')}`);
    await t.writer.check(w, 'a');
  });

  it('(a2) under AWS-like latency (shortened): unknown to SSM while booting, the attachment attaching, the target initial — each waited out, same member and data, one CONTINUE', async () => {
    const a = memberOf(t.cluster, 'etcd-a');
    const before = (await members()).find((m) => m.name === 'etcd-a')!;
    const w = t.writer.start('a2');
    const { instanceId, event } = await killMaster(t.sandbox, t.c, a);
    // AWS's profile with the long waits cut (agent 6 s, attaching 2 s, registration 3 s, checks 10 s × 3 × 0.1).
    t.sandbox.useLatency({ ...AWS_LATENCY, agentOnlineMs: 6000, attachMs: 2000, registrationMs: 3000, healthCheckScale: 0.1 });
    try {
      await t.sandbox.bootHost(instanceId); // booting from the launch on
      // A target timeout (2 s) shorter than registration + the group's checks (6 s): the wait follows the group.
      const d = deps();
      const out = await replaceMaster({ ...d, timings: { ...d.timings, targetTimeoutSec: 2 } }, { slot: await slotOf(a.asg), instanceId, hook: hookOf(event) });
      expect(out).toEqual({ result: 'continued', membership: 'update' });
    } finally {
      t.sandbox.useLatency(SANDBOX_LATENCY);
    }
    const newHost = t.sandbox.host(instanceId);
    expect((await members()).find((m) => m.name === 'etcd-a')).toMatchObject({ id: before.id, peerUrls: [newHost.peerUrl], isLearner: false });
    expect(await countKeys(newHost.clientUrl, '/registry/test/')).toBe(500);
    expect(await targetHealth(instanceId)).toBe('healthy');
    expect(t.sandbox.lifecycle.results(instanceId)).toEqual(['CONTINUE']);
    expect(await receivedAlerts(t.ctl)).toEqual([]);
    await t.writer.check(w, 'a2');
  });

  it('(b) re-adds a member whose volume came back blank: remove + learner + promote, no stale member', async () => {
    const a = memberOf(t.cluster, 'etcd-a');
    const before = (await members()).find((m) => m.name === 'etcd-a')!;
    const w = t.writer.start('b');
    const { instanceId, event } = await killMaster(t.sandbox, t.c, a);
    // The volume lost its contents (e.g. restored from an empty snapshot by someone).
    const vol = t.sandbox.volumeDir(a.volumeId);
    for (const e of readdirSync(vol)) rmSync(join(vol, e), { recursive: true, force: true });
    const out = await replaceMaster(deps(), { slot: await slotOf(a.asg), instanceId, hook: hookOf(event) });
    expect(out).toEqual({ result: 'continued', membership: 'replace' });
    const after = await members();
    expect(after).toHaveLength(3);
    expect(after.every((m) => m.started && !m.isLearner)).toBe(true);
    const again = after.find((m) => m.name === 'etcd-a')!;
    expect(again.id).not.toBe(before.id);
    expect(again.peerUrls).toEqual([t.sandbox.host(instanceId).peerUrl]);
    expect(await countKeys(t.sandbox.host(instanceId).clientUrl, '/registry/test/')).toBe(500);
    expect(t.sandbox.lifecycle.results(instanceId)).toEqual(['CONTINUE']);
    await t.writer.check(w, 'b');
  });

  it('(t.c) handles the same launch event delivered twice at once: one membership change; the second finds the master InService and touches nothing', async () => {
    const a = memberOf(t.cluster, 'etcd-a');
    const w = t.writer.start('c');
    const { instanceId, event } = await killMaster(t.sandbox, t.c, a);
    const slot = await slotOf(a.asg);
    const [x, y] = await Promise.all([
      replaceMaster(deps(), { slot, instanceId, hook: hookOf(event) }),
      replaceMaster(deps(), { slot, instanceId, hook: hookOf(event) }),
    ]);
    // The second waited for the slot lock; by then the hook was completed and the instance InService.
    console.log(`(t.c) ${JSON.stringify([x, y])}`);
    expect([x.result, y.result].sort()).toEqual(['continued', 'ignored']);
    expect([x, y].find((o) => o.result === 'continued')?.membership).toBe('update');
    expect([x, y].find((o) => o.result === 'ignored')?.reason).toMatch(/is InService in .*, not Pending:Wait/);
    expect(await members()).toHaveLength(3);
    // One CONTINUE accepted; the second completion found the action already completed.
    expect(t.sandbox.lifecycle.results(instanceId)).toEqual(['CONTINUE']);
    await t.writer.check(w, 'c');
  });

  // (e) runs without the writer: with two of three members dead nothing can be read back.
  it('(e) two of three masters dead: no membership change; the master comes in awaiting DR (volume mounted, etcd stopped, CONTINUE), one critical alert', async () => {
    const [a, b] = [memberOf(t.cluster, 'etcd-a'), memberOf(t.cluster, 'etcd-b')];
    t.sandbox.host(b.instanceId).crash();
    const { instanceId, event } = await killMaster(t.sandbox, t.c, a);
    const membersBefore = (await localMemberList(memberOf(t.cluster, 'etcd-c').clientUrl)).members; // no quorum: etcd-c's own view
    const out = await replaceMaster(deps(), { slot: await slotOf(a.asg), instanceId, hook: hookOf(event) });
    expect(out.result).toBe('awaiting-dr');
    console.log(`(e) awaiting DR after ${out.step}: ${out.reason}`);
    expect(out.step === 'peer' || out.step === 'membership').toBe(true);
    // ABANDON would only relaunch forever; CONTINUE lets the slot come InService for a restore.
    expect(t.sandbox.lifecycle.results(instanceId)).toEqual(['CONTINUE']);
    expect((await t.sandbox.describeVolume(a.volumeId))?.Attachments?.[0]).toMatchObject({ InstanceId: instanceId, State: 'attached' });
    expect(t.sandbox.host(instanceId).etcdPid()).toBeNull();
    const membersAfter = (await localMemberList(memberOf(t.cluster, 'etcd-c').clientUrl)).members; // no quorum: etcd-c's own view
    expect(membersAfter).toEqual(membersBefore);
    const alerts = await receivedAlerts(t.ctl);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatch(/Severity: critical/);
    expect(alerts[0]).toMatch(/cluster prod, member etcd-a/);
    expect(alerts[0]).toMatch(/awaiting disaster recovery: volume mounted with its data, etcd left stopped/);
    expect(alerts[0]).toMatch(/What to do: .*bring them back.*Restore only if/);
    // status names the slot awaiting DR (from the state table).
    const st = await clusterStatus(statusDeps(sandboxRoot(t.c, t.ctl)), 'prod');
    expect(st.members.find((m) => m.member === 'etcd-a')?.awaitingDr).toMatchObject({ instanceId, hasData: true });
    expect(st.problems).toContainEqual(`etcd-a: awaiting disaster recovery on ${instanceId} since ${st.members.find((m) => m.member === 'etcd-a')!.awaitingDr!.since} (volume with its data, etcd stopped)`);
    // The same event again finds the master InService: nothing done, no second alert.
    expect(await replaceMaster(deps(), { slot: await slotOf(a.asg), instanceId, hook: hookOf(event) })).toMatchObject({ result: 'ignored' });
    expect(await receivedAlerts(t.ctl)).toHaveLength(0);
  });

  it('(f) retiring the leader: drained, leadership moved before etcd stops, volume detached; the replacement needs no force', async () => {
    const status = await harnessEtcd(t.cluster.members.map((m) => m.clientUrl)).endpointStatus({ cluster: true });
    const leaderUrl = status.statuses.find((s) => s.isLeader)!.endpoint;
    const leader = t.cluster.members.find((m) => m.clientUrl === leaderUrl)!;
    const w = t.writer.start('f');
    const term = t.sandbox.lifecycle.begin({ asg: leader.asg, hook: TERMINATE_HOOK, instanceId: leader.instanceId, transition: 'autoscaling:EC2_INSTANCE_TERMINATING' });
    const out = await retireMaster(deps(), { slot: await slotOf(leader.asg), instanceId: leader.instanceId, hook: hookOf(term) });
    expect(out.result).toBe('continued');
    expect(out.movedLeaderTo).toBeDefined();
    expect(steps.indexOf('deregister:ok')).toBeLessThan(steps.indexOf('move-leader:ok'));
    expect(steps.indexOf('move-leader:ok')).toBeLessThan(steps.indexOf('stop:ok'));
    expect(t.sandbox.lifecycle.results(leader.instanceId)).toEqual(['CONTINUE']);
    expect(await targetHealth(leader.instanceId)).not.toBe('healthy');
    expect((await t.sandbox.describeVolume(leader.volumeId))?.State).toBe('available');
    const others = t.cluster.members.filter((m) => m !== leader);
    const after = await harnessEtcd(others.map((m) => m.clientUrl)).endpointStatus({ cluster: false });
    expect(after.statuses.every((s) => s.leader === out.movedLeaderTo)).toBe(true);
    expect(await members()).toHaveLength(3);

    steps.length = 0;
    const { instanceId, event } = await killMaster(t.sandbox, t.c, leader);
    const rep = await replaceMaster(deps(), { slot: await slotOf(leader.asg), instanceId, hook: hookOf(event) });
    expect(rep).toEqual({ result: 'continued', membership: 'update' });
    expect(steps).toContain('predecessor:skip');
    expect(await countKeys(t.sandbox.host(instanceId).clientUrl, '/registry/test/')).toBe(500);
    await t.writer.check(w, 'f');
  });

  it('(f2) holds a retirement that would lose quorum, with one alert, and changes nothing', async () => {
    const [a, b] = [memberOf(t.cluster, 'etcd-a'), memberOf(t.cluster, 'etcd-b')];
    const w = t.writer.start('f2');
    t.sandbox.host(b.instanceId).crash();
    const term = t.sandbox.lifecycle.begin({ asg: a.asg, hook: TERMINATE_HOOK, instanceId: a.instanceId, transition: 'autoscaling:EC2_INSTANCE_TERMINATING' });
    const out = await retireMaster(deps(), { slot: await slotOf(a.asg), instanceId: a.instanceId, hook: hookOf(term) });
    expect(out.result).toBe('held');
    expect(t.sandbox.lifecycle.results(a.instanceId)).toEqual([]);
    expect(t.sandbox.host(a.instanceId).etcdPid()).not.toBeNull();
    const alerts = await receivedAlerts(t.ctl);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatch(/would lose etcd quorum/);
    await t.writer.check(w, 'f2');
  });

  it('(f3) holds a retirement right after the LEADER died (no leader yet is not "safe")', async () => {
    const status = await harnessEtcd(t.cluster.members.map((m) => m.clientUrl)).endpointStatus({ cluster: true });
    const leader = t.cluster.members.find((m) => m.clientUrl === status.statuses.find((x) => x.isLeader)!.endpoint)!;
    const retiring = t.cluster.members.find((m) => m !== leader)!;
    const w = t.writer.start('f3');
    t.sandbox.host(leader.instanceId).crash();
    const term = t.sandbox.lifecycle.begin({ asg: retiring.asg, hook: TERMINATE_HOOK, instanceId: retiring.instanceId, transition: 'autoscaling:EC2_INSTANCE_TERMINATING' });
    const out = await retireMaster(deps(), { slot: await slotOf(retiring.asg), instanceId: retiring.instanceId, hook: hookOf(term) });
    expect(out.result).toBe('held');
    expect(t.sandbox.host(retiring.instanceId).etcdPid()).not.toBeNull();
    expect(t.sandbox.lifecycle.results(retiring.instanceId)).toEqual([]);
    await t.writer.check(w, 'f3');
  });

  it('(d1) waits for a predecessor in Terminating:Wait to release the volume cleanly, then proceeds without force', async () => {
    const a = memberOf(t.cluster, 'etcd-a');
    const w = t.writer.start('d1');
    const term = t.sandbox.lifecycle.begin({ asg: a.asg, hook: TERMINATE_HOOK, instanceId: a.instanceId, transition: 'autoscaling:EC2_INSTANCE_TERMINATING' });
    const { instanceId, event } = await launchAlongside(t.sandbox, t.c, a);
    const slot = await slotOf(a.asg);
    // The replacement starts first and finds the volume still attached to a terminating master.
    const replacing = replaceMaster(deps(), { slot, instanceId, hook: hookOf(event) });
    await new Promise((r) => setTimeout(r, 1500));
    const retired = await retireMaster(deps(), { slot, instanceId: a.instanceId, hook: hookOf(term) });
    const replaced = await replacing;
    expect(retired.result).toBe('continued');
    expect(replaced).toEqual({ result: 'continued', membership: 'update' });
    expect(steps).toContain('predecessor:wait');
    expect(t.sandbox.detachCalls).toEqual([{ volumeId: a.volumeId, instanceId: a.instanceId, force: false }]);
    expect(await countKeys(t.sandbox.host(instanceId).clientUrl, '/registry/test/')).toBe(500);
    expect((await members()).find((m) => m.name === 'etcd-a')?.peerUrls).toEqual([t.sandbox.host(instanceId).peerUrl]);
    await t.writer.check(w, 'd1');
  });

  it('(d2) never detaches from a running, in-service predecessor: ABANDON and one alert, also on retry', async () => {
    const a = memberOf(t.cluster, 'etcd-a');
    const slot = await slotOf(a.asg);
    const w = t.writer.start('d2');
    for (let attempt = 0; attempt < 2; attempt++) {
      const { instanceId, event } = await launchAlongside(t.sandbox, t.c, a);
      const out = await replaceMaster(deps(), { slot, instanceId, hook: hookOf(event) });
      expect(out).toMatchObject({ result: 'abandoned', step: 'predecessor' });
      expect(t.sandbox.lifecycle.results(instanceId)).toEqual(['ABANDON']);
    }
    expect(t.sandbox.detachCalls).toEqual([]);
    expect((await t.sandbox.describeVolume(a.volumeId))?.Attachments?.[0]).toMatchObject({ InstanceId: a.instanceId, State: 'attached' });
    expect(t.sandbox.host(a.instanceId).etcdPid()).not.toBeNull();
    const alerts = await receivedAlerts(t.ctl);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatch(new RegExp(`still attached to ${a.instanceId}, which is running \\(InService\\)`));
    await t.writer.check(w, 'd2');
  });

  it('(g) a run stopped after any mutating step, then run again, converges: same member, all data, one CONTINUE', async () => {
    const a = memberOf(t.cluster, 'etcd-a');
    const id = (await members()).find((m) => m.name === 'etcd-a')!.id;
    const slot = await slotOf(a.asg);
    const w = t.writer.start('g');
    let victim = a;
    for (const stopAfter of ['attach', 'mount', 'membership', 'start', 'caught-up', 'register']) {
      const { instanceId, event } = await killMaster(t.sandbox, t.c, victim);
      const abort = new AbortController();
      const stopped = replaceMaster({ ...sandboxFlowDeps(t.c, t.ctl, (e) => {
        if (e.step === stopAfter && e.status === 'ok') abort.abort(new Error(`stopped after ${stopAfter}`));
      }), signal: abort.signal }, { slot, instanceId, hook: hookOf(event) });
      await expect(stopped).rejects.toThrow(`stopped after ${stopAfter}`);
      expect(t.sandbox.lifecycle.results(instanceId)).toEqual([]);
      const out = await replaceMaster(deps(), { slot, instanceId, hook: hookOf(event) });
      expect({ stopAfter, result: out.result }).toEqual({ stopAfter, result: 'continued' });
      const now = await members();
      expect(now).toHaveLength(3);
      expect(now.find((m) => m.name === 'etcd-a')).toMatchObject({ id, peerUrls: [t.sandbox.host(instanceId).peerUrl], isLearner: false });
      expect(await countKeys(t.sandbox.host(instanceId).clientUrl, '/registry/test/')).toBe(500);
      expect(t.sandbox.lifecycle.results(instanceId)).toEqual(['CONTINUE']);
      victim = { ...a, instanceId };
    }
    expect(t.sandbox.detachCalls.filter((d) => d.force)).toEqual([]);
    expect(await receivedAlerts(t.ctl)).toEqual([]);
    await t.writer.check(w, 'g');
  });

  it('(h) a master launched without the cluster tag (no PropagateAtLaunch): ABANDON at once with one alert naming the tag; nothing attached, no command run', async () => {
    const a = memberOf(t.cluster, 'etcd-a');
    const { instanceId, event } = await killMaster(t.sandbox, t.c, a);
    await t.c.ec2.send(new DeleteTagsCommand({ Resources: [instanceId], Tags: [{ Key: 'quorum-keeper/cluster' }] }));
    const commands = t.sandbox.invocations.size;
    const out = await replaceMaster(deps(), { slot: await slotOf(a.asg), instanceId, hook: hookOf(event) });
    expect(out).toMatchObject({ result: 'abandoned', step: 'instance', reason: expect.stringMatching(/does not carry the tag quorum-keeper\/cluster=prod/) as unknown });
    expect(t.sandbox.lifecycle.results(instanceId)).toEqual(['ABANDON']);
    expect(t.sandbox.invocations.size).toBe(commands);
    expect((await t.sandbox.describeVolume(a.volumeId))?.Attachments ?? []).toEqual([]);
    const alerts = await receivedAlerts(t.ctl);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatch(/PropagateAtLaunch/);
  });

  it('dry run: prints each step it would take and why, and mutates nothing', async () => {
    const a = memberOf(t.cluster, 'etcd-a');
    const { instanceId, event } = await killMaster(t.sandbox, t.c, a);
    const before = { members: await members(), volume: await t.sandbox.describeVolume(a.volumeId), detach: t.sandbox.detachCalls.length };
    const plan = await planReplacement(deps(), { slot: await slotOf(a.asg), instanceId, hook: hookOf(event) });
    // The dry run walks the flow's own step list: every step but the predecessor (the volume is free).
    expect(plan.map((p) => p.step)).toEqual(stepNames(replacementSteps).filter((s) => s !== 'predecessor'));
    expect(plan.map((p) => p.step)).toEqual(['instance', 'volume', 'attach', 'agent', 'peer', 'urls', 'mount', 'bootstrap', 'version', 'membership', 'start', 'apiserver', 'caught-up', 'register', 'complete']);
    expect(plan.find((p) => p.step === 'version')!.action).toMatch(/^etcd 3\.\d+\.\d+ in a cluster at 3\.\d+$/);
    expect(plan.find((p) => p.step === 'membership')!.action).toMatch(new RegExp(`if the volume has data: member update ${before.members.find((m) => m.name === 'etcd-a')!.id} → ${t.sandbox.host(instanceId).peerUrl}`));
    expect(await members()).toEqual(before.members);
    expect((await t.sandbox.describeVolume(a.volumeId))?.Attachments).toEqual(before.volume?.Attachments);
    expect(t.sandbox.detachCalls).toHaveLength(before.detach);
    expect(t.sandbox.lifecycle.calls.filter((x) => x.instanceId === instanceId)).toEqual([]);
    expect(t.sandbox.host(instanceId).etcdPid()).toBeNull();
  });
});

