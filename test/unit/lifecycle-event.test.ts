import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseLifecycleEvent } from '../../lib/events/lifecycle';
import { LifecycleModel } from '../../sandbox/lifecycle';

const sample = (name: string): unknown => JSON.parse(readFileSync(join(__dirname, '..', '..', 'events', name), 'utf8'));

describe('parseLifecycleEvent', () => {
  it('accepts the sample events and the sandbox-emitted ones', () => {
    expect(parseLifecycleEvent(sample('lifecycle-launch.json')).detail.LifecycleTransition).toBe('autoscaling:EC2_INSTANCE_LAUNCHING');
    expect(parseLifecycleEvent(sample('lifecycle-terminate.json')).detail.Destination).toBe('EC2');
    const emitted = new LifecycleModel().begin({ asg: 'a', hook: 'h', instanceId: 'i-0123456789abcdef0', transition: 'autoscaling:EC2_INSTANCE_TERMINATING', destination: 'WarmPool' });
    expect(parseLifecycleEvent(emitted).detail.Destination).toBe('WarmPool');
  });
  it('accepts older events without Origin/Destination', () => {
    const e = sample('lifecycle-launch.json') as { detail: Record<string, unknown> };
    delete e.detail.Origin;
    delete e.detail.Destination;
    expect(parseLifecycleEvent(e).detail.Origin).toBeUndefined();
  });
  it.each([
    ['a wrong source', (e: { source: string }) => { e.source = 'aws.ec2'; }, /source/],
    ['a hostile instance ID', (e: { detail: Record<string, unknown> }) => { e.detail.EC2InstanceId = 'i-1;reboot'; }, /EC2InstanceId/],
    ['a number as token', (e: { detail: Record<string, unknown> }) => { e.detail.LifecycleActionToken = 42; }, /LifecycleActionToken/],
    ['an unknown transition', (e: { detail: Record<string, unknown> }) => { e.detail.LifecycleTransition = 'autoscaling:TEST_NOTIFICATION'; }, /LifecycleTransition/],
    ['a huge metadata blob', (e: { detail: Record<string, unknown> }) => { e.detail.NotificationMetadata = 'x'.repeat(100_000); }, /NotificationMetadata/],
  ])('rejects %s with a message naming the field', (_what, mutate, field) => {
    const e = sample('lifecycle-launch.json') as never;
    (mutate as (x: never) => void)(e);
    expect(() => parseLifecycleEvent(e)).toThrow(field);
  });
});
