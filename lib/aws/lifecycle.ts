/** Lifecycle-hook calls: complete (CONTINUE / ABANDON) and heartbeat. */
import {
  type AutoScalingClient, CompleteLifecycleActionCommand, DescribeAutoScalingInstancesCommand, DescribeLifecycleHooksCommand, RecordLifecycleActionHeartbeatCommand,
} from '@aws-sdk/client-auto-scaling';

export interface HookRef {
  asg: string;
  hook: string;
  /** The event's token; absent when re-driven by the reconciler (AWS then matches on InstanceId). */
  token?: string;
  instanceId: string;
}

export type Transition = 'autoscaling:EC2_INSTANCE_LAUNCHING' | 'autoscaling:EC2_INSTANCE_TERMINATING';

export interface HookSettings {
  name: string;
  /** AWS: 30–7200 s; default 3600. */
  heartbeatTimeoutSec: number;
  defaultResult: 'CONTINUE' | 'ABANDON';
}

/** The ASG's lifecycle hook for `transition`, with its timeout and default result (null: none). */
export async function hookOf(asg: AutoScalingClient, asgName: string, transition: Transition): Promise<HookSettings | null> {
  const out = await asg.send(new DescribeLifecycleHooksCommand({ AutoScalingGroupName: asgName }));
  const h = out.LifecycleHooks?.find((x) => x.LifecycleTransition === transition);
  if (!h?.LifecycleHookName) return null;
  return { name: h.LifecycleHookName, heartbeatTimeoutSec: h.HeartbeatTimeout ?? 3600, defaultResult: h.DefaultResult === 'CONTINUE' ? 'CONTINUE' : 'ABANDON' };
}

/**
 * How long one wait state may last at most, whatever the heartbeats: "48 hours or 100 times the
 * heartbeat timeout, whichever is smaller"
 * (https://docs.aws.amazon.com/autoscaling/ec2/userguide/lifecycle-hooks-overview.html).
 */
export function hookGlobalTimeoutSec(heartbeatTimeoutSec: number): number {
  return Math.min(48 * 3600, 100 * heartbeatTimeoutSec);
}

/** Heartbeats often enough for the hook: a third of its timeout, at most every 30 s. */
export function beatEveryMsFor(heartbeatTimeoutSec: number): number {
  return Math.min(30_000, Math.max(1000, Math.floor((heartbeatTimeoutSec * 1000) / 3)));
}

/** Result: 'done', or 'gone' when AWS no longer knows the action (completed before, or expired). */
export async function completeLifecycle(asg: AutoScalingClient, ref: HookRef, result: 'CONTINUE' | 'ABANDON'): Promise<'done' | 'gone'> {
  try {
    await asg.send(new CompleteLifecycleActionCommand({
      AutoScalingGroupName: ref.asg, LifecycleHookName: ref.hook, LifecycleActionToken: ref.token, InstanceId: ref.instanceId, LifecycleActionResult: result,
    }));
    return 'done';
  } catch (err) {
    if ((err as { name?: string }).name === 'ValidationError' && /No active Lifecycle Action/i.test(String((err as Error).message))) return 'gone';
    throw err;
  }
}

export async function heartbeat(asg: AutoScalingClient, ref: HookRef): Promise<'done' | 'gone'> {
  try {
    await asg.send(new RecordLifecycleActionHeartbeatCommand({ AutoScalingGroupName: ref.asg, LifecycleHookName: ref.hook, LifecycleActionToken: ref.token, InstanceId: ref.instanceId }));
    return 'done';
  } catch (err) {
    if ((err as { name?: string }).name === 'ValidationError' && /No active Lifecycle Action/i.test(String((err as Error).message))) return 'gone';
    throw err;
  }
}

/** The instance's Auto Scaling group and lifecycle state (`InService`, `Terminating:Wait`, …); null outside any ASG. */
export async function asgInstance(asg: AutoScalingClient, instanceId: string): Promise<{ group: string; state: string } | null> {
  const out = await asg.send(new DescribeAutoScalingInstancesCommand({ InstanceIds: [instanceId] }));
  const i = out.AutoScalingInstances?.[0];
  return i ? { group: i.AutoScalingGroupName ?? '', state: i.LifecycleState ?? 'unknown' } : null;
}

