/** The IAM evaluator the IAM audit uses (test/support/iam-eval.ts) follows AWS's evaluation rules. */
import { authorize, requestsOf, type Statement } from '../support/iam-eval';

const tagged: Statement = { Effect: 'Allow', Action: ['ec2:AttachVolume'], Resource: ['arn:aws:ec2:*:1:instance/*'], Condition: { StringEquals: { 'aws:ResourceTag/c': ['prod', 'staging'] } } };
const req = (tags: Record<string, string>, resource = 'arn:aws:ec2:r:1:instance/i-1') => ({ action: 'ec2:AttachVolume', resource, context: Object.fromEntries(Object.entries(tags).map(([k, v]) => [`aws:ResourceTag/${k}`, v])) });

describe('authorize', () => {
  it('allows only when action, resource and every condition match; StringEquals on a list is an OR', () => {
    expect(authorize([tagged], req({ c: 'prod' }))).toBe(true);
    expect(authorize([tagged], req({ c: 'staging' }))).toBe(true);
    expect(authorize([tagged], req({ c: 'other' }))).toBe(false);
    expect(authorize([tagged], req({}))).toBe(false);
    expect(authorize([tagged], req({ c: 'prod' }, 'arn:aws:ec2:r:1:volume/vol-1'))).toBe(false);
    expect(authorize([tagged], { ...req({ c: 'prod' }), action: 'ec2:DetachVolume' })).toBe(false);
  });

  it('actions match case-insensitively with wildcards; an explicit Deny wins; no statement is an implicit deny', () => {
    const any: Statement = { Effect: 'Allow', Action: 'EC2:Attach*', Resource: '*' };
    expect(authorize([any], req({}))).toBe(true);
    expect(authorize([any, { Effect: 'Deny', Action: 'ec2:*', Resource: '*' }], req({}))).toBe(false);
    expect(authorize([], req({}))).toBe(false);
  });

  it('Null, StringLike and Bool as IAM defines them; an operator it does not model throws', () => {
    const nul = (v: string): Statement => ({ Effect: 'Allow', Action: '*', Resource: '*', Condition: { Null: { 'aws:ResourceTag/c': v } } });
    expect(authorize([nul('false')], req({ c: 'x' }))).toBe(true);
    expect(authorize([nul('false')], req({}))).toBe(false);
    expect(authorize([nul('true')], req({}))).toBe(true);
    const like: Statement = { Effect: 'Allow', Action: 's3:ListBucket', Resource: 'arn:aws:s3:::b', Condition: { StringLike: { 's3:prefix': 'etcd-backups/*' } } };
    expect(authorize([like], { action: 's3:ListBucket', resource: 'arn:aws:s3:::b', context: { 's3:prefix': 'etcd-backups/prod/' } })).toBe(true);
    expect(authorize([like], { action: 's3:ListBucket', resource: 'arn:aws:s3:::b', context: { 's3:prefix': 'other/' } })).toBe(false);
    expect(authorize([like], { action: 's3:ListBucket', resource: 'arn:aws:s3:::b', context: {} })).toBe(false);
    expect(() => authorize([{ Effect: 'Allow', Action: '*', Resource: '*', Condition: { IpAddress: { 'aws:SourceIp': '1.2.3.4' } } }], req({}))).toThrow(/IpAddress is not modelled/);
  });
});

describe('requestsOf', () => {
  const facts = { region: 'r', account: '1', tags: (arn: string) => Promise.resolve({ arn }), asgArn: (n: string) => Promise.resolve(`arn:aws:autoscaling:r:1:autoScalingGroup:u:autoScalingGroupName/${n}`) };
  it('AttachVolume is authorised on the volume and on the instance, each with its own tags; SendCommand on the document and each instance', async () => {
    expect((await requestsOf({ service: 'EC2', op: 'AttachVolume', input: { VolumeId: 'vol-1', InstanceId: 'i-1', Device: '/dev/xvdf' } }, facts)).map((r) => [r.resource, r.context['aws:ResourceTag/arn']]))
      .toEqual([['arn:aws:ec2:r:1:volume/vol-1', 'arn:aws:ec2:r:1:volume/vol-1'], ['arn:aws:ec2:r:1:instance/i-1', 'arn:aws:ec2:r:1:instance/i-1']]);
    expect((await requestsOf({ service: 'SSM', op: 'SendCommand', input: { DocumentName: 'AWS-RunShellScript', InstanceIds: ['i-1'] } }, facts)).map((r) => [r.resource, Object.keys(r.context)]))
      .toEqual([['arn:aws:ssm:r::document/AWS-RunShellScript', []], ['arn:aws:ec2:r:1:instance/i-1', ['ssm:resourceTag/arn']]]);
  });
  it('a function\'s Invoke is authorised on the function\'s ARN', async () => {
    expect(await requestsOf({ service: 'Lambda', op: 'Invoke', input: { FunctionName: 'quorum-keeper-sandbox-probe', InvocationType: 'Event' } }, facts))
      .toEqual([{ action: 'lambda:InvokeFunction', resource: 'arn:aws:lambda:r:1:function:quorum-keeper-sandbox-probe', context: {} }]);
  });
  it('an operation it has no model for throws instead of passing unjudged', async () => {
    await expect(requestsOf({ service: 'EC2', op: 'TerminateInstances', input: {} }, facts)).rejects.toThrow(/no IAM model for EC2:TerminateInstances/);
  });
});
