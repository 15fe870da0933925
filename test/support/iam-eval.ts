/**
 * IAM as AWS evaluates it, for the calls the flows really make (issue 19): each recorded SDK
 * call becomes the action(s) and resource ARN(s) IAM authorises it against, with the condition
 * context the roles' policies test (the resource's tags, `s3:prefix`), and is judged against
 * one role's statements: allowed only if an Allow statement matches action, resource and every
 * condition, and no Deny does. Policy evaluation logic:
 * https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
 * Resources and condition keys per action are from the Service Authorization Reference
 * (https://docs.aws.amazon.com/service-authorization/latest/reference/): e.g. `ec2:AttachVolume`
 * is authorised on the instance and on the volume, each with its own `aws:ResourceTag/…`;
 * `ssm:SendCommand` on the document and on each instance (`ssm:resourceTag/…`).
 *
 * Why not moto's own enforcement: moto 5.2 (`INITIAL_NO_AUTH_ACTION_COUNT`) checks the request
 * signature and the action, against resource `*` for every service but S3, and evaluates no
 * condition ("TODO add support for the Resource and Condition parts", moto/iam/access_control.py),
 * and the sandbox answers SSM itself: it could catch a missing action, never a tag condition.
 * An operation with no model here throws, so a new call cannot pass unjudged.
 */
export interface RecordedCall { service: string; op: string; input: Record<string, unknown> }

export interface AuthRequest {
  action: string;
  resource: string;
  /** Condition keys with their values for this request (absent key: not in the context). */
  context: Record<string, string>;
}

export interface Statement {
  Effect: 'Allow' | 'Deny';
  Action: string | string[];
  Resource: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
}

/** Where the audit finds what IAM would know about a resource. */
export interface ResourceFacts {
  region: string;
  account: string;
  /** A resource's tags by its ARN (instances, volumes, ASGs, target groups). */
  tags(arn: string): Promise<Record<string, string>>;
  /** An Auto Scaling group's ARN by its name (IAM authorises hook actions on the ARN). */
  asgArn(name: string): Promise<string>;
}

const list = <T>(x: T | T[] | undefined): T[] => (x === undefined ? [] : Array.isArray(x) ? x : [x]);

/** IAM's wildcard match: `*` any run of characters (`/` and `:` included), `?` one. */
function globMatch(pattern: string, value: string, caseInsensitive = false): boolean {
  const re = pattern.split('').map((ch) => (ch === '*' ? '.*' : ch === '?' ? '.' : ch.replace(/[.+^${}()|[\]\\]/g, '\\$&'))).join('');
  return new RegExp(`^${re}$`, caseInsensitive ? 'i' : '').test(value);
}

/** One condition operator on one key (only the operators the packaged roles use; others throw). */
function conditionHolds(op: string, key: string, want: string | string[], context: Record<string, string>): boolean {
  const have = context[key];
  const values = list(want);
  switch (op) {
    case 'StringEquals': return have !== undefined && values.includes(have);
    case 'StringLike': return have !== undefined && values.some((v) => globMatch(v, have));
    case 'Bool': return have !== undefined && values.includes(have);
    case 'Null': return values.every((v) => (v === 'true' ? have === undefined : have !== undefined));
    default: throw new Error(`iam-eval: condition operator ${op} is not modelled`);
  }
}

function statementMatches(s: Statement, r: AuthRequest): boolean {
  if (!list(s.Action).some((a) => globMatch(a, r.action, true))) return false;
  if (!list(s.Resource).some((p) => globMatch(p, r.resource))) return false;
  return Object.entries(s.Condition ?? {}).every(([op, block]) => Object.entries(block).every(([k, v]) => conditionHolds(op, k, v, r.context)));
}

/** AWS's order: an explicit Deny wins, then any Allow, else the implicit deny. */
export function authorize(statements: readonly Statement[], r: AuthRequest): boolean {
  if (statements.some((s) => s.Effect === 'Deny' && statementMatches(s, r))) return false;
  return statements.some((s) => s.Effect === 'Allow' && statementMatches(s, r));
}

