/**
 * What to do with an etcd volume still attached to another instance (the predecessor). Pure:
 * the one place the "never force-detach from a running master" rule is decided, used by the
 * replacement flow and by its dry run alike.
 */
export type PredecessorAction = 'force-detach' | 'wait-for-release' | 'refuse';

/** `ec2State`: EC2 state name or 'gone'; `asgState`: Auto Scaling lifecycle state or 'none'. */
export function predecessorAction(ec2State: string, asgState: string): PredecessorAction {
  if (['terminated', 'stopped', 'gone'].includes(ec2State)) return 'force-detach';
  // Retained by the ASG's instance lifecycle policy after an abandoned termination: it stays, running,
  // until someone calls TerminateInstanceInAutoScalingGroup — it will never release the volume
  // (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_RetentionTriggers.html).
  if (asgState === 'Terminating:Retained') return 'refuse';
  // Shutting down, or its retirement flow is running: it releases the volume cleanly.
  if (ec2State === 'shutting-down' || ec2State === 'stopping' || asgState.startsWith('Terminating')) return 'wait-for-release';
  return 'refuse';
}
