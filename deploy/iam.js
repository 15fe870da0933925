'use strict';
/**
 * One IAM role per function (least privilege), generated from named statement groups and
 * referenced from serverless.yml `resources` (like deploy/alarms.js), so no statement is
 * written twice and each role reads as the list of what its function does. Describe* calls
 * cannot be scoped to resources: each group names the reads it needs, and a role gets them as
 * one statement on `*`. Every mutating action on EC2, Auto Scaling, ELB and SSM instances is
 * conditioned on the resource's cluster tag: one of the `clusters` the stack serves, or (with
 * none named) merely present. test/support/iam.ts checks the packaged result.
 *
 *   masters-read          find a cluster's master ASGs by tag
 *   lifecycle-hooks       complete / heartbeat the launch and terminate hooks
 *   lifecycle-hooks-read  read the hooks (their heartbeat timeout; the reconciler re-drives a lost event)
 *   volumes-mutate        attach / detach the etcd volumes (and kms:CreateGrant on their
 *                         customer managed key, with the ebsKmsKeyArn parameter)
 *   targets-mutate        register / deregister masters in the API server target group
 *   ssm-run               run AWS-RunShellScript on the cluster's instances, read the result
 *   backup-bucket         backups under the prefix (the masters upload and HEAD through URLs
 *                         the role presigns), encrypted with the backup key
 *   backup-list           list the prefix only (a new cluster is seeded only when it holds no backup)
 *   alerts-publish        publish to the alert topic (encrypted with the alert key)
 *   slack-webhook         read the SecureString webhook URL (aws/ssm key, only through SSM)
 *   dead-letter           hand undeliverable notifications to the notifier's queue
 *   self-invoke           a scheduled function hands each cluster to an asynchronous
 *                         invocation of itself (functions/fan-out.ts): its own ARN only
 *   state(...actions)     the state table (locks, de-duplication, memory), with these actions
 */
const { servedClusters } = require('./clusters');

const ARN = 'arn:${AWS::Partition}';
const IN_ACCOUNT = '${AWS::Region}:${AWS::AccountId}';
const sub = (s) => ({ 'Fn::Sub': s });
const getAtt = (resource) => ({ 'Fn::GetAtt': [resource, 'Arn'] });
const allow = (Action, Resource, Condition) => ({ Effect: 'Allow', Action, Resource, ...(Condition ? { Condition } : {}) });
const useKey = (key) => allow(['kms:GenerateDataKey', 'kms:Decrypt'], getAtt(key));

/** The named groups; a group is `{ read?: [actions on *], allow?: [statements] }`. */
function groups({ tagCluster, clusters, backupPrefix, slackWebhookParameter, ebsKmsKeyArn }) {
  // The tag is resolved here: osls does not resolve variables in keys, so the hand-written
  // `aws:ResourceTag/${param:tagCluster}` reached IAM as that literal text. With the `clusters`
  // parameter set, the tag must carry one of those names (StringEquals on a list is an OR);
  // without it, only its presence is tested.
  const tagged = (prefix) => (clusters.length
    ? { StringEquals: { [`${prefix}/${tagCluster}`]: clusters } }
    : { 'Null': { [`${prefix}/${tagCluster}`]: 'false' } });
  return {
    'masters-read': { read: ['autoscaling:DescribeAutoScalingGroups'] },
    'lifecycle-hooks': {
      read: ['autoscaling:DescribeAutoScalingInstances'],
      allow: [allow(['autoscaling:CompleteLifecycleAction', 'autoscaling:RecordLifecycleActionHeartbeat'],
        sub(`${ARN}:autoscaling:${IN_ACCOUNT}:autoScalingGroup:*:autoScalingGroupName/*`), tagged('aws:ResourceTag'))],
    },
    'lifecycle-hooks-read': { read: ['autoscaling:DescribeLifecycleHooks'] },
    'volumes-mutate': {
      read: ['ec2:DescribeInstances', 'ec2:DescribeVolumes'],
      allow: [
        allow(['ec2:AttachVolume', 'ec2:DetachVolume'],
          [sub(`${ARN}:ec2:${IN_ACCOUNT}:volume/*`), sub(`${ARN}:ec2:${IN_ACCOUNT}:instance/*`)], tagged('aws:ResourceTag')),
        // A volume encrypted with a customer managed key: EC2 creates a grant for the instance on
        // the attacher's behalf (https://docs.aws.amazon.com/ebs/latest/userguide/ebs-encryption-requirements.html).
        ...(ebsKmsKeyArn ? [allow('kms:CreateGrant', ebsKmsKeyArn, { Bool: { 'kms:GrantIsForAWSResource': 'true' } })] : []),
      ],
    },
    'targets-mutate': {
      read: ['elasticloadbalancing:DescribeTargetGroups', 'elasticloadbalancing:DescribeTags', 'elasticloadbalancing:DescribeTargetHealth', 'elasticloadbalancing:DescribeTargetGroupAttributes'],
      allow: [allow(['elasticloadbalancing:RegisterTargets', 'elasticloadbalancing:DeregisterTargets'],
        sub(`${ARN}:elasticloadbalancing:${IN_ACCOUNT}:targetgroup/*/*`), tagged('aws:ResourceTag'))],
    },
    'ssm-run': {
      read: ['ssm:DescribeInstanceInformation', 'ssm:GetCommandInvocation'],
      allow: [
        allow('ssm:SendCommand', sub(`${ARN}:ssm:\${AWS::Region}::document/AWS-RunShellScript`)),
        allow('ssm:SendCommand', sub(`${ARN}:ec2:${IN_ACCOUNT}:instance/*`), tagged('ssm:resourceTag')),
      ],
    },
    'backup-bucket': {
      allow: [
        allow(['s3:PutObject', 's3:GetObject', 's3:DeleteObject'], sub(`\${BackupBucket.Arn}/${backupPrefix}/*`)),
        allow('s3:ListBucket', getAtt('BackupBucket'), { StringLike: { 's3:prefix': `${backupPrefix}/*` } }),
        useKey('BackupKey'),
      ],
    },
    'backup-list': { allow: [allow('s3:ListBucket', getAtt('BackupBucket'), { StringLike: { 's3:prefix': `${backupPrefix}/*` } })] },
    'alerts-publish': { allow: [allow('sns:Publish', { Ref: 'AlertTopic' }), useKey('AlertKey')] },
    'slack-webhook': {
      allow: [
        allow('ssm:GetParameter', sub(`${ARN}:ssm:${IN_ACCOUNT}:parameter${slackWebhookParameter}`)),
        allow('kms:Decrypt', sub(`${ARN}:kms:${IN_ACCOUNT}:key/*`), { StringEquals: { 'kms:ViaService': sub('ssm.${AWS::Region}.amazonaws.com') } }),
      ],
    },
    'dead-letter': { allow: [allow('sqs:SendMessage', getAtt('NotifierDeadLetterQueue'))] },
  };
}

