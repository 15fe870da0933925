/**
 * What `quorum-keeper doctor` reads from AWS (read-only describe calls), as the plain facts its
 * pure judge takes (lib/domain/doctor): the cluster's ASGs with their hooks and subnets' AZs, its
 * volumes, target groups, the masters' instances and SSM agents, the backup bucket and its key,
 * the deployed stack's functions and rules. The SDK commands live here, not in the flow.
 */
import {
  type AutoScalingClient, type AutoScalingGroup, DescribeLifecycleHooksCommand, paginateDescribeAutoScalingGroups,
} from '@aws-sdk/client-auto-scaling';
import { type CloudFormationClient, paginateListStackResources, type StackResourceSummary } from '@aws-sdk/client-cloudformation';
import { type EC2Client, paginateDescribeInstances, paginateDescribeSubnets } from '@aws-sdk/client-ec2';
import { DescribeTargetGroupsCommand, type ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { DescribeRuleCommand, type EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { DescribeKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { GetFunctionConfigurationCommand, type LambdaClient } from '@aws-sdk/client-lambda';
import { GetBucketEncryptionCommand, HeadBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { paginateDescribeInstanceInformation, type SSMClient } from '@aws-sdk/client-ssm';
import type { AsgFacts, BackupFacts, DoctorFacts, StackFacts, TargetGroupFacts, VolumeFacts } from '../domain/doctor';
import { clusterVolumes } from './ec2';
import { deregistrationDelaySec, findTargetGroups } from './lb';

export interface DoctorReadClients {
  asg: AutoScalingClient;
  ec2: EC2Client;
  elb: ElasticLoadBalancingV2Client;
  ssm: SSMClient;
  s3: S3Client;
  kms: KMSClient;
  cfn: CloudFormationClient;
  events: EventBridgeClient;
  lambda: LambdaClient;
  tags: { cluster: string; member: string };
}

export const errorText = (err: unknown): string => {
  const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const msg = e.message && e.message !== 'UnknownError' ? e.message : `HTTP ${e.$metadata?.httpStatusCode ?? '?'}`;
  return e.name && e.name !== 'Error' && !msg.startsWith(e.name) ? `${e.name}: ${msg}` : msg;
};

function asgFacts(g: AutoScalingGroup, tags: DoctorReadClients['tags']): Omit<AsgFacts, 'hooks' | 'subnets'> & { subnetIds: string[] } {
  const tag = (k: string) => g.Tags?.find((t) => t.Key === k);
  const sources = g.TrafficSources ?? [];
  const tgs = new Set([...(g.TargetGroupARNs ?? []), ...sources.filter((s) => s.Identifier?.includes(':targetgroup/')).map((s) => s.Identifier!)]);
  const lbs = new Set([...(g.LoadBalancerNames ?? []), ...sources.filter((s) => s.Type === 'elb' && s.Identifier).map((s) => s.Identifier!)]);
  return {
    name: g.AutoScalingGroupName!, memberTag: tag(tags.member)?.Value,
    clusterTagPropagated: tag(tags.cluster)?.PropagateAtLaunch === true, memberTagPropagated: tag(tags.member)?.PropagateAtLaunch === true,
    min: g.MinSize ?? 0, max: g.MaxSize ?? 0, desired: g.DesiredCapacity ?? 0, availabilityZones: g.AvailabilityZones ?? [],
    subnetIds: (g.VPCZoneIdentifier ?? '').split(',').map((s) => s.trim()).filter(Boolean),
    healthCheckType: g.HealthCheckType ?? 'EC2', healthCheckGracePeriodSec: g.HealthCheckGracePeriod ?? 0,
    targetGroupArns: [...tgs], loadBalancerNames: [...lbs],
    terminateHookAbandon: g.InstanceLifecyclePolicy?.RetentionTriggers?.TerminateHookAbandon ?? null,
    instances: (g.Instances ?? []).filter((i) => i.InstanceId).map((i) => ({ instanceId: i.InstanceId!, lifecycleState: i.LifecycleState ?? 'unknown' })),
  };
}

/** Every ASG carrying the cluster tag, with its lifecycle hooks and the AZ of each subnet. */
export async function readAsgs(d: DoctorReadClients, cluster: string): Promise<AsgFacts[]> {
  const raw: Array<ReturnType<typeof asgFacts>> = [];
  for await (const page of paginateDescribeAutoScalingGroups({ client: d.asg }, { Filters: [{ Name: `tag:${d.tags.cluster}`, Values: [cluster] }] })) {
    for (const g of page.AutoScalingGroups ?? []) if (g.AutoScalingGroupName) raw.push(asgFacts(g, d.tags));
  }
  const subnetIds = [...new Set(raw.flatMap((g) => g.subnetIds))];
  const azOf = new Map<string, string>();
  if (subnetIds.length) {
    for await (const page of paginateDescribeSubnets({ client: d.ec2 }, { Filters: [{ Name: 'subnet-id', Values: subnetIds }] })) {
      for (const s of page.Subnets ?? []) if (s.SubnetId && s.AvailabilityZone) azOf.set(s.SubnetId, s.AvailabilityZone);
    }
  }
  return Promise.all(raw.map(async ({ subnetIds: ids, ...g }) => {
    const hooks = (await d.asg.send(new DescribeLifecycleHooksCommand({ AutoScalingGroupName: g.name }))).LifecycleHooks ?? [];
    return {
      ...g, subnets: ids.map((subnetId) => ({ subnetId, az: azOf.get(subnetId) ?? null })),
      hooks: hooks.map((h) => ({ name: h.LifecycleHookName ?? '', transition: h.LifecycleTransition ?? '', heartbeatTimeoutSec: h.HeartbeatTimeout ?? 3600, defaultResult: h.DefaultResult ?? 'ABANDON' })),
    };
  }));
}

export async function readVolumes(d: DoctorReadClients, cluster: string): Promise<VolumeFacts[]> {
  const vols = await clusterVolumes(d.ec2, { tagCluster: d.tags.cluster, tagMember: d.tags.member, cluster });
  return vols.map(({ volumeId, az, state, memberTag, attachedTo, device }) => ({ volumeId, az, state, memberTag, attachedTo, device }))
    .sort((a, b) => (a.volumeId < b.volumeId ? -1 : 1));
}

export async function readTargetGroups(d: DoctorReadClients, cluster: string): Promise<TargetGroupFacts[]> {
  const arns = await findTargetGroups(d.elb, d.tags.cluster, cluster);
  if (arns.length === 0) return [];
  const groups = (await d.elb.send(new DescribeTargetGroupsCommand({ TargetGroupArns: arns }))).TargetGroups ?? [];
  return Promise.all(groups.filter((g) => g.TargetGroupArn).map(async (g) => ({
    arn: g.TargetGroupArn!, name: g.TargetGroupName ?? g.TargetGroupArn!, port: g.Port ?? null, protocol: g.Protocol ?? null,
    deregistrationDelaySec: await deregistrationDelaySec(d.elb, g.TargetGroupArn!),
    healthCheckIntervalSec: g.HealthCheckIntervalSeconds ?? null, healthyThreshold: g.HealthyThresholdCount ?? null,
  })));
}

/** The instances' state and tags, and their SSM agents (one paginated call each, not one per instance). */
export async function readInstances(d: DoctorReadClients, ids: readonly string[]): Promise<DoctorFacts['instances']> {
  const out: DoctorFacts['instances'] = {};
  if (ids.length === 0) return out;
  const agents = new Map<string, string>();
  await Promise.all([
    (async () => {
      for await (const page of paginateDescribeInstances({ client: d.ec2 }, { Filters: [{ Name: 'instance-id', Values: [...ids] }] })) {
        for (const r of page.Reservations ?? []) {
          for (const i of r.Instances ?? []) {
            if (!i.InstanceId) continue;
            out[i.InstanceId] = {
              instanceId: i.InstanceId, state: i.State?.Name ?? 'unknown', agent: 'not-registered',
              tags: Object.fromEntries((i.Tags ?? []).filter((t) => t.Key !== undefined).map((t) => [t.Key!, t.Value ?? ''])),
            };
          }
        }
      }
    })(),
    (async () => {
      for (let i = 0; i < ids.length; i += 50) {
        const Filters = [{ Key: 'InstanceIds', Values: ids.slice(i, i + 50) }];
        for await (const page of paginateDescribeInstanceInformation({ client: d.ssm }, { Filters })) {
          for (const x of page.InstanceInformationList ?? []) if (x.InstanceId) agents.set(x.InstanceId, x.PingStatus ?? 'unknown');
        }
      }
    })(),
  ]);
  for (const id of ids) out[id] = { ...(out[id] ?? { instanceId: id, state: 'gone', tags: {} }), agent: agents.get(id) ?? 'not-registered' };
  return out;
}

export async function readBackup(d: DoctorReadClients, bucket: string, kmsKeyId: string | undefined): Promise<BackupFacts> {
  const out: BackupFacts = { bucket, reachable: { ok: true }, encryption: null, kmsKeyId: kmsKeyId ?? null, keys: [] };
  try {
    await d.s3.send(new HeadBucketCommand({ Bucket: bucket }));
  } catch (err) {
    const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    out.reachable = { ok: false, error: status === 404 ? 'no such bucket' : status === 403 ? 'access denied' : errorText(err) };
    return out;
  }
  try {
    const rule = (await d.s3.send(new GetBucketEncryptionCommand({ Bucket: bucket }))).ServerSideEncryptionConfiguration?.Rules?.[0]?.ApplyServerSideEncryptionByDefault;
    out.encryption = rule?.SSEAlgorithm ? { algorithm: rule.SSEAlgorithm, keyId: rule.KMSMasterKeyID ?? null } : null;
  } catch (err) {
    if ((err as { name?: string }).name !== 'ServerSideEncryptionConfigurationNotFoundError') out.encryption = { error: errorText(err) };
  }
  const enc = out.encryption && 'algorithm' in out.encryption ? out.encryption : null;
  const keyIds = [...new Set([enc?.algorithm.startsWith('aws:kms') ? enc.keyId : null, kmsKeyId ?? null].filter((k): k is string => Boolean(k)))];
  out.keys = await Promise.all(keyIds.map(async (keyId) => {
    try {
      const m = (await d.kms.send(new DescribeKeyCommand({ KeyId: keyId }))).KeyMetadata;
      return { keyId, arn: m?.Arn ?? null, state: m?.KeyState ?? null };
    } catch (err) {
      return { keyId, arn: null, state: null, error: errorText(err) };
    }
  }));
  return out;
}

export async function readStack(d: DoctorReadClients, name: string): Promise<StackFacts> {
  const resources: StackResourceSummary[] = [];
  try {
    for await (const page of paginateListStackResources({ client: d.cfn }, { StackName: name })) resources.push(...(page.StackResourceSummaries ?? []));
  } catch (err) {
    return { name, error: errorText(err), functions: [], rules: [] };
  }
  const notFound = (err: unknown) => (err as { name?: string }).name === 'ResourceNotFoundException';
  const functions = await Promise.all(resources.filter((r) => r.ResourceType === 'AWS::Lambda::Function').map(async (r) => {
    const base = { logicalId: r.LogicalResourceId ?? '?', physicalId: r.PhysicalResourceId ?? null, resourceStatus: r.ResourceStatus ?? 'unknown' };
    if (!r.PhysicalResourceId) return { ...base, found: false };
    try {
      await d.lambda.send(new GetFunctionConfigurationCommand({ FunctionName: r.PhysicalResourceId }));
      return { ...base, found: true };
    } catch (err) {
      return { ...base, found: notFound(err) ? false : null, error: errorText(err) };
    }
  }));
  const rules = await Promise.all(resources.filter((r) => r.ResourceType === 'AWS::Events::Rule').map(async (r) => {
    const base = { logicalId: r.LogicalResourceId ?? '?', physicalId: r.PhysicalResourceId ?? null, resourceStatus: r.ResourceStatus ?? 'unknown' };
    if (!r.PhysicalResourceId) return { ...base, state: null };
    // A rule on a custom bus is `<bus>|<name>`.
    const [bus, ruleName] = r.PhysicalResourceId.includes('|') ? r.PhysicalResourceId.split('|', 2) : [undefined, r.PhysicalResourceId];
    try {
      const out = await d.events.send(new DescribeRuleCommand({ Name: ruleName, ...(bus ? { EventBusName: bus } : {}) }));
      return { ...base, state: out.State ?? null };
    } catch (err) {
      return { ...base, state: null, error: errorText(err) };
    }
  }));
  return { name, functions, rules };
}
