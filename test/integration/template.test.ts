/**
 * The deployable artefact (issue 8): `osls package` offline from this checkout, then the
 * generated CloudFormation is walked — least-privilege roles (test/support/iam.ts), the backup
 * bucket and state table as promised, one role per function — and each zip's size checked.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkTemplate } from '../support/iam';

jest.setTimeout(180_000);

type Resource = { Type: string; Properties: Record<string, unknown> };
type Template = { Resources: Record<string, Resource>; Outputs?: Record<string, { Value: unknown }> };

const root = join(__dirname, '..', '..');
const EBS_KEY = 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
let dir: string;
let template: Template;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'qk-package-'));
  const env: NodeJS.ProcessEnv = { ...process.env, SLS_TELEMETRY_DISABLED: '1', SLS_NOTIFICATIONS_MODE: 'off' };
  for (const k of Object.keys(env)) if (k.startsWith('AWS_ENDPOINT_URL')) delete env[k];
  const r = spawnSync('npx', ['osls', 'package', '--stage', 'ci', '--region', 'eu-west-1', '--param', 'clusters=prod,staging', '--param', `ebsKmsKeyArn=${EBS_KEY}`, '--package', dir],
    { cwd: root, env, encoding: 'utf8', timeout: 170_000 });
  if (r.status !== 0) throw new Error(`osls package failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  template = JSON.parse(readFileSync(join(dir, 'cloudformation-template-update-stack.json'), 'utf8')) as Template;
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const ofType = (type: string) => Object.entries(template.Resources).filter(([, r]) => r.Type === type);
/** The tag key the functions look for (QK_TAG_CLUSTER): the one every tag condition must name. */
function clusterTag(): string {
  const tags = new Set(ofType('AWS::Lambda::Function').map(([, f]) => (f.Properties.Environment as { Variables: Record<string, unknown> }).Variables.QK_TAG_CLUSTER));
  expect([...tags]).toEqual(['quorum-keeper/cluster']);
  return 'quorum-keeper/cluster';
}

