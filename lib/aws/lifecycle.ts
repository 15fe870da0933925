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

/** The name of the ASG's launch lifecycle hook (to complete an action whose event was lost). */
export async function launchHookOf(asg: AutoScalingClient, asgName: string): Promise<string | null> {
  const out = await asg.send(new DescribeLifecycleHooksCommand({ AutoScalingGroupName: asgName }));
  return out.LifecycleHooks?.find((h) => h.LifecycleTransition === 'autoscaling:EC2_INSTANCE_LAUNCHING')?.LifecycleHookName ?? null;
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

/** The instance's Auto Scaling lifecycle state (`InService`, `Terminating:Wait`, …), or 'none' outside any ASG. */
export async function asgLifecycleState(asg: AutoScalingClient, instanceId: string): Promise<string> {
  const out = await asg.send(new DescribeAutoScalingInstancesCommand({ InstanceIds: [instanceId] }));
  return out.AutoScalingInstances?.[0]?.LifecycleState ?? 'none';
}
