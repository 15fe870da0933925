/**
 * `quorum-keeper doctor`: gathers everything Quorum Keeper relies on as plain facts, then the
 * pure `judge` (lib/domain/doctor.ts) turns them into pass / warn / fail / skip checks with fixes.
 * Read-only: describe calls, and on each master whose SSM agent is online two read-only host
 * scripts side by side (`etcd-member.sh status`: host.env, this host's URLs and etcd, its member's
 * health over its own TLS settings; `etcd-mount.sh --inspect`: the volume's device, what is
 * mounted, the marker), plus one survey of the cluster through the first master that answers.
 */
import {
  type AutoScalingClient, type AutoScalingGroup, DescribeLifecycleHooksCommand, paginateDescribeAutoScalingGroups,
} from '@aws-sdk/client-auto-scaling';
import { type CloudFormationClient, paginateListStackResources, type StackResourceSummary } from '@aws-sdk/client-cloudformation';
import { type EC2Client, paginateDescribeInstances, paginateDescribeSubnets } from '@aws-sdk/client-ec2';
import { clusterVolumes } from '../aws/ec2';
import { DescribeTargetGroupsCommand, type ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { DescribeRuleCommand, type EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { DescribeKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { GetFunctionConfigurationCommand, type LambdaClient } from '@aws-sdk/client-lambda';
import { GetBucketEncryptionCommand, HeadBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { paginateDescribeInstanceInformation, type SSMClient } from '@aws-sdk/client-ssm';
import { z } from 'zod';
import { deregistrationDelaySec, findTargetGroups } from '../aws/lb';
import { lastLine, outputTruncated, runHostScript, type RunOptions } from '../aws/run-command';
import { type Clock, wallNow } from '../clock';
import {
  type AsgFacts, type BackupFacts, type Check, type DoctorFacts, type DoctorSummary, type EtcdFacts, type HostFacts, type HostStatusFacts, type InspectFacts,
  judge, masterSlots, type StackFacts, summarise, type TargetGroupFacts, type VolumeFacts,
} from '../domain/doctor';
import type { HostScriptBundle } from '../host/command';
import { hostRunOpts, type HostFlowDeps } from './deps';
import type { ObservePorts } from '../observe/ports';

export interface DoctorDeps {
  /** The member IDs recorded per slot (absent: no state table). */
  recordedIds?: (cluster: string, slots: readonly string[]) => Promise<Record<string, string>>;
  /** etcd as the observation reads it (the survey, certificates included). */
  etcd: ObservePorts['etcd'];
  asg: AutoScalingClient;
  ec2: EC2Client;
  elb: ElasticLoadBalancingV2Client;
  ssm: SSMClient;
  s3: S3Client;
  kms: KMSClient;
  cfn: CloudFormationClient;
  events: EventBridgeClient;
  lambda: LambdaClient;
  scripts: HostScriptBundle;
  clock: Clock;
  tags: { cluster: string; member: string };
  timings: HostFlowDeps['timings'];
  signal?: AbortSignal;
}

export interface DoctorOptions {
  /** The backup bucket (and --kms-key-id): checked only when given. */
  bucket?: string;
  kmsKeyId?: string;
  /** The deployed stack: its functions and rules are checked only when given. */
  stack?: string;
}

export interface DoctorReport {
  cluster: string;
  at: string;
  /** No check failed (warnings allowed). */
  ok: boolean;
  summary: DoctorSummary;
  checks: Check[];
}

const errorText = (err: unknown): string => {
  const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const msg = e.message && e.message !== 'UnknownError' ? e.message : `HTTP ${e.$metadata?.httpStatusCode ?? '?'}`;
  return e.name && e.name !== 'Error' && !msg.startsWith(e.name) ? `${e.name}: ${msg}` : msg;
};

// --- AWS facts ---------------------------------------------------------------------------------

function asgFacts(g: AutoScalingGroup, tags: DoctorDeps['tags']): Omit<AsgFacts, 'hooks' | 'subnets'> & { subnetIds: string[] } {
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
async function readAsgs(d: DoctorDeps, cluster: string): Promise<AsgFacts[]> {
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

async function readVolumes(d: DoctorDeps, cluster: string): Promise<VolumeFacts[]> {
  const vols = await clusterVolumes(d.ec2, { tagCluster: d.tags.cluster, tagMember: d.tags.member, cluster });
  return vols.map(({ volumeId, az, state, memberTag, attachedTo, device }) => ({ volumeId, az, state, memberTag, attachedTo, device }))
    .sort((a, b) => (a.volumeId < b.volumeId ? -1 : 1));
}

async function readTargetGroups(d: DoctorDeps, cluster: string): Promise<TargetGroupFacts[]> {
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
async function readInstances(d: DoctorDeps, ids: readonly string[]): Promise<DoctorFacts['instances']> {
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

// --- host facts --------------------------------------------------------------------------------

const statusSchema = z.object({
  running: z.boolean(), healthy: z.boolean(), peerUrl: z.string(), clientUrl: z.string(),
  etcdVersion: z.string().nullable().default(null), serverVersion: z.string().nullable().default(null), clusterVersion: z.string().nullable().default(null),
});
const inspectSchema = z.object({
  result: z.literal('inspected'), volumeId: z.string(), device: z.string().nullable(), mountedDevice: z.string().nullable(), onVolume: z.boolean(),
  mountPoint: z.string(), dataDir: z.string(), hasData: z.boolean(),
  marker: z.object({ cluster: z.string(), member: z.string(), volume: z.string(), memberId: z.string() }).nullable(),
});

/** A host script's one-line JSON answer, parsed; its failure as text (the script's own stderr says why). */
async function hostJson<T>(d: DoctorDeps, instanceId: string, script: 'etcd-member.sh' | 'etcd-mount.sh', args: string[], schema: z.ZodType<T>, opts: RunOptions): Promise<{ ok: true; value: T } | { ok: false; error: string }> {
  try {
    const res = await runHostScript(d.ssm, d.scripts, instanceId, script, args, opts);
    if (res.exitCode !== 0) return { ok: false, error: `${script} ${args[0]} ${res.exitCode === -1 ? `did not finish (SSM ${res.status})` : `exit ${res.exitCode}`}: ${lastLine(res.stderr) || 'no error output'}` };
    if (outputTruncated(res)) return { ok: false, error: `${script} ${args[0]}: answer truncated by SSM` };
    return { ok: true, value: schema.parse(JSON.parse(lastLine(res.stdout))) };
  } catch (err) {
    return { ok: false, error: `${script} ${args[0]}: ${errorText(err)}` };
  }
}

async function readHost(d: DoctorDeps, cluster: string, member: string, instanceId: string, volume: VolumeFacts | null, opts: RunOptions): Promise<HostFacts> {
  // The device hint only for the volume EC2 says is attached here: another volume at that name is not this one.
  const device = volume && volume.attachedTo === instanceId && volume.device && /^\/dev\/(xvd|sd)[a-z]{1,2}$/.test(volume.device) ? ['--device', volume.device] : [];
  const [status, inspect] = await Promise.all([
    hostJson(d, instanceId, 'etcd-member.sh', ['status'], statusSchema, opts),
    volume ? hostJson(d, instanceId, 'etcd-mount.sh', ['--inspect', '--volume-id', volume.volumeId, '--cluster', cluster, '--member', member, ...device], inspectSchema, opts) : Promise.resolve(null),
  ]);
  const st: HostStatusFacts = status.ok ? { ok: true, ...status.value } : status;
  const ins: InspectFacts | null = inspect === null ? null : inspect.ok
    ? { ok: true, ...inspect.value, marker: inspect.value.marker && { ...inspect.value.marker } }
    : inspect;
  return { instanceId, status: st, inspect: ins };
}

async function readEtcd(d: DoctorDeps, candidates: Array<{ instanceId: string; member: string }>, opts: RunOptions): Promise<EtcdFacts> {
  const e = await d.etcd.survey(candidates, { certs: true }, opts.abortSignal ? { signal: opts.abortSignal } : {});
  const members = e.members ?? [];
  return {
    via: e.members ? e.via?.member ?? null : null, quorum: e.membersFrom === 'quorum', tried: e.tried,
    members: members.map((m) => ({ id: m.id, name: m.name, peerUrls: m.peerUrls, clientUrls: m.clientUrls, isLearner: m.isLearner })),
    statuses: e.status.statuses.map((s) => ({ memberId: s.memberId, endpoint: s.endpoint, version: s.version, isLeader: s.isLeader })),
    unreachable: e.status.unreachable,
    clusterVersion: e.clusterVersion,
    certs: e.certs.length ? e.certs : null,
    errors: e.errors,
  };
}

// --- backups and the stack (optional) ----------------------------------------------------------

async function readBackup(d: DoctorDeps, bucket: string, kmsKeyId: string | undefined): Promise<BackupFacts> {
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

async function readStack(d: DoctorDeps, name: string): Promise<StackFacts> {
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

// --- the flow ----------------------------------------------------------------------------------

export async function gatherDoctorFacts(d: DoctorDeps, cluster: string, o: DoctorOptions = {}): Promise<DoctorFacts> {
  const opts = hostRunOpts(d, 60);
  // Everything that needs nothing else starts at once; the host commands start as soon as the
  // slots (and, for the volume inspection, the volumes) are known.
  const volumesP = readVolumes(d, cluster);
  const restP = Promise.all([
    readTargetGroups(d, cluster), o.bucket ? readBackup(d, o.bucket, o.kmsKeyId) : Promise.resolve(null), o.stack ? readStack(d, o.stack) : Promise.resolve(null),
  ]);
  volumesP.catch(() => undefined);
  restP.catch(() => undefined);
  const asgs = await readAsgs(d, cluster);
  const slots = masterSlots(asgs);
  const withInstance = slots.filter((s) => s.instanceId).map((s) => ({ member: s.member, instanceId: s.instanceId! }));
  const etcdP = readEtcd(d, withInstance, opts);
  etcdP.catch(() => undefined);
  const [instances, recordedIds, volumes] = await Promise.all([
    readInstances(d, withInstance.map((s) => s.instanceId)),
    d.recordedIds ? d.recordedIds(cluster, slots.map((s) => s.member)) : Promise.resolve(null),
    volumesP,
  ]);
  const online = withInstance.filter((s) => instances[s.instanceId]?.agent === 'Online');
  const hosts: Record<string, HostFacts> = {};
  await Promise.all(online.map(async (s) => {
    const mine = volumes.filter((v) => v.memberTag === s.member);
    hosts[s.member] = await readHost(d, cluster, s.member, s.instanceId, mine.length === 1 ? mine[0]! : null, opts);
  }));
  const [etcd, [targetGroups, backup, stack]] = await Promise.all([etcdP, restP]);
  return {
    cluster, tags: { cluster: d.tags.cluster, member: d.tags.member }, now: await wallNow(d.clock),
    asgs, volumes, targetGroups, instances, hosts, etcd, recordedIds, backup, stack,
  };
}

/** The checks, judged from the facts gathered now. */
export async function doctor(d: DoctorDeps, cluster: string, o: DoctorOptions = {}): Promise<DoctorReport> {
  const facts = await gatherDoctorFacts(d, cluster, o);
  const checks = judge(facts);
  const summary = summarise(checks);
  return { cluster, at: new Date(facts.now).toISOString(), ok: summary.fail === 0, summary, checks };
}