/** The state table with these actions (each function needs a different few). */
const state = (...actions) => ({ allow: [allow(actions.map((a) => `dynamodb:${a}`), getAtt('StateTable'))] });

/** Each function's groups, in statement order. */
const ROLES = {
  // The retirement reads its hook's heartbeat timeout and records a held hook (held#<cluster>/<member>);
  // a lock extension that fails is confirmed by a read (GetItem) before the lock counts as lost.
  // The replacement of a new cluster's master lists the backup prefix before it seeds (backup-list)
  // and writes the formed# fence and its bootstrap# report (PutItem, UpdateItem).
  lifecycle: ['masters-read', 'lifecycle-hooks', 'lifecycle-hooks-read', 'volumes-mutate', 'targets-mutate', 'ssm-run', 'backup-list', state('GetItem', 'PutItem', 'UpdateItem', 'DeleteItem'), 'alerts-publish'],
  // GetItem: the member IDs recorded per slot (member#<cluster>/<slot>) tell the source's slot.
  backup: ['masters-read', 'ssm-run', 'backup-bucket', state('GetItem', 'PutItem', 'DeleteItem'), 'alerts-publish', 'self-invoke'],
  // The reconciler acts through the same flows as the lifecycle and backup functions: the union
  // of their rights, plus reading hooks and the lock (it never takes a new kind of action); the
  // table holds its locks (cluster, slot), alert de-duplication and the first-seen memory.
  reconcile: ['masters-read', 'lifecycle-hooks', 'lifecycle-hooks-read', 'volumes-mutate', 'targets-mutate', 'ssm-run', 'backup-bucket',
    state('GetItem', 'PutItem', 'UpdateItem', 'DeleteItem'), 'alerts-publish', 'self-invoke'],
  // Read-only on the hosts too: the survey runs etcdctl queries and GETs Leases. The probe
  // remembers each cluster's raft term between runs (probe#<cluster>).
  probe: ['masters-read', 'ssm-run', state('GetItem', 'PutItem'), 'self-invoke'],
  // De-duplication claims, and the probe's last Lease holders (read only).
  notifier: ['slack-webhook', state('PutItem', 'DeleteItem', 'GetItem'), 'dead-letter'],
};

function pascal(s) {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

module.exports = async ({ resolveVariable }) => {
  const param = async (name) => String(await resolveVariable(`param:${name}`));
  const clusters = servedClusters(await param('clusters'));
  const ebsKmsKeyArn = (await param('ebsKmsKeyArn')).trim();
  if (ebsKmsKeyArn && !/^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]{1,128}$/.test(ebsKmsKeyArn)) throw new Error(`deploy/iam.js: ebsKmsKeyArn "${ebsKmsKeyArn}" is not a KMS key ARN`);
  const service = String(await resolveVariable('self:service'));
  const stage = String(await resolveVariable('sls:stage'));
  const named = groups({
    tagCluster: await param('tagCluster'), clusters, backupPrefix: await param('backupPrefix'), slackWebhookParameter: await param('slackWebhookParameter'), ebsKmsKeyArn,
  });
  const Resources = {};
  for (const [fn, list] of Object.entries(ROLES)) {
    const parts = list.map((g) => {
      if (typeof g !== 'string') return g;
      if (g === 'self-invoke') return { allow: [allow('lambda:InvokeFunction', sub(`${ARN}:lambda:${IN_ACCOUNT}:function:${service}-${stage}-${fn}`))] };
      if (!named[g]) throw new Error(`deploy/iam.js: role ${fn} names an unknown group "${g}"`);
      return named[g];
    });
    const reads = [...new Set(parts.flatMap((g) => g.read ?? []))];
    const Statement = [
      allow(['logs:CreateLogStream', 'logs:PutLogEvents'], sub(`${ARN}:logs:${IN_ACCOUNT}:log-group:/aws/lambda/${service}-${stage}-${fn}:*`)),
      ...(reads.length ? [allow(reads, '*')] : []),
      ...parts.flatMap((g) => g.allow ?? []),
    ];
    Resources[`${pascal(fn)}Role`] = {
      Type: 'AWS::IAM::Role',
      Properties: {
        AssumeRolePolicyDocument: {
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' }],
        },
        Policies: [{ PolicyName: fn, PolicyDocument: { Version: '2012-10-17', Statement } }],
      },
    };
  }
  return { Resources };
};