const tagContext = (prefix: string, tags: Record<string, string>) => Object.fromEntries(Object.entries(tags).map(([k, v]) => [`${prefix}/${k}`, v]));
const str = (v: unknown): string => {
  if (typeof v !== 'string' || !v) throw new Error(`iam-eval: expected a string parameter, got ${JSON.stringify(v)}`);
  return v;
};

/** The authorisation requests behind one SDK call. */
export async function requestsOf(call: RecordedCall, f: ResourceFacts): Promise<AuthRequest[]> {
  const { service, op, input } = call;
  const ec2 = (kind: string, id: unknown) => `arn:aws:ec2:${f.region}:${f.account}:${kind}/${str(id)}`;
  const tagged = async (action: string, arn: string, prefix = 'aws:ResourceTag'): Promise<AuthRequest> => ({ action, resource: arn, context: tagContext(prefix, await f.tags(arn)) });
  const plain = (action: string, resource: string, context: Record<string, string> = {}): AuthRequest => ({ action, resource, context });
  // Describe* / List* / Get* reads of EC2, Auto Scaling, ELB and SSM support no resource-level permission.
  if (['EC2', 'AutoScaling', 'ElasticLoadBalancingV2'].includes(service) && /^Describe/.test(op)) return [plain(`${iamPrefix(service)}:${op}`, '*')];
  switch (`${service}:${op}`) {
    case 'EC2:AttachVolume':
    case 'EC2:DetachVolume': {
      const action = `ec2:${op}`;
      return [await tagged(action, ec2('volume', input.VolumeId)), ...(input.InstanceId ? [await tagged(action, ec2('instance', input.InstanceId))] : [])];
    }
    case 'AutoScaling:CompleteLifecycleAction':
    case 'AutoScaling:RecordLifecycleActionHeartbeat':
      return [await tagged(`autoscaling:${op}`, await f.asgArn(str(input.AutoScalingGroupName)))];
    case 'ElasticLoadBalancingV2:RegisterTargets':
    case 'ElasticLoadBalancingV2:DeregisterTargets':
      return [await tagged(`elasticloadbalancing:${op}`, str(input.TargetGroupArn))];
    case 'SSM:SendCommand':
      return [
        plain('ssm:SendCommand', `arn:aws:ssm:${f.region}::document/${str(input.DocumentName)}`),
        ...(await Promise.all(list(input.InstanceIds as string[]).map((id) => tagged('ssm:SendCommand', ec2('instance', id), 'ssm:resourceTag')))),
      ];
    case 'SSM:GetCommandInvocation':
    case 'SSM:DescribeInstanceInformation':
      return [plain(`ssm:${op}`, '*')];
    case 'SSM:GetParameter':
      return [plain('ssm:GetParameter', `arn:aws:ssm:${f.region}:${f.account}:parameter${str(input.Name)}`)];
    case 'S3:PutObject':
    case 'S3:GetObject':
    case 'S3:DeleteObject':
      return [plain(`s3:${op}`, `arn:aws:s3:::${str(input.Bucket)}/${str(input.Key)}`)];
    case 'S3:HeadObject':
      return [plain('s3:GetObject', `arn:aws:s3:::${str(input.Bucket)}/${str(input.Key)}`)];
    case 'S3:ListObjectsV2':
      return [plain('s3:ListBucket', `arn:aws:s3:::${str(input.Bucket)}`, typeof input.Prefix === 'string' ? { 's3:prefix': input.Prefix } : {})];
    case 'S3:DeleteObjects':
      return list((input.Delete as { Objects?: Array<{ Key?: string }> } | undefined)?.Objects).map((o) => plain('s3:DeleteObject', `arn:aws:s3:::${str(input.Bucket)}/${str(o.Key)}`));
    case 'SNS:Publish':
      return [plain('sns:Publish', str(input.TopicArn))];
    case 'Lambda:Invoke': {
      const name = str(input.FunctionName);
      return [plain('lambda:InvokeFunction', name.startsWith('arn:') ? name : `arn:aws:lambda:${f.region}:${f.account}:function:${name}`)];
    }
    default:
      if (service === 'DynamoDB') return [plain(`dynamodb:${op}`, `arn:aws:dynamodb:${f.region}:${f.account}:table/${str(input.TableName)}`)];
      throw new Error(`iam-eval: no IAM model for ${service}:${op} (add its resources from the Service Authorization Reference)`);
  }
}

