/** The API server target group (found by the cluster tag) and target registration. */
import {
  DeregisterTargetsCommand, DescribeTagsCommand, DescribeTargetGroupsCommand, DescribeTargetGroupAttributesCommand, DescribeTargetHealthCommand, type ElasticLoadBalancingV2Client, paginateDescribeTargetGroups,
  RegisterTargetsCommand, waitUntilTargetDeregistered, waitUntilTargetInService,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { type WaitOpts, waiterConfig } from './ec2';

export async function findTargetGroups(elb: ElasticLoadBalancingV2Client, tagKey: string, cluster: string): Promise<string[]> {
  const arns: string[] = [];
  for await (const page of paginateDescribeTargetGroups({ client: elb }, {})) for (const tg of page.TargetGroups ?? []) if (tg.TargetGroupArn) arns.push(tg.TargetGroupArn);
  const out: string[] = [];
  for (let i = 0; i < arns.length; i += 20) {
    const tags = await elb.send(new DescribeTagsCommand({ ResourceArns: arns.slice(i, i + 20) }));
    for (const d of tags.TagDescriptions ?? []) if (d.Tags?.some((t) => t.Key === tagKey && t.Value === cluster) && d.ResourceArn) out.push(d.ResourceArn);
  }
  return out;
}

/**
 * How long ELB registration plus the first health checks may take before a new target reads
 * healthy: it is `initial` while registering ("it can take a few minutes ... for health checks
 * to start"), then until it passed HealthyThresholdCount checks HealthCheckIntervalSeconds apart
 * (NLB defaults 30 s × 5; https://docs.aws.amazon.com/elasticloadbalancing/latest/network/target-group-health-checks.html).
 */
export const REGISTRATION_ALLOWANCE_SEC = 180;
/** The group's check interval, and how long its first checks take (interval × healthy threshold; NLB defaults). */
export async function healthChecks(elb: ElasticLoadBalancingV2Client, tg: string): Promise<{ intervalSec: number; checksSec: number }> {
  const g = (await elb.send(new DescribeTargetGroupsCommand({ TargetGroupArns: [tg] }))).TargetGroups?.[0];
  const intervalSec = g?.HealthCheckIntervalSeconds ?? 30;
  return { intervalSec, checksSec: intervalSec * (g?.HealthyThresholdCount ?? 5) };
}

/**
 * Registers and waits until healthy: never less long than registration plus the group's own
 * first health checks take, polling at least every half check interval (the waiters' backoff to
 * 15 s overshot a 10 s check by up to 12 s in bench-latency).
 */
export async function registerAndWait(elb: ElasticLoadBalancingV2Client, tg: string, instanceId: string, port: number, w: WaitOpts): Promise<void> {
  await elb.send(new RegisterTargetsCommand({ TargetGroupArn: tg, Targets: [{ Id: instanceId, Port: port }] }));
  const hc = await healthChecks(elb, tg);
  const poll = { ...w, maxWaitSec: Math.max(w.maxWaitSec, REGISTRATION_ALLOWANCE_SEC + hc.checksSec), maxDelaySec: Math.max(w.minDelaySec, Math.min(w.maxDelaySec, hc.intervalSec / 2)) };
  await waitUntilTargetInService(waiterConfig(elb, poll), { TargetGroupArn: tg, Targets: [{ Id: instanceId, Port: port }] });
}

/**
 * How long a target of `tg` drains after deregistration: its `deregistration_delay.timeout_seconds`
 * (0-3600, default 300). kube-apiserver holds watch connections open, so draining takes all of it
 * (https://docs.aws.amazon.com/elasticloadbalancing/latest/network/target-group-attributes.html#deregistration-delay).
 */
export async function deregistrationDelaySec(elb: ElasticLoadBalancingV2Client, tg: string): Promise<number> {
  const out = await elb.send(new DescribeTargetGroupAttributesCommand({ TargetGroupArn: tg }));
  const v = Number(out.Attributes?.find((a) => a.Key === 'deregistration_delay.timeout_seconds')?.Value ?? 300);
  return Number.isFinite(v) && v >= 0 ? v : 300;
}

/** Beyond the deregistration delay, how long the drain may take to be reported done. */
export const DRAIN_MARGIN_SEC = 60;

/**
 * Deregisters and waits for the drain: as long as the target group's deregistration delay plus a
 * margin (never less than `w.maxWaitSec`), so a drain that takes the whole delay is not a failure.
 * Level-triggered: a target that is no longer in the group is already where this step wants
 * it (ELBv2 may answer a second DeregisterTargets with InvalidTarget, which failed a re-run of
 * the retirement), and one already draining only needs the wait.
 */
export async function deregisterAndWait(elb: ElasticLoadBalancingV2Client, tg: string, instanceId: string, port: number, w: WaitOpts): Promise<void> {
  const all = await elb.send(new DescribeTargetHealthCommand({ TargetGroupArn: tg }));
  const mine = all.TargetHealthDescriptions?.find((d) => d.Target?.Id === instanceId && (d.Target.Port ?? port) === port);
  if (!mine || mine.TargetHealth?.State === 'unused') return;
  if (mine.TargetHealth?.State !== 'draining') await elb.send(new DeregisterTargetsCommand({ TargetGroupArn: tg, Targets: [{ Id: instanceId, Port: port }] }));
  const maxWaitSec = Math.max(w.maxWaitSec, (await deregistrationDelaySec(elb, tg)) + DRAIN_MARGIN_SEC);
  await waitUntilTargetDeregistered(waiterConfig(elb, { ...w, maxWaitSec }), { TargetGroupArn: tg, Targets: [{ Id: instanceId, Port: port }] });
}

/** Target health by instance in the cluster's API server target group; null without one. */
export async function targetHealth(elb: ElasticLoadBalancingV2Client, tagKey: string, cluster: string): Promise<Map<string, string> | null> {
  const tg = (await findTargetGroups(elb, tagKey, cluster))[0];
  if (!tg) return null;
  const r = await elb.send(new DescribeTargetHealthCommand({ TargetGroupArn: tg }));
  return new Map((r.TargetHealthDescriptions ?? []).map((d) => [d.Target?.Id ?? '', d.TargetHealth?.State ?? 'unknown']));
}
