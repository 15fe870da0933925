/**
 * A launch INTO the warm pool (`Destination: WarmPool`: the instance enters Warmed:Pending:Wait
 * and is parked, stopped or running, until the group needs it). It does not join the cluster:
 * the member's volume stays on the live master. CONTINUE at once and touch nothing — no SSM
 * command, no volume change, no alert. The launch OUT of the pool (`Origin: WarmPool`) is a
 * normal replacement.
 * (https://docs.aws.amazon.com/autoscaling/ec2/userguide/warm-pool-instance-lifecycle.html)
 */
import type { HookRef } from '../aws/lifecycle';
import type { FlowDeps } from './deps';
import { completeHookStep } from './hook-step';
import { FlowRun } from './run';
import { runSteps } from './steps';

interface S { readonly deps: Pick<FlowDeps, 'lifecycle'>; readonly hook: HookRef }

const parkSteps = [completeHookStep<S>('no lifecycle hook')];

export async function parkInWarmPool(deps: Pick<FlowDeps, 'lifecycle' | 'clock' | 'progress' | 'timings' | 'signal'>, hook: HookRef): Promise<{ result: 'continued'; reason: string }> {
  await runSteps(new FlowRun(deps, { owner: hook.instanceId }), { deps, hook }, parkSteps);
  return { result: 'continued', reason: 'launched into the warm pool: parked, nothing attached or changed' };
}
