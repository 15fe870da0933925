/**
 * Fault matrix, first slice (issue 8): AWS API faults on every call site of the replacement
 * flow, injected by the sandbox (sandbox.apiFaults) under the real SDK clients — throttling
 * and 5xx before a call is carried out, and 5xx AFTER a mutating call was carried out (the
 * answer is lost, so the SDK's retry repeats it); S3 failing the master's snapshot upload; a
 * volume stuck attaching. Each case asserts the real outcome: the
 * master is back with its own member ID and data, its volume attached once, no force detach,
 * one CONTINUE, no alert, and no acknowledged write lost. A summary table is printed.
 */
import { ModifyTargetGroupAttributesCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { findMasterSlot } from '../../lib/flows/master-slot';
import { replaceMaster } from '../../lib/flows/replacement';
import { retireMaster } from '../../lib/flows/retirement';
import { listBackups } from '../../lib/aws/backups';
import { backupCluster } from '../../lib/flows/backup';
import { receivedAlerts, sandboxBackupDeps, sandboxBackupSettings, sandboxFlowDeps } from '../../sandbox/control';
import type { ApiFault, SsmFault } from '../../sandbox/sandbox';
import { countKeys, killMaster, memberOf, TERMINATE_HOOK } from '../../sandbox/scenario';
import { freshClusterPerTest } from '../support/scenario-suite';
import { harnessEtcd } from '../../sandbox/etcd-http';

jest.setTimeout(180_000);

/** Every mutating call the replacement makes. */
const MUTATING = /^(ec2:AttachVolume|ec2:DetachVolume|ssm:SendCommand|dynamodb:PutItem|dynamodb:DeleteItem|elasticloadbalancing:RegisterTargets|autoscaling:CompleteLifecycleAction|autoscaling:RecordLifecycleActionHeartbeat)$/;

const CASES: Array<{ name: string; fault: ApiFault }> = [
  { name: 'throttled once, every call', fault: { match: /.*/, kind: 'throttle', when: 'before', times: 1 } },
  { name: '5xx once, every call', fault: { match: /.*/, kind: 'server-error', when: 'before', times: 1 } },
  { name: '5xx after the change, every mutating call', fault: { match: MUTATING, kind: 'server-error', when: 'after', times: 1 } },
];

const SSM_CASES: Array<{ name: string; fault: SsmFault }> = [
  { name: 'SSM: mount never delivered (TimedOut)', fault: { match: /etcd-mount\.sh/, outcome: 'undeliverable', times: 1 } },
  { name: 'SSM: start ran, its answer lost (TimedOut)', fault: { match: /etcd-member\.sh start/, outcome: 'lost-answer', times: 1 } },
  { name: 'SSM: member update applied on the peer, its answer lost (TimedOut)', fault: { match: /etcdctl member update/, outcome: 'lost-answer', times: 1 } },
];

describe('fault matrix: AWS API and SSM faults during a replacement', () => {
  const t = freshClusterPerTest({ keys: 300, backups: true });
  const summary: string[] = [];
  afterAll(() => {
    if (summary.length) console.log(`fault matrix:\n| case | faults injected (operations) | outcome |\n|---|---|---|\n${summary.join('\n')}`);
  });

  /** Replaces etcd-a with `inject` armed; asserts the master is back exactly as without faults. */
  async function replacedDespite(name: string, inject: () => void, injected: () => string[]): Promise<string[]> {
    const a = memberOf(t.cluster, 'etcd-a');
    const id = (await harnessEtcd(t.cluster.members.map((m) => m.clientUrl)).memberList()).members.find((m) => m.name === 'etcd-a')!.id;
    const w = t.writer.start(name.replace(/\W+/g, '-'));
    const { instanceId, event } = await killMaster(t.sandbox, t.c, a);
    const found = await findMasterSlot(t.c.asg, a.asg, { cluster: 'quorum-keeper/cluster', member: 'quorum-keeper/etcd-member' });
    if (found.kind !== 'master') throw new Error(found.reason);
    inject();
    const out = await replaceMaster(sandboxFlowDeps(t.c, t.ctl), {
      slot: found.slot, instanceId, hook: { asg: a.asg, hook: event.detail.LifecycleHookName, token: event.detail.LifecycleActionToken, instanceId },
    });
    t.sandbox.apiFaults.length = 0;
    t.sandbox.ssmFaults.length = 0;
    const faults = injected();
    const ops = [...new Set(faults)];
    summary.push(`| ${name} | ${faults.length} (${ops.length} operation${ops.length === 1 ? '' : 's'}: ${ops.join(', ')}) | ${out.result}${out.reason ? `: ${out.reason}` : ''} |`);

    expect(out).toEqual({ result: 'continued', membership: 'update' });
    const members = (await harnessEtcd([t.sandbox.host(instanceId).clientUrl]).memberList()).members;
    expect(members).toHaveLength(3);
    expect(members.find((m) => m.name === 'etcd-a')).toMatchObject({ id, peerUrls: [t.sandbox.host(instanceId).peerUrl], isLearner: false });
    expect(await countKeys(t.sandbox.host(instanceId).clientUrl, '/registry/test/')).toBe(300);
    expect((await t.sandbox.describeVolume(a.volumeId))?.Attachments).toEqual([expect.objectContaining({ InstanceId: instanceId, State: 'attached' })]);
    expect(t.sandbox.detachCalls.filter((d) => d.force)).toEqual([]);
    expect(t.sandbox.lifecycle.results(instanceId)).toEqual(['CONTINUE']);
    expect(await receivedAlerts(t.ctl)).toEqual([]);
    await t.writer.check(w, name);
    return ops;
  }

  it.each(CASES)('$name: the master comes back, no duplicate side effect, no alert', async ({ name, fault }) => {
    const ops = await replacedDespite(name, () => t.sandbox.apiFaults.push(fault), () => t.sandbox.injected.map((i) => i.key));
    expect(ops.length).toBeGreaterThanOrEqual(fault.match.source === '.*' ? 10 : 5);
  });

  it.each(SSM_CASES)('$name: retried once (the step is idempotent), the master comes back, no alert', async ({ name, fault }) => {
    const ops = await replacedDespite(name, () => t.sandbox.ssmFaults.push({ ...fault }), () => t.sandbox.ssmInjected.map((i) => `${i.comment} → ${i.outcome}`));
    expect(ops).toHaveLength(1);
  });

  it('SSM: the retirement\'s etcd stop ran but its answer was lost: retried once, the master retires cleanly, no alert', async () => {
    const a = memberOf(t.cluster, 'etcd-a');
    const term = t.sandbox.lifecycle.begin({ asg: a.asg, hook: TERMINATE_HOOK, instanceId: a.instanceId, transition: 'autoscaling:EC2_INSTANCE_TERMINATING' });
    const found = await findMasterSlot(t.c.asg, a.asg, { cluster: 'quorum-keeper/cluster', member: 'quorum-keeper/etcd-member' });
    if (found.kind !== 'master') throw new Error(found.reason);
    t.sandbox.ssmFaults.push({ match: /etcd-member\.sh stop/, outcome: 'lost-answer', times: 1 });
    const out = await retireMaster(sandboxFlowDeps(t.c, t.ctl), {
      slot: found.slot, instanceId: a.instanceId, hook: { asg: a.asg, hook: term.detail.LifecycleHookName, token: term.detail.LifecycleActionToken, instanceId: a.instanceId },
    });
    summary.push(`| SSM: retirement's \`etcd-member.sh stop\` answer lost (TimedOut) | ${t.sandbox.ssmInjected.length} | ${out.result}${out.reason ? `: ${out.reason}` : ''} |`);
    expect(t.sandbox.ssmInjected.map((i) => i.outcome)).toEqual(['lost-answer']);
    expect(out.result).toBe('continued');
    expect(t.sandbox.host(a.instanceId).etcdPid()).toBeNull();
    expect((await t.sandbox.describeVolume(a.volumeId))?.State).toBe('available');
    expect(t.sandbox.lifecycle.results(a.instanceId)).toEqual(['CONTINUE']);
    expect(await receivedAlerts(t.ctl)).toEqual([]);
    expect((await harnessEtcd(t.cluster.members.map((m) => m.clientUrl)).memberList()).members).toHaveLength(3);
  });

  it('SSM Failed on start: ABANDON with an alert naming the step; the next instance the ASG launches converges', async () => {
    const a = memberOf(t.cluster, 'etcd-a');
    const etcd = harnessEtcd(t.cluster.members.map((m) => m.clientUrl));
    const id = (await etcd.memberList()).members.find((m) => m.name === 'etcd-a')!.id;
    const w = t.writer.start('ssm-failed');
    const first = await killMaster(t.sandbox, t.c, a);
    const found = await findMasterSlot(t.c.asg, a.asg, { cluster: 'quorum-keeper/cluster', member: 'quorum-keeper/etcd-member' });
    if (found.kind !== 'master') throw new Error(found.reason);
    const hookOf = (x: typeof first) => ({ asg: a.asg, hook: x.event.detail.LifecycleHookName, token: x.event.detail.LifecycleActionToken, instanceId: x.instanceId });
    t.sandbox.ssmFaults.push({ match: /etcd-member\.sh start/, outcome: 'failed', times: 1 });
    const out = await replaceMaster(sandboxFlowDeps(t.c, t.ctl), { slot: found.slot, instanceId: first.instanceId, hook: hookOf(first) });
    expect(out).toMatchObject({ result: 'abandoned', step: 'start' });
    expect(t.sandbox.lifecycle.results(first.instanceId)).toEqual(['ABANDON']);
    const alerts = await receivedAlerts(t.ctl);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatch(/failed at start[\s\S]*Read the command output in SSM Run Command history/);
    // ABANDON: the ASG terminates the instance and launches another, which comes in whole.
    const second = await killMaster(t.sandbox, t.c, { ...a, instanceId: first.instanceId });
    const again = await replaceMaster(sandboxFlowDeps(t.c, t.ctl), { slot: found.slot, instanceId: second.instanceId, hook: hookOf(second) });
    summary.push(`| SSM Failed on \`etcd-member.sh start\` | 1 (start → failed) | ${out.result} at ${out.step}, one alert; next instance: ${again.result} (${again.membership}) |`);
    expect(again).toEqual({ result: 'continued', membership: 'update' });
    expect((await etcd.memberList()).members.find((m) => m.name === 'etcd-a')).toMatchObject({ id, peerUrls: [t.sandbox.host(second.instanceId).peerUrl], isLearner: false });
    expect(await countKeys(t.sandbox.host(second.instanceId).clientUrl, '/registry/test/')).toBe(300);
    expect(t.sandbox.detachCalls.filter((d) => d.force)).toEqual([]);
    expect(t.sandbox.lifecycle.results(second.instanceId)).toEqual(['CONTINUE']);
    await t.writer.check(w, 'SSM Failed on start');
  });

  it('S3 answers the master\'s upload with 503 twice: the backup still lands, once, verified', async () => {
    t.sandbox.apiFaults.push({ match: /^s3:PUT$/, kind: 'server-error', when: 'before', times: 2 });
    const out = await backupCluster(sandboxBackupDeps(t.c, t.ctl, t.backups), 'prod', sandboxBackupSettings(t.backups));
    t.sandbox.apiFaults.length = 0;
    summary.push(`| S3 5xx on the snapshot upload (twice) | ${t.sandbox.injected.length} (s3:PUT) | ${out.result}${out.failure ? `: ${out.failure.message}` : ''} |`);
    expect(t.sandbox.injected.map((i) => i.key)).toEqual(['s3:PUT', 's3:PUT']);
    expect(out.result).toBe('uploaded');
    expect(await listBackups(t.backups.s3, t.backups.store, 'prod')).toHaveLength(1);
    expect(await receivedAlerts(t.ctl)).toEqual([]);
  });

  it('draining takes the whole deregistration delay (20 s, longer than the flow\'s own target timeout): the retirement waits it out, then moves leadership and stops etcd cleanly', async () => {
    await t.c.elb.send(new ModifyTargetGroupAttributesCommand({ TargetGroupArn: t.cluster.targetGroupArn, Attributes: [{ Key: 'deregistration_delay.timeout_seconds', Value: '20' }] }));
    const etcd = harnessEtcd(t.cluster.members.map((m) => m.clientUrl));
    const leaderUrl = (await etcd.endpointStatus({ cluster: true })).statuses.find((x) => x.isLeader)!.endpoint;
    const leader = t.cluster.members.find((m) => m.clientUrl === leaderUrl)!;
    const w = t.writer.start('long-drain');
    const term = t.sandbox.lifecycle.begin({ asg: leader.asg, hook: TERMINATE_HOOK, instanceId: leader.instanceId, transition: 'autoscaling:EC2_INSTANCE_TERMINATING' });
    const found = await findMasterSlot(t.c.asg, leader.asg, { cluster: 'quorum-keeper/cluster', member: 'quorum-keeper/etcd-member' });
    if (found.kind !== 'master') throw new Error(found.reason);
    const deps = sandboxFlowDeps(t.c, t.ctl);
    const t0 = Date.now();
    const out = await retireMaster({ ...deps, timings: { ...deps.timings, targetTimeoutSec: 10 } }, {
      slot: found.slot, instanceId: leader.instanceId, hook: { asg: leader.asg, hook: term.detail.LifecycleHookName, token: term.detail.LifecycleActionToken, instanceId: leader.instanceId },
    });
    summary.push(`| drain for the whole deregistration delay (20 s) | ELBv2 drains while watches stay open | ${out.result} after ${Math.round((Date.now() - t0) / 1000)} s, leadership → ${out.movedLeaderTo ?? 'none'} |`);
    expect(out).toMatchObject({ result: 'continued', movedLeaderTo: expect.any(String) as unknown });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(19_000);
    expect(t.sandbox.lifecycle.results(leader.instanceId)).toEqual(['CONTINUE']);
    expect(t.sandbox.host(leader.instanceId).etcdPid()).toBeNull();
    expect((await t.sandbox.describeVolume(leader.volumeId))?.State).toBe('available');
    expect(await receivedAlerts(t.ctl)).toEqual([]);
    await t.writer.check(w, 'long drain');
  });

  it('the device link appears 4.5 s after the attachment reads attached (udev): the mount waits; same member, all data, one CONTINUE, no alert', async () => {
    const a = memberOf(t.cluster, 'etcd-a');
    const w = t.writer.start('late-device');
    const { instanceId, event } = await killMaster(t.sandbox, t.c, a);
    const found = await findMasterSlot(t.c.asg, a.asg, { cluster: 'quorum-keeper/cluster', member: 'quorum-keeper/etcd-member' });
    if (found.kind !== 'master') throw new Error(found.reason);
    t.sandbox.deviceDelayMs = () => 4500;
    const out = await replaceMaster(sandboxFlowDeps(t.c, t.ctl), {
      slot: found.slot, instanceId, hook: { asg: a.asg, hook: event.detail.LifecycleHookName, token: event.detail.LifecycleActionToken, instanceId },
    });
    summary.push(`| device link late (4.5 s) | udev makes /dev/disk/by-id after \`attached\` | ${out.result}${out.membership ? ` (${out.membership})` : ''} |`);
    expect(out).toEqual({ result: 'continued', membership: 'update' });
    expect(t.sandbox.lifecycle.results(instanceId)).toEqual(['CONTINUE']);
    expect(await countKeys(t.sandbox.host(instanceId).clientUrl, '/registry/test/')).toBe(300);
    expect(await receivedAlerts(t.ctl)).toEqual([]);
    await t.writer.check(w, 'device link late');
  });

  it('a volume stuck attaching: ABANDON with an alert that says so; nothing formatted, membership unchanged, no force detach', async () => {
    const a = memberOf(t.cluster, 'etcd-a');
    const etcd = harnessEtcd(t.cluster.members.map((m) => m.clientUrl));
    const before = (await etcd.memberList()).members;
    const w = t.writer.start('stuck-attaching');
    const { instanceId, event } = await killMaster(t.sandbox, t.c, a);
    const found = await findMasterSlot(t.c.asg, a.asg, { cluster: 'quorum-keeper/cluster', member: 'quorum-keeper/etcd-member' });
    if (found.kind !== 'master') throw new Error(found.reason);
    t.sandbox.stuckAttaching.add(a.volumeId);
    const deps = sandboxFlowDeps(t.c, t.ctl);
    const out = await replaceMaster({ ...deps, timings: { ...deps.timings, volumeTimeoutSec: 5 } }, {
      slot: found.slot, instanceId, hook: { asg: a.asg, hook: event.detail.LifecycleHookName, token: event.detail.LifecycleActionToken, instanceId },
    });
    summary.push(`| volume stuck attaching | EC2 keeps the attachment \`attaching\` | ${out.result} at ${out.step}: ${out.reason} |`);
    expect(out).toMatchObject({ result: 'abandoned', step: 'attach', reason: expect.stringMatching(/stuck attaching/) as unknown });
    expect(t.sandbox.lifecycle.results(instanceId)).toEqual(['ABANDON']);
    const alerts = await receivedAlerts(t.ctl);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatch(/stuck attaching.*[\s\S]*What to do: The ASG launches another instance/);
    expect((await etcd.memberList()).members.map((m) => [m.id, m.peerUrls])).toEqual(before.map((m) => [m.id, m.peerUrls]));
    expect(readFileSync(join(t.sandbox.volumeDir(a.volumeId), '.quorum-keeper-volume'), 'utf8')).toMatch(/^cluster=prod\nmember=etcd-a\n/);
    expect(t.sandbox.detachCalls.filter((d) => d.force)).toEqual([]);
    await t.writer.check(w, 'volume stuck attaching');
  });
});
