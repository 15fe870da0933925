/**
 * Fault matrix, first slice (issue 8): AWS API faults on every call site of the replacement
 * flow, injected by the sandbox (sandbox.apiFaults) under the real SDK clients — throttling
 * and 5xx before a call is carried out, and 5xx AFTER a mutating call was carried out (the
 * answer is lost, so the SDK's retry repeats it). Each case asserts the real outcome: the
 * master is back with its own member ID and data, its volume attached once, no force detach,
 * one CONTINUE, no alert, and no acknowledged write lost. A summary table is printed.
 */
import { findMasterSlot } from '../../lib/flows/master-slot';
import { replaceMaster } from '../../lib/flows/replacement';
import { EtcdClient, localEtcdRunner } from '../../lib/etcd';
import { receivedAlerts, sandboxFlowDeps } from '../../sandbox/control';
import type { ApiFault } from '../../sandbox/sandbox';
import { countKeys, killMaster, memberOf } from '../../sandbox/scenario';
import { freshClusterPerTest } from '../support/scenario-suite';

jest.setTimeout(180_000);

/** Every mutating call the replacement makes. */
const MUTATING = /^(ec2:AttachVolume|ec2:DetachVolume|ssm:SendCommand|dynamodb:PutItem|dynamodb:DeleteItem|elasticloadbalancing:RegisterTargets|autoscaling:CompleteLifecycleAction|autoscaling:RecordLifecycleActionHeartbeat)$/;

const CASES: Array<{ name: string; fault: ApiFault }> = [
  { name: 'throttled once, every call', fault: { match: /.*/, kind: 'throttle', when: 'before', times: 1 } },
  { name: '5xx once, every call', fault: { match: /.*/, kind: 'server-error', when: 'before', times: 1 } },
  { name: '5xx after the change, every mutating call', fault: { match: MUTATING, kind: 'server-error', when: 'after', times: 1 } },
];

describe('fault matrix: AWS API faults during a replacement', () => {
  const t = freshClusterPerTest({ keys: 300 });
  const summary: string[] = [];
  afterAll(() => {
    if (summary.length) console.log(`fault matrix:\n| case | faults injected (operations) | outcome |\n|---|---|---|\n${summary.join('\n')}`);
  });

  it.each(CASES)('$name: the master comes back, no duplicate side effect, no alert', async ({ name, fault }) => {
    const a = memberOf(t.cluster, 'etcd-a');
    const id = (await new EtcdClient(localEtcdRunner(), { endpoints: t.cluster.members.map((m) => m.clientUrl) }).memberList()).members.find((m) => m.name === 'etcd-a')!.id;
    const w = t.writer.start(name.replace(/\W+/g, '-'));
    const { instanceId, event } = await killMaster(t.sandbox, t.c, a);
    const found = await findMasterSlot(t.c.asg, a.asg, { cluster: 'quorum-keeper/cluster', member: 'quorum-keeper/etcd-member' });
    if (found.kind !== 'master') throw new Error(found.reason);
    t.sandbox.apiFaults.push(fault);
    const out = await replaceMaster(sandboxFlowDeps(t.c, t.ctl), {
      slot: found.slot, instanceId, hook: { asg: a.asg, hook: event.detail.LifecycleHookName, token: event.detail.LifecycleActionToken, instanceId },
    });
    t.sandbox.apiFaults.length = 0;
    const ops = [...new Set(t.sandbox.injected.map((i) => i.key))];
    summary.push(`| ${name} | ${t.sandbox.injected.length} (${ops.length} operations: ${ops.join(', ')}) | ${out.result}${out.reason ? `: ${out.reason}` : ''} |`);

    expect(out).toEqual({ result: 'continued', membership: 'update' });
    expect(ops.length).toBeGreaterThanOrEqual(fault.match.source === '.*' ? 10 : 5);
    const members = (await new EtcdClient(localEtcdRunner(), { endpoints: [t.sandbox.host(instanceId).clientUrl] }).memberList()).members;
    expect(members).toHaveLength(3);
    expect(members.find((m) => m.name === 'etcd-a')).toMatchObject({ id, peerUrls: [t.sandbox.host(instanceId).peerUrl], isLearner: false });
    expect(await countKeys(t.sandbox.host(instanceId).clientUrl, '/registry/test/')).toBe(300);
    expect((await t.sandbox.describeVolume(a.volumeId))?.Attachments).toEqual([expect.objectContaining({ InstanceId: instanceId, State: 'attached' })]);
    expect(t.sandbox.detachCalls.filter((d) => d.force)).toEqual([]);
    expect(t.sandbox.lifecycle.results(instanceId)).toEqual(['CONTINUE']);
    expect(await receivedAlerts(t.ctl)).toEqual([]);
    await t.writer.check(w, name);
  });
});
