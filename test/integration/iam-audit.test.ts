/**
 * IAM under the deployed roles (issue 19): each flow runs in the sandbox against real etcd, every
 * SDK call it makes is recorded, and each call is judged as IAM would judge it under the role
 * its function runs with (deploy/iam.js, resolved for this account), against the resources'
 * real tags: actions, resource ARNs and the cluster-tag conditions (test/support/iam-eval.ts).
 * The stack serves `prod` (the `clusters` parameter), so every tag condition is StringEquals.
 * What is not judged: KMS calls S3 and EC2 make on the role's behalf (the roles grant them; no
 * SDK call shows them), and the masters' own use of presigned URLs (judged as the signer's call).
 */
import { DescribeAutoScalingGroupsCommand } from '@aws-sdk/client-auto-scaling';
import { DescribeTagsCommand as DescribeEc2Tags } from '@aws-sdk/client-ec2';
import { DescribeTagsCommand as DescribeElbTags } from '@aws-sdk/client-elastic-load-balancing-v2';
import { DEFAULT_RECONCILE } from '../../lib/domain/reconcile';
import { backupCluster } from '../../lib/flows/backup';
import { findMasterSlot, type MasterSlot } from '../../lib/flows/master-slot';
import { probeCluster } from '../../lib/flows/probe';
import { reconcileCluster } from '../../lib/flows/reconcile';
import { replaceMaster } from '../../lib/flows/replacement';
import { retireMaster } from '../../lib/flows/retirement';
import { ApiCallCounter } from '../../sandbox/api-calls';
import { TAG_CLUSTER, TAG_MEMBER } from '../../sandbox/cluster';
import { sandboxBackupDeps, sandboxBackupSettings, sandboxFlowDeps, sandboxProbeDeps, sandboxReconcileDeps } from '../../sandbox/control';
import { SANDBOX_REGION } from '../../sandbox/sandbox';
import { killMaster, memberOf, TERMINATE_HOOK } from '../../sandbox/scenario';
import { denials, packagedRoles, type RecordedCall, type ResourceFacts, type Statement } from '../support/iam-eval';
import { freshClusterPerTest, type ScenarioWorld } from '../support/scenario-suite';

jest.setTimeout(240_000);

const ACCOUNT = '123456789012';
const t = freshClusterPerTest({ keys: 50, backups: true });

/** What IAM knows about the sandbox's resources, read from moto (not through the recorded clients). */
function facts(w: ScenarioWorld, retag: (tags: Record<string, string>) => Record<string, string> = (x) => x): ResourceFacts {
  return {
    region: SANDBOX_REGION,
    account: ACCOUNT,
    async tags(arn) {
      const plain = (tags: Array<{ Key?: string; Value?: string }> | undefined) => retag(Object.fromEntries((tags ?? []).map((x) => [x.Key ?? '', x.Value ?? ''])));
      const ec2 = /:ec2:[^:]*:\d+:(?:instance|volume)\/(.+)$/.exec(arn);
      if (ec2) return plain((await w.c.ec2.send(new DescribeEc2Tags({ Filters: [{ Name: 'resource-id', Values: [ec2[1]!] }] }))).Tags);
      const asg = /:autoScalingGroupName\/(.+)$/.exec(arn);
      if (asg) return plain((await w.c.asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [asg[1]!] }))).AutoScalingGroups?.[0]?.Tags);
      if (arn.includes(':targetgroup/')) return plain((await w.c.elb.send(new DescribeElbTags({ ResourceArns: [arn] }))).TagDescriptions?.[0]?.Tags);
      throw new Error(`no tags known for ${arn}`);
    },
    async asgArn(name) {
      const g = (await w.c.asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [name] }))).AutoScalingGroups?.[0];
      if (!g?.AutoScalingGroupARN) throw new Error(`no ASG ${name}`);
      return g.AutoScalingGroupARN;
    },
  };
}

async function roles(w: ScenarioWorld, clusters = 'prod'): Promise<Record<string, Statement[]>> {
  return packagedRoles({ clusters }, { region: SANDBOX_REGION, account: ACCOUNT }, {
    'BackupBucket.Arn': `arn:aws:s3:::${w.backups.store.bucket}`, 'BackupBucket': w.backups.store.bucket,
    'StateTable.Arn': `arn:aws:dynamodb:${SANDBOX_REGION}:${ACCOUNT}:table/${w.ctl.table}`,
    'BackupKey.Arn': w.backups.kmsKeyArn, 'AlertKey.Arn': w.backups.kmsKeyArn, 'AlertTopic': w.ctl.topicArn,
    'NotifierDeadLetterQueue.Arn': `arn:aws:sqs:${SANDBOX_REGION}:${ACCOUNT}:notifier-dlq`,
  });
}

/** Records every call the product's clients send while `fn` runs. */
async function recording(w: ScenarioWorld, fn: () => Promise<unknown>): Promise<RecordedCall[]> {
  const counter = new ApiCallCounter().attach(w.c.ec2, w.c.asg, w.c.ssm, w.c.elb, w.ctl.ddb, w.ctl.sns, w.backups.s3);
  counter.reset();
  // The middleware stays on the clients (a later recorder replaces it by name): keep a copy.
  await fn();
  return [...counter.calls];
}

const slotOf = async (w: ScenarioWorld, asg: string): Promise<MasterSlot> => {
  const s = await findMasterSlot(w.c.asg, asg, { cluster: TAG_CLUSTER, member: TAG_MEMBER });
  if (s.kind !== 'master') throw new Error(s.reason);
  return s.slot;
};
const ops = (calls: RecordedCall[]) => [...new Set(calls.map((c) => `${c.service}:${c.op}`))].sort();
/** The role's denials of these calls (none expected); what was judged goes to the log. */
async function judge(r: Record<string, Statement[]>, role: string, flow: string, calls: RecordedCall[]): Promise<string[]> {
  console.log(`${flow} under ${role}: ${calls.length} calls judged (${ops(calls).join(', ')})`);
  return denials(r[role]!, calls, facts(t));
}