function iamPrefix(service: string): string {
  return ({ EC2: 'ec2', AutoScaling: 'autoscaling', ElasticLoadBalancingV2: 'elasticloadbalancing' } as Record<string, string>)[service] ?? service.toLowerCase();
}

/** Every request behind `calls` the role's statements would deny, as readable lines. */
export async function denials(statements: readonly Statement[], calls: readonly RecordedCall[], f: ResourceFacts): Promise<string[]> {
  const out = new Set<string>();
  for (const call of calls) {
    for (const r of await requestsOf(call, f)) {
      if (!authorize(statements, r)) out.add(`${r.action} on ${r.resource} ${JSON.stringify(r.context)}`);
    }
  }
  return [...out];
}

/** Physical values for the stack's own resources the policies reference (`Ref` / `GetAtt … Arn`). */
export type StackRefs = Record<string, string>;

/** CloudFormation's intrinsics as the roles use them: Fn::Sub (with `${X.Arn}`), Fn::GetAtt, Ref. */
function resolve(v: unknown, vars: Record<string, string>): unknown {
  if (Array.isArray(v)) return v.map((x) => resolve(x, vars));
  if (!v || typeof v !== 'object') return v;
  const o = v as Record<string, unknown>;
  const known = (name: string) => {
    if (!(name in vars)) throw new Error(`iam-eval: the policy references ${name}, which the audit was not given`);
    return vars[name]!;
  };
  if ('Fn::Sub' in o) return String(o['Fn::Sub']).replace(/\$\{([^}]+)\}/g, (_, name: string) => known(name));
  if ('Fn::GetAtt' in o) return known((o['Fn::GetAtt'] as string[]).join('.'));
  if ('Ref' in o) return known(String(o.Ref));
  return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, resolve(x, vars)]));
}

/**
 * Each function's role statements as `osls package` would generate them (deploy/iam.js, the
 * generator serverless.yml uses; template.test.ts checks the packaged result), with the
 * intrinsics resolved for this account: role logical ID (`LifecycleRole`) → statements.
 */
export async function packagedRoles(params: Record<string, string>, f: Pick<ResourceFacts, 'region' | 'account'>, refs: StackRefs): Promise<Record<string, Statement[]>> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const generate = require('../../deploy/iam.js') as (o: { resolveVariable: (v: string) => Promise<string> }) => Promise<{ Resources: Record<string, { Properties: { Policies: Array<{ PolicyDocument: { Statement: unknown } }> } }> }>;
  const defaults: Record<string, string> = {
    'param:tagCluster': 'quorum-keeper/cluster', 'param:backupPrefix': 'etcd-backups', 'param:slackWebhookParameter': '/quorum-keeper/slack-webhook',
    'param:clusters': '', 'param:ebsKmsKeyArn': '', 'self:service': 'quorum-keeper', 'sls:stage': 'sandbox',
  };
  const values = { ...defaults, ...Object.fromEntries(Object.entries(params).map(([k, v]) => [`param:${k}`, v])) };
  const { Resources } = await generate({ resolveVariable: (name) => {
    if (!(name in values)) return Promise.reject(new Error(`iam-eval: deploy/iam.js asked for ${name}`));
    return Promise.resolve(values[name]!);
  } });
  const vars = { 'AWS::Partition': 'aws', 'AWS::Region': f.region, 'AWS::AccountId': f.account, ...refs };
  return Object.fromEntries(Object.entries(Resources).map(([role, r]) => [role, r.Properties.Policies.flatMap((p) => resolve(p.PolicyDocument.Statement, vars) as Statement[])]));
}
