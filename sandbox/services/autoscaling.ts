/**
 * Auto Scaling lifecycle actions, which moto does not implement (HTTP 500):
 * CompleteLifecycleAction and RecordLifecycleActionHeartbeat are answered from the sandbox's
 * LifecycleModel (and recorded there), and instances with a pending action read
 * Pending:Wait / Terminating:Wait as on AWS.
 */
import { type Handler, type ParsedRequest, queryError, queryOk, type Reply, type Routes } from '../protocol';
import type { SandboxState } from './state';

export function autoscalingRoutes(sb: SandboxState, forward: Handler): Routes {
  return {
    'autoscaling:CompleteLifecycleAction': (r) => Promise.resolve(completeLifecycleAction(sb, r)),
    'autoscaling:RecordLifecycleActionHeartbeat': (r) => Promise.resolve(recordHeartbeat(sb, r)),
    'autoscaling:DescribeAutoScalingInstances': (r) => withWaitStates(sb, forward, r),
    'autoscaling:DescribeAutoScalingGroups': (r) => withWaitStates(sb, forward, r),
  };
}

/** The lifecycle action a call names: its group and hook, and its token or instance. */
function actionOf(f: URLSearchParams): { asg: string; hook: string; token?: string; instanceId?: string } {
  const token = f.get('LifecycleActionToken') ?? undefined;
  const instanceId = f.get('InstanceId') ?? undefined;
  return {
    asg: f.get('AutoScalingGroupName') ?? '', hook: f.get('LifecycleHookName') ?? '',
    ...(token !== undefined ? { token } : {}), ...(instanceId !== undefined ? { instanceId } : {}),
  };
}

function completeLifecycleAction(sb: SandboxState, r: ParsedRequest): Reply {
  const f = r.form ?? new URLSearchParams();
  const error = sb.lifecycle.complete({ ...actionOf(f), result: f.get('LifecycleActionResult') ?? '' });
  return error ? queryError('ValidationError', error) : queryOk('CompleteLifecycleAction');
}

function recordHeartbeat(sb: SandboxState, r: ParsedRequest): Reply {
  const error = sb.lifecycle.heartbeat(actionOf(r.form ?? new URLSearchParams()));
  return error ? queryError('ValidationError', error) : queryOk('RecordLifecycleActionHeartbeat');
}

/**
 * moto puts every ASG instance InService at once; while a lifecycle action is pending AWS
 * reports Pending:Wait / Terminating:Wait. Rewrite LifecycleState for those instances.
 */
async function withWaitStates(sb: SandboxState, forward: Handler, r: ParsedRequest): Promise<Reply> {
  const reply = await forward(r);
  if (reply.status !== 200 || sb.lifecycle.pending.size === 0) return reply;
  const states = new Map<string, string>();
  for (const a of sb.lifecycle.pending.values()) states.set(a.instanceId, a.transition === 'autoscaling:EC2_INSTANCE_LAUNCHING' ? 'Pending:Wait' : 'Terminating:Wait');
  // Innermost <member> blocks: one per instance, in both DescribeAutoScalingInstances and the
  // Instances list of DescribeAutoScalingGroups.
  const xml = reply.body.toString().replace(/<member>((?:(?!<member>)[\s\S])*?)<\/member>/g, (block, inner: string) => {
    const id = /<InstanceId>([^<]+)<\/InstanceId>/.exec(inner)?.[1];
    const state = id ? states.get(id) : undefined;
    return state ? block.replace(/<LifecycleState>[^<]*<\/LifecycleState>/, `<LifecycleState>${state}</LifecycleState>`) : block;
  });
  return { ...reply, body: xml };
}