describe('every call a flow makes is allowed by its function\'s deployed role', () => {
  it('probe (ProbeRole) and backup (BackupRole)', async () => {
    const r = await roles(t);
    const probe = await recording(t, () => probeCluster(sandboxProbeDeps(t.c, t.ctl), 'prod', { components: ['kube-controller-manager', 'kube-scheduler'], quotaBytes: 2 * 1024 ** 3 }));
    expect(ops(probe)).toEqual(expect.arrayContaining(['SSM:SendCommand', 'SSM:GetCommandInvocation']));
    expect(await judge(r, 'ProbeRole', 'probe', probe)).toEqual([]);
    const backup = await recording(t, async () => {
      const out = await backupCluster(sandboxBackupDeps(t.c, t.ctl, t.backups), 'prod', sandboxBackupSettings(t.backups));
      expect(out.result).toBe('uploaded');
    });
    expect(ops(backup)).toEqual(expect.arrayContaining(['S3:PutObject', 'S3:ListObjectsV2', 'SSM:SendCommand']));
    expect(await judge(r, 'BackupRole', 'backup', backup)).toEqual([]);
  });

  it('replacement and retirement (LifecycleRole); the same calls for a cluster the stack does not serve are denied', async () => {
    const r = await roles(t);
    const a = memberOf(t.cluster, 'etcd-a');
    const { instanceId, event } = await killMaster(t.sandbox, t.c, a);
    const hook = { asg: a.asg, hook: event.detail.LifecycleHookName, token: event.detail.LifecycleActionToken, instanceId };
    const replacement = await recording(t, async () => {
      const out = await replaceMaster(sandboxFlowDeps(t.c, t.ctl), { slot: await slotOf(t, a.asg), instanceId, hook });
      expect(out.result).toBe('continued');
    });
    expect(ops(replacement)).toEqual(expect.arrayContaining(['EC2:AttachVolume', 'SSM:SendCommand', 'AutoScaling:CompleteLifecycleAction', 'ElasticLoadBalancingV2:RegisterTargets']));
    expect(await judge(r, 'LifecycleRole', 'replacement', replacement)).toEqual([]);

    const b = memberOf(t.cluster, 'etcd-b');
    const term = t.sandbox.lifecycle.begin({ asg: b.asg, hook: TERMINATE_HOOK, instanceId: b.instanceId, transition: 'autoscaling:EC2_INSTANCE_TERMINATING' });
    const retirement = await recording(t, async () => {
      const out = await retireMaster(sandboxFlowDeps(t.c, t.ctl), {
        slot: await slotOf(t, b.asg), instanceId: b.instanceId,
        hook: { asg: b.asg, hook: term.detail.LifecycleHookName, token: term.detail.LifecycleActionToken, instanceId: b.instanceId },
      }, { waitSec: 30 });
      expect(out.result).toBe('continued');
    });
    expect(ops(retirement)).toEqual(expect.arrayContaining(['EC2:DetachVolume', 'ElasticLoadBalancingV2:DeregisterTargets', 'AutoScaling:CompleteLifecycleAction']));
    expect(await judge(r, 'LifecycleRole', 'retirement', retirement)).toEqual([]);

    // The audit can fail: the very same calls, on resources tagged as another cluster's.
    const elsewhere = facts(t, (tags) => (TAG_CLUSTER in tags ? { ...tags, [TAG_CLUSTER]: 'staging' } : tags));
    const kind = (arn: string) => /:(instance|volume)\//.exec(arn)?.[1] ?? (arn.includes(':autoScalingGroup:') ? 'group' : arn.includes(':targetgroup/') ? 'target group' : arn);
    const denied = (await denials(r.LifecycleRole!, [...replacement, ...retirement], elsewhere)).map((d) => {
      const [action, , arn] = d.split(' ');
      return `${action} on ${kind(arn!)}`;
    });
    expect([...new Set(denied)].sort()).toEqual([
      'autoscaling:CompleteLifecycleAction on group', 'autoscaling:RecordLifecycleActionHeartbeat on group',
      'ec2:AttachVolume on instance', 'ec2:AttachVolume on volume', 'ec2:DetachVolume on instance', 'ec2:DetachVolume on volume',
      'elasticloadbalancing:DeregisterTargets on target group', 'elasticloadbalancing:RegisterTargets on target group',
      'ssm:SendCommand on instance',
    ]);
  });

  it('a launch event that never came, re-driven by the reconciler (ReconcileRole)', async () => {
    const r = await roles(t);
    await killMaster(t.sandbox, t.c, memberOf(t.cluster, 'etcd-c')); // the event is never delivered
    const redrive = await recording(t, async () => {
      const out = await reconcileCluster(sandboxReconcileDeps(t.c, t.ctl, t.backups), 'prod', { ...DEFAULT_RECONCILE, pendingGraceSec: 0 });
      // No backup yet in this world: the run takes one too (and says so), under the same role.
      expect(out.steps.map((x) => [x.action.kind, x.result])).toEqual(expect.arrayContaining([['redrive-replacement', 'done'], ['backup', 'done']]));
      expect(out.steps.every((x) => x.result === 'done')).toBe(true);
    });
    expect(ops(redrive)).toEqual(expect.arrayContaining(['EC2:AttachVolume', 'SSM:SendCommand', 'AutoScaling:CompleteLifecycleAction', 'S3:PutObject', 'SNS:Publish']));
    expect(await judge(r, 'ReconcileRole', 'redrive', redrive)).toEqual([]);
  });
});
