/**
 * `quorum-keeper doctor` through the real CLI against one sandbox cluster (real etcd with mutual
 * TLS, the host scripts over SSM, a backup bucket with its KMS key, a CloudFormation stack with a
 * function and a rule): a good cluster has no failed check and exits 0; each real break below
 * fails exactly its check, with the fix naming the resource, exits 5, and is put back.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DeleteLifecycleHookCommand, PutLifecycleHookCommand, UpdateAutoScalingGroupCommand } from '@aws-sdk/client-auto-scaling';
import { CloudFormationClient, CreateStackCommand, ListStackResourcesCommand, waitUntilStackCreateComplete } from '@aws-sdk/client-cloudformation';
import { CreateTagsCommand, DeleteTagsCommand } from '@aws-sdk/client-ec2';
import { DisableRuleCommand, EnableRuleCommand, EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { DisableKeyCommand, EnableKeyCommand } from '@aws-sdk/client-kms';
import { sandboxCli } from '../support/cli';
import type { Check } from '../../lib/domain/doctor';
import type { DoctorReport } from '../../lib/flows/doctor';
import { destroyClients, provisionCluster, type SandboxClients, sandboxClients, type SandboxCluster, TAG_MEMBER, TERMINATE_HOOK } from '../../sandbox/cluster';
import { type BackupTarget, type Control, destroyBackups, destroyControl, provisionBackups, provisionControl } from '../../sandbox/control';
import { Sandbox } from '../../sandbox/sandbox';

jest.setTimeout(120_000);

const STACK = 'quorum-keeper-doctor';
/** A stand-in for the deployed stack: a role, a function and the schedule rule that invokes it. */
const TEMPLATE = {
  Resources: {
    ReconcileRole: {
      Type: 'AWS::IAM::Role',
      Properties: { AssumeRolePolicyDocument: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' }] } },
    },
    ReconcileLambdaFunction: {
      Type: 'AWS::Lambda::Function',
      Properties: { Runtime: 'nodejs22.x', Handler: 'index.handler', Role: { 'Fn::GetAtt': ['ReconcileRole', 'Arn'] }, Code: { ZipFile: 'exports.handler = async () => ({});' } },
    },
    ReconcileEventsRuleSchedule1: {
      Type: 'AWS::Events::Rule',
      Properties: { ScheduleExpression: 'rate(5 minutes)', State: 'ENABLED', Targets: [{ Id: 'reconcile', Arn: { 'Fn::GetAtt': ['ReconcileLambdaFunction', 'Arn'] } }] },
    },
  },
};

describe('quorum-keeper doctor', () => {
  let sandbox: Sandbox;
  let c: SandboxClients;
  let b: BackupTarget;
  let ctl: Control;
  let cluster: SandboxCluster;
  let cfn: CloudFormationClient;
  let events: EventBridgeClient;
  let ruleName: string;

  beforeAll(async () => {
    sandbox = await Sandbox.start();
    c = sandboxClients(sandbox);
    cfn = new CloudFormationClient(sandbox.clientConfig());
    events = new EventBridgeClient(sandbox.clientConfig());
    [b, ctl] = await Promise.all([provisionBackups(sandbox), provisionControl(sandbox)]);
    await cfn.send(new CreateStackCommand({ StackName: STACK, TemplateBody: JSON.stringify(TEMPLATE), Capabilities: ['CAPABILITY_IAM'] }));
    cluster = await provisionCluster(sandbox, c, { name: 'prod' });
    await waitUntilStackCreateComplete({ client: cfn, maxWaitTime: 60, minDelay: 1, maxDelay: 2 }, { StackName: STACK });
    const resources = (await cfn.send(new ListStackResourcesCommand({ StackName: STACK }))).StackResourceSummaries ?? [];
    ruleName = resources.find((r) => r.ResourceType === 'AWS::Events::Rule')!.PhysicalResourceId!;
  });
  afterAll(async () => {
    cfn?.destroy();
    events?.destroy();
    if (b) destroyBackups(b);
    if (ctl) destroyControl(ctl);
    if (c) destroyClients(c);
    await sandbox?.stop();
  });

  const cli = sandboxCli(() => sandbox, () => ['--bucket', b.store.bucket, '--state-table', ctl.table], { QK_STACK_NAME: STACK });
  async function doctor(json = true): Promise<{ code: number; out: string; report: DoctorReport | null }> {
    const { code, out, err } = await cli(['doctor', '--cluster', 'prod', ...(json ? ['--json'] : [])]);
    return { code, out: `${out}${err ? `[stderr] ${err}` : ''}`, report: json ? JSON.parse(out) as DoctorReport : null };
  }

  const key = (x: Pick<Check, 'id' | 'member'>) => `${x.id}${x.member ? `@${x.member}` : ''}`;
  const failed = (r: DoctorReport) => r.checks.filter((x) => x.status === 'fail').map(key).sort();
  const warned = (r: DoctorReport) => r.checks.filter((x) => x.status === 'warn').map(key).sort();
  // The sandbox keeps an ASG's InstanceLifecyclePolicy (moto 5.2.1 drops it): a good cluster warns of nothing.
  const SANDBOX_WARNINGS: string[] = [];

  it('a good cluster: no check fails, exit 0 (human: one line per check, a summary); --json is one document', async () => {
    const human = await doctor(false);
    expect(human.code).toBe(0);
    const lines = human.out.trim().split('\n');
    expect(lines.at(-1)).toMatch(/^doctor prod: OK — \d+ pass, 0 warn, 0 fail, 0 skip$/);
    expect(human.out).toMatch(/^PASS {2}etcd-a: launch lifecycle hook — quorum-keeper-launch: EC2_INSTANCE_LAUNCHING, heartbeat 1800 s, default ABANDON/m);
    expect(human.out).toMatch(/^PASS {2}etcd reachable over TLS — through etcd-a: 3 members/m);
    expect(human.out).toMatch(/^PASS {2}stack rules enabled — 1 rule of quorum-keeper-doctor ENABLED/m);
    expect(human.out).toMatch(/^PASS {2}etcd-a: retain on TerminateHookAbandon — prod-master-us-east-1a: TerminateHookAbandon=retain$/m);

    const { code, report } = await doctor();
    expect(code).toBe(0);
    expect(Object.keys(report!)).toEqual(['cluster', 'at', 'ok', 'summary', 'checks']);
    expect(report).toMatchObject({ cluster: 'prod', ok: true, summary: { fail: 0, warn: 0, skip: 0 } });
    expect(failed(report!)).toEqual([]);
    expect(warned(report!)).toEqual(SANDBOX_WARNINGS);
    // Every master was asked, through its own host scripts.
    for (const m of cluster.members) {
      expect(report!.checks.find((x) => x.id === 'data-dir' && x.member === m.name)).toMatchObject({ status: 'pass', detail: expect.stringContaining(m.volumeId) as unknown });
      expect(report!.checks.find((x) => x.id === 'marker' && x.member === m.name)).toMatchObject({ status: 'pass', detail: expect.stringMatching(new RegExp(`^prod/${m.name} on ${m.volumeId}, member [0-9a-f]+$`)) as unknown });
    }
  });

  interface Break {
    name: string;
    id: string;
    member?: () => string;
    fix: () => RegExp;
    detail?: () => RegExp;
    break: () => Promise<void>;
    restore: () => Promise<void>;
  }
  const m = (i: number) => cluster.members[i]!;
  const hostEnvFile = (i: number) => join(sandbox.host(m(i).instanceId).root, 'etc/quorum-keeper/host.env');
  const markerFile = (i: number) => join(sandbox.volumeDir(m(i).volumeId), '.quorum-keeper-volume');
  let saved = '';

  const BREAKS: Break[] = [
    {
      name: 'the terminate hook deleted', id: 'terminate-hook', member: () => m(0).name,
      fix: () => new RegExp(`^aws autoscaling put-lifecycle-hook --auto-scaling-group-name ${m(0).asg} --lifecycle-hook-name quorum-keeper-terminate --lifecycle-transition autoscaling:EC2_INSTANCE_TERMINATING --heartbeat-timeout 1800 --default-result CONTINUE$`),
      break: async () => { await c.asg.send(new DeleteLifecycleHookCommand({ AutoScalingGroupName: m(0).asg, LifecycleHookName: TERMINATE_HOOK })); },
      restore: async () => {
        await c.asg.send(new PutLifecycleHookCommand({
          AutoScalingGroupName: m(0).asg, LifecycleHookName: TERMINATE_HOOK, LifecycleTransition: 'autoscaling:EC2_INSTANCE_TERMINATING', HeartbeatTimeout: 1800, DefaultResult: 'CONTINUE',
        }));
      },
    },
    {
      name: 'the ASG max set to 2', id: 'asg-capacity', member: () => m(1).name,
      fix: () => new RegExp(`^aws autoscaling update-auto-scaling-group --auto-scaling-group-name ${m(1).asg} --min-size 1 --max-size 1 --desired-capacity 1$`),
      break: async () => { await c.asg.send(new UpdateAutoScalingGroupCommand({ AutoScalingGroupName: m(1).asg, MaxSize: 2 })); },
      restore: async () => { await c.asg.send(new UpdateAutoScalingGroupCommand({ AutoScalingGroupName: m(1).asg, MaxSize: 1 })); },
    },
    {
      // The volume keeps its cluster tag: that one warns (a cluster volume that is no member's).
      name: "a volume's member tag removed", id: 'volume-count', member: () => m(2).name,
      fix: () => new RegExp(`^aws ec2 create-tags --resources ${m(2).volumeId} --tags Key=quorum-keeper/cluster,Value=prod Key=quorum-keeper/etcd-member,Value=${m(2).name}$`),
      break: async () => { await c.ec2.send(new DeleteTagsCommand({ Resources: [m(2).volumeId], Tags: [{ Key: TAG_MEMBER }] })); },
      restore: async () => { await c.ec2.send(new CreateTagsCommand({ Resources: [m(2).volumeId], Tags: [{ Key: TAG_MEMBER, Value: m(2).name }] })); },
    },
    {
      name: 'the SSM agent offline', id: 'ssm-agent', member: () => m(1).name,
      fix: () => new RegExp(`^on ${m(1).instanceId}: sudo systemctl restart amazon-ssm-agent`),
      detail: () => new RegExp(`the SSM agent on ${m(1).instanceId} is ConnectionLost`),
      break: () => { sandbox.host(m(1).instanceId).agentOnline = false; return Promise.resolve(); },
      restore: () => { sandbox.host(m(1).instanceId).agentOnline = true; return Promise.resolve(); },
    },
    {
      name: 'host.env corrupted (a bad QK_ETCD_SCHEME)', id: 'host-env', member: () => m(0).name,
      fix: () => new RegExp(`^fix /etc/quorum-keeper/host.env on ${m(0).instanceId} \\(keys and values: docs/host-scripts.md#environment-and-hostenv\\)`),
      detail: () => /host\.env: bad QK_ETCD_SCHEME/,
      break: () => {
        saved = readFileSync(hostEnvFile(0), 'utf8');
        writeFileSync(hostEnvFile(0), saved.replace('QK_ETCD_SCHEME=https', 'QK_ETCD_SCHEME=htps'));
        return Promise.resolve();
      },
      restore: () => { writeFileSync(hostEnvFile(0), saved); return Promise.resolve(); },
    },
    {
      name: "the volume's marker removed", id: 'marker', member: () => m(2).name,
      fix: () => new RegExp(`^quorum-keeper adopt --cluster prod --state-table <StateTableName> writes it \\(--dry-run first\\); by hand: on ${m(2).instanceId}, as root .*: bash etcd-mount.sh --adopt --volume-id ${m(2).volumeId} --cluster prod --member ${m(2).name}; then .*--record-member-id [0-9a-f]+ --volume-id ${m(2).volumeId}`),
      break: () => { saved = readFileSync(markerFile(2), 'utf8'); rmSync(markerFile(2)); return Promise.resolve(); },
      restore: () => { writeFileSync(markerFile(2), saved); return Promise.resolve(); },
    },
    {
      name: "the stack's schedule rule disabled", id: 'stack-rules',
      fix: () => new RegExp(`^aws events enable-rule --name ${ruleName}$`),
      break: async () => { await events.send(new DisableRuleCommand({ Name: ruleName })); },
      restore: async () => { await events.send(new EnableRuleCommand({ Name: ruleName })); },
    },
    {
      name: 'the backup key disabled', id: 'backup-key',
      fix: () => new RegExp(`^aws kms enable-key --key-id ${b.kmsKeyArn}$`),
      // (By key ID: moto 5.2.1 answers DisableKey on a key ARN with HTTP 500.)
      break: async () => { await b.kms.send(new DisableKeyCommand({ KeyId: b.kmsKeyArn.split('/').pop() })); },
      restore: async () => { await b.kms.send(new EnableKeyCommand({ KeyId: b.kmsKeyArn.split('/').pop() })); },
    },
  ];

  it.each(BREAKS.map((x) => [x.name, x] as const))('%s: that check fails with its fix (exit 5), nothing else fails', async (_name, x) => {
    await x.break();
    try {
      const { code, report } = await doctor();
      const member = x.member?.();
      const check = report!.checks.find((y) => y.id === x.id && y.member === member);
      expect(check).toMatchObject({ status: 'fail' });
      expect(check!.fix).toMatch(x.fix());
      if (x.detail) expect(check!.detail).toMatch(x.detail());
      expect(failed(report!)).toEqual([key({ id: x.id, ...(member ? { member } : {}) })]);
      expect(code).toBe(5);
      expect(report!.ok).toBe(false);
    } finally {
      await x.restore();
    }
  });

  it('every break put back: no check fails again', async () => {
    const { code, report } = await doctor();
    expect(failed(report!)).toEqual([]);
    expect(warned(report!)).toEqual(SANDBOX_WARNINGS);
    expect(code).toBe(0);
  });
});
