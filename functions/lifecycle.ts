/**
 * Lambda entry for Auto Scaling lifecycle events (EventBridge). Thin: validate configuration
 * and the event, find the master slot from the ASG's tags, run the replacement (launch) or
 * retirement (terminate) flow. ASGs that are not Quorum Keeper masters are ignored.
 *
 * A run that dies (timeout, crash) is safe to repeat: EventBridge retries the async invocation
 * and every step is level-triggered; the reconciler (issue 7) re-drives what is still pending.
 */
import middy from '@middy/core';
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { flowDeps } from '../lib/compose';
import { loadFlowConfig } from '../lib/config';
import { parseLifecycleEvent } from '../lib/events/lifecycle';
import { findMasterSlot } from '../lib/flows/master-slot';
import { replaceMaster } from '../lib/flows/replacement';
import { retireMaster } from '../lib/flows/retirement';
import { parkInWarmPool } from '../lib/flows/warm-pool';
import { ALL_CLIENTS } from '../lib/aws/clients';
import { lambdaRoot, withSignal } from './root';

const config = loadFlowConfig();
const logger = new Logger({ serviceName: 'quorum-keeper-lifecycle' });
const metrics = new Metrics({ namespace: 'QuorumKeeper', serviceName: 'lifecycle' });
// Replacement and retirement touch every client (volumes, load balancer, backups before a seed).
const root = lambdaRoot(config, logger, ALL_CLIENTS);

export interface LifecycleResult {
  outcome: 'ignored' | 'continued' | 'abandoned' | 'held' | 'failed' | 'busy' | 'awaiting-dr';
  reason?: string;
  cluster?: string;
  member?: string;
}

async function lifecycle(input: unknown, _context: unknown, opts?: { signal?: AbortSignal }): Promise<LifecycleResult> {
  const event = parseLifecycleEvent(input);
  const d = event.detail;
  const found = await findMasterSlot(root.clients.asg, d.AutoScalingGroupName, root.tags);
  if (found.kind === 'not-a-master') {
    logger.info('ignoring lifecycle event for an ASG that is not a Quorum Keeper master', { asg: d.AutoScalingGroupName, instanceId: d.EC2InstanceId, reason: found.reason });
    return { outcome: 'ignored', reason: found.reason };
  }
  const { slot } = found;
  logger.appendKeys({ cluster: slot.cluster, member: slot.member, instanceId: d.EC2InstanceId, transition: d.LifecycleTransition });
  const hook = { asg: d.AutoScalingGroupName, hook: d.LifecycleHookName, token: d.LifecycleActionToken, instanceId: d.EC2InstanceId };
  // middy aborts `signal` shortly before the Lambda deadline: the flow then stops between steps
  // and the invocation fails, so EventBridge retries it and the next run resumes.
  const run = withSignal(flowDeps(root), opts?.signal);
  const launching = d.LifecycleTransition === 'autoscaling:EC2_INSTANCE_LAUNCHING';
  const out = launching && d.Destination === 'WarmPool'
    ? await parkInWarmPool(run, hook)
    : launching
      ? await replaceMaster(run, { slot, instanceId: d.EC2InstanceId, hook })
      : await retireMaster(run, { slot, instanceId: d.EC2InstanceId, hook, ...(d.Destination ? { destination: d.Destination } : {}) });
  logger.info(`lifecycle flow ended: ${out.result}`, { result: out.result, step: 'step' in out ? out.step : undefined, reason: out.reason });
  // The per-cluster flow-failures alarm (deploy/alarms.js) watches this; logMetrics flushes it.
  metrics.addDimension('Cluster', slot.cluster);
  metrics.addMetric('FlowFailures', MetricUnit.Count, out.result === 'failed' || out.result === 'abandoned' || out.result === 'awaiting-dr' ? 1 : 0);
  return { outcome: out.result, cluster: slot.cluster, member: slot.member, ...(out.reason ? { reason: out.reason } : {}) };
}

export const handler = middy(lifecycle, { timeoutEarlyInMillis: 30_000 }).use(injectLambdaContext(logger)).use(logMetrics(metrics));
