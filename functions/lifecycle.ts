/**
 * Lambda entry for Auto Scaling lifecycle events (EventBridge). Thin: validate config and
 * event, find the master slot from the ASG's tags, hand over to the flow.
 *
 * Status: the replacement/retirement flows land with issue #4. Until then this handler
 * validates and classifies events only, and serverless.yml wires no event source to it.
 */
import middy from '@middy/core';
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { autoScalingClient } from '../lib/aws/clients';
import { loadConfig } from '../lib/config';
import { parseLifecycleEvent } from '../lib/events/lifecycle';
import { findMasterSlot } from '../lib/flows/master-slot';

const config = loadConfig();
const logger = new Logger({ serviceName: 'quorum-keeper-lifecycle' });
const asg = autoScalingClient(config);

export interface LifecycleResult {
  outcome: 'ignored' | 'accepted';
  reason?: string;
  cluster?: string;
  member?: string;
}

async function lifecycle(input: unknown): Promise<LifecycleResult> {
  const event = parseLifecycleEvent(input);
  const { AutoScalingGroupName: asgName, EC2InstanceId: instanceId, LifecycleTransition: transition } = event.detail;
  const found = await findMasterSlot(asg, asgName, { cluster: config.QK_TAG_CLUSTER, member: config.QK_TAG_MEMBER });
  if (found.kind === 'not-a-master') {
    logger.info('ignoring lifecycle event for an ASG that is not a Quorum Keeper master', { asg: asgName, instanceId, reason: found.reason });
    return { outcome: 'ignored', reason: found.reason };
  }
  logger.info('lifecycle event for a master slot', { ...found.slot, instanceId, transition });
  return { outcome: 'accepted', cluster: found.slot.cluster, member: found.slot.member };
}

export const handler = middy(lifecycle).use(injectLambdaContext(logger));