describe('the packaged template', () => {
  it('grants no mutating action on * or on wildcard ARNs without the cluster-tag condition; SSM only AWS-RunShellScript', () => {
    const roles = ofType('AWS::IAM::Role').map(([k]) => k);
    expect(roles).toEqual(expect.arrayContaining(['LifecycleRole', 'BackupRole', 'ReconcileRole', 'ProbeRole', 'NotifierRole']));
    expect(checkTemplate(template, clusterTag(), ['prod', 'staging'])).toEqual([]);
    // The functions know the served clusters too: they list, and act on, no other.
    const served = new Set(ofType('AWS::Lambda::Function').map(([, f]) => (f.Properties.Environment as { Variables: Record<string, unknown> }).Variables.QK_CLUSTERS));
    expect([...served]).toEqual(['prod,staging']);
  });

  it('the checker catches each kind of violation (so the test above can fail)', () => {
    const bad = structuredClone(template);
    const statements = (role: string) => ((bad.Resources[role]!.Properties.Policies as Array<{ PolicyDocument: { Statement: Array<Record<string, unknown>> } }>)[0]!).PolicyDocument.Statement;
    statements('ProbeRole').push({ Effect: 'Allow', Action: ['ec2:DetachVolume'], Resource: '*' });
    statements('BackupRole').push({ Effect: 'Allow', Action: 'ssm:SendCommand', Resource: { 'Fn::Sub': 'arn:${AWS::Partition}:ssm:${AWS::Region}::document/AWS-RunPowerShellScript' } });
    statements('NotifierRole').push({ Effect: 'Allow', Action: 's3:*', Resource: 'arn:aws:s3:::x/*' });
    const attach = statements('LifecycleRole').find((s) => JSON.stringify(s.Action).includes('ec2:AttachVolume'))!;
    delete attach.Condition;
    const targets = statements('ReconcileRole').find((s) => JSON.stringify(s.Action).includes('elasticloadbalancing:RegisterTargets'))!;
    targets.Condition = { 'Null': { 'aws:ResourceTag/${param:tagCluster}': 'false' } };
    const send = statements('ProbeRole').find((s) => s.Action === 'ssm:SendCommand' && s.Condition)!;
    send.Condition = { 'Null': { 'ssm:resourceTag/some-other-tag': 'false' } };
    // Any cluster's tag value: the tag's presence only, or a name the stack does not serve.
    const hooks = statements('LifecycleRole').find((s) => JSON.stringify(s.Action).includes('CompleteLifecycleAction'))!;
    hooks.Condition = { 'Null': { 'aws:ResourceTag/quorum-keeper/cluster': 'false' } };
    const backupSend = statements('BackupRole').find((s) => s.Action === 'ssm:SendCommand' && s.Condition)!;
    backupSend.Condition = { StringEquals: { 'ssm:resourceTag/quorum-keeper/cluster': ['prod', 'other'] } };
    const found = checkTemplate(bad, clusterTag(), ['prod', 'staging']).map((v) => `${v.role} ${v.rule} ${v.action}`);
    expect(found).toEqual(expect.arrayContaining([
      'ProbeRole 1 ec2:DetachVolume', 'ProbeRole 2 ec2:DetachVolume', 'BackupRole 3 ssm:SendCommand', 'NotifierRole 4 s3:*',
      'LifecycleRole 2 ec2:AttachVolume', 'LifecycleRole 2 ec2:DetachVolume',
      'ReconcileRole 2 elasticloadbalancing:RegisterTargets', 'ProbeRole 2 ssm:SendCommand',
      'LifecycleRole 5 autoscaling:CompleteLifecycleAction', 'BackupRole 5 ssm:SendCommand',
    ]));
  });

  it('the roles that attach volumes may create grants on the volumes\' customer managed key, for AWS resources only', () => {
    const grants = (role: string) => ((template.Resources[role]!.Properties.Policies as Array<{ PolicyDocument: { Statement: Array<Record<string, unknown>> } }>)[0]!)
      .PolicyDocument.Statement.filter((s) => JSON.stringify(s.Action).includes('kms:CreateGrant'));
    for (const role of ['LifecycleRole', 'ReconcileRole']) {
      expect(grants(role)).toEqual([{ Effect: 'Allow', Action: 'kms:CreateGrant', Resource: EBS_KEY, Condition: { Bool: { 'kms:GrantIsForAWSResource': 'true' } } }]);
    }
    for (const role of ['BackupRole', 'ProbeRole', 'NotifierRole']) expect(grants(role)).toEqual([]);
  });

  it('every function runs under its own role', () => {
    const fns = ofType('AWS::Lambda::Function');
    expect(fns.map(([k]) => k).sort()).toEqual(['BackupLambdaFunction', 'LifecycleLambdaFunction', 'NotifierLambdaFunction', 'ProbeLambdaFunction', 'ReconcileLambdaFunction']);
    const roles = fns.map(([, f]) => JSON.stringify(f.Properties.Role));
    expect(new Set(roles).size).toBe(fns.length);
  });

  it('the backup bucket blocks public access, is versioned, SSE-KMS by default and TLS-only; the state table expires items', () => {
    const bucket = template.Resources.BackupBucket!.Properties;
    expect(bucket.PublicAccessBlockConfiguration).toEqual({ BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true });
    expect(bucket.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(JSON.stringify(bucket.BucketEncryption)).toMatch(/"SSEAlgorithm":"aws:kms"/);
    const policies = ofType('AWS::S3::BucketPolicy').map(([, p]) => JSON.stringify(p.Properties.PolicyDocument));
    expect(policies.some((p) => /"Effect":"Deny".*"aws:SecureTransport":"?false/.test(p))).toBe(true);
    expect(template.Resources.StateTable!.Properties.TimeToLiveSpecification).toEqual({ AttributeName: 'ttl', Enabled: true });
  });

  it('outputs what the operator CLI needs', () => {
    expect(Object.keys(template.Outputs ?? {})).toEqual(expect.arrayContaining(['BackupBucketName', 'BackupKeyArn', 'StateTableName', 'AlertTopicArn', 'NotifierDeadLetterQueueUrl']));
    expect(template.Outputs!.StateTableName!.Value).toEqual({ Ref: 'StateTable' });
  });

  it('alarms exist per cluster named in the clusters parameter', () => {
    const names = ofType('AWS::CloudWatch::Alarm').map(([, a]) => String(a.Properties.AlarmName));
    for (const c of ['prod', 'staging']) {
      for (const kind of ['no-leader', 'quorum-margin', 'backup-stale', 'drift', 'flow-failures']) expect(names).toContain(`quorum-keeper-ci-${c}-${kind}`);
    }
  });

  it('each function zip is at most 1 MB', () => {
    const zips = readdirSync(dir).filter((f) => f.endsWith('.zip'));
    expect(zips.sort()).toEqual(['backup.zip', 'lifecycle.zip', 'notifier.zip', 'probe.zip', 'reconcile.zip']);
    const sizes = Object.fromEntries(zips.map((z) => [z, statSync(join(dir, z)).size]));
    console.log(`function zips (bytes): ${JSON.stringify(sizes)}`);
    for (const [z, size] of Object.entries(sizes)) expect({ z, size, within: size <= 1024 * 1024 }).toEqual({ z, size, within: true });
  });
});
