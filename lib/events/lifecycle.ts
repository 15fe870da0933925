/** EventBridge events for Auto Scaling lifecycle actions, validated at the edge. */
import { z } from 'zod';
import { patterns } from '../validate';

const detail = z.object({
  LifecycleActionToken: z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'not a lifecycle action token'),
  AutoScalingGroupName: z.string().min(1).max(255).regex(/^[\x20-\x7e]+$/, 'printable ASCII only'),
  LifecycleHookName: z.string().min(1).max(255).regex(/^[A-Za-z0-9\-_/]+$/, 'not a lifecycle hook name'),
  EC2InstanceId: z.string().regex(patterns.instanceId, 'not an EC2 instance ID'),
  LifecycleTransition: z.enum(['autoscaling:EC2_INSTANCE_LAUNCHING', 'autoscaling:EC2_INSTANCE_TERMINATING']),
  NotificationMetadata: z.string().max(1023).optional(),
  /** Absent in older events. */
  Origin: z.enum(['EC2', 'AutoScalingGroup', 'WarmPool']).optional(),
  Destination: z.enum(['EC2', 'AutoScalingGroup', 'WarmPool']).optional(),
});

export const lifecycleEventSchema = z.object({
  source: z.literal('aws.autoscaling'),
  'detail-type': z.enum(['EC2 Instance-launch Lifecycle Action', 'EC2 Instance-terminate Lifecycle Action']),
  id: z.string().max(128),
  time: z.string().max(64),
  region: z.string().max(32),
  account: z.string().regex(/^\d{12}$/),
  detail,
});

export type LifecycleEvent = z.infer<typeof lifecycleEventSchema>;

export class EventValidationError extends Error {
  override readonly name = 'EventValidationError';
}

/** EventBridge delivers events of at most 256 KB: anything bigger did not come from it. */
export const MAX_EVENT_BYTES = 256 * 1024;

export function parseLifecycleEvent(input: unknown): LifecycleEvent {
  // Unknown fields are ignored (AWS adds fields over time), so size is checked on its own.
  const size = Buffer.byteLength(JSON.stringify(input) ?? '');
  if (size > MAX_EVENT_BYTES) throw new EventValidationError(`not a valid Auto Scaling lifecycle event: ${size} bytes, larger than any EventBridge event (${MAX_EVENT_BYTES})`);
  const r = lifecycleEventSchema.safeParse(input);
  if (!r.success) {
    throw new EventValidationError(`not a valid Auto Scaling lifecycle event: ${r.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  }
  return r.data;
}
