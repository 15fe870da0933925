/**
 * Lifecycle-hook waiting, which moto does not model: pending actions with tokens, the
 * EventBridge events AWS would emit for them (shaped as AWS documents them), and the
 * CONTINUE/ABANDON/heartbeat calls product code makes, recorded for tests to assert.
 *
 * An action begun with its hook's settings expires as AWS expires it: "If the heartbeat timeout
 * elapses, Amazon EC2 Auto Scaling applies the default result" (CONTINUE or ABANDON);
 * RecordLifecycleActionHeartbeat restarts the heartbeat timeout; and "the maximum amount of time
 * that you can keep an instance in a wait state is 48 hours or 100 times the heartbeat timeout,
 * whichever is smaller" (https://docs.aws.amazon.com/autoscaling/ec2/userguide/lifecycle-hooks-overview.html).
 * What the instance does once an action is settled (terminates, joins) is asg-model.ts.
 */
import { randomUUID } from 'node:crypto';
import type { Transition } from '../lib/aws/lifecycle';

export type { Transition } from '../lib/aws/lifecycle';

export interface PendingAction {
  token: string;
  asg: string;
  hook: string;
  instanceId: string;
  transition: Transition;
  origin?: string;
  destination?: string;
  startedAt: Date;
  heartbeats: number;
  /** The hook's HeartbeatTimeout and DefaultResult; absent = never expires (a bare recorded event). */
  hookConfig?: HookConfig;
  /** When the heartbeat timeout last (re)started. */
  lastBeatAt: Date;
}

export interface HookConfig {
  heartbeatTimeoutSec: number;
  defaultResult: 'CONTINUE' | 'ABANDON';
}

/** AWS's global limit on one wait state: 48 h or 100 × the heartbeat timeout, whichever is smaller. */
export function globalTimeoutSec(c: HookConfig): number {
  return Math.min(48 * 3600, 100 * c.heartbeatTimeoutSec);
}

/** How an action ended: a product call, or AWS applying the default result on expiry. */
export interface Settled {
  action: PendingAction;
  result: 'CONTINUE' | 'ABANDON';
  by: 'call' | 'heartbeat-timeout' | 'global-timeout';
}

export interface RecordedCall {
  at: Date;
  /** 'expire': AWS applied the hook's default result (no call was made). */
  kind: 'complete' | 'heartbeat' | 'expire';
  asg: string;
  hook: string;
  instanceId: string;
  token: string;
  result?: string;
  accepted: boolean;
  error?: string;
}

/** The EventBridge event AWS delivers for a lifecycle action. */
export interface LifecycleEvent {
  version: '0';
  id: string;
  'detail-type': 'EC2 Instance-launch Lifecycle Action' | 'EC2 Instance-terminate Lifecycle Action';
  source: 'aws.autoscaling';
  account: string;
  time: string;
  region: string;
  resources: string[];
  detail: {
    LifecycleActionToken: string;
    AutoScalingGroupName: string;
    LifecycleHookName: string;
    EC2InstanceId: string;
    LifecycleTransition: Transition;
    NotificationMetadata?: string;
    Origin?: string;
    Destination?: string;
  };
}

export class LifecycleModel {
  readonly pending = new Map<string, PendingAction>();
  readonly calls: RecordedCall[] = [];
  private readonly listeners: Array<(s: Settled) => void> = [];

  /** Called whenever an action is settled (completed by a call, or expired). */
  onSettled(fn: (s: Settled) => void): void {
    this.listeners.push(fn);
  }

  private settle(s: Settled): void {
    this.pending.delete(s.action.token);
    for (const fn of this.listeners) fn(s);
  }

  begin(a: { asg: string; hook: string; instanceId: string; transition: Transition; origin?: string; destination?: string; metadata?: string; region?: string; account?: string; hookConfig?: HookConfig }): LifecycleEvent {
    const token = randomUUID();
    const now = new Date();
    const action: PendingAction = { token, asg: a.asg, hook: a.hook, instanceId: a.instanceId, transition: a.transition, startedAt: now, lastBeatAt: now, heartbeats: 0 };
    if (a.hookConfig) action.hookConfig = a.hookConfig;
    if (a.origin !== undefined) action.origin = a.origin;
    if (a.destination !== undefined) action.destination = a.destination;
    this.pending.set(token, action);
    const region = a.region ?? 'us-east-1';
    const account = a.account ?? '123456789012';
    const launching = a.transition === 'autoscaling:EC2_INSTANCE_LAUNCHING';
    return {
      version: '0',
      id: randomUUID(),
      'detail-type': launching ? 'EC2 Instance-launch Lifecycle Action' : 'EC2 Instance-terminate Lifecycle Action',
      source: 'aws.autoscaling',
      account,
      time: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      region,
      resources: [`arn:aws:autoscaling:${region}:${account}:autoScalingGroup:${randomUUID()}:autoScalingGroupName/${a.asg}`],
      detail: {
        LifecycleActionToken: token,
        AutoScalingGroupName: a.asg,
        LifecycleHookName: a.hook,
        EC2InstanceId: a.instanceId,
        LifecycleTransition: a.transition,
        ...(a.metadata !== undefined ? { NotificationMetadata: a.metadata } : {}),
        Origin: a.origin ?? (launching ? 'EC2' : 'AutoScalingGroup'),
        Destination: a.destination ?? (launching ? 'AutoScalingGroup' : 'EC2'),
      },
    };
  }

  private find(p: { asg: string; hook: string; token?: string; instanceId?: string }): PendingAction | undefined {
    for (const a of this.pending.values()) {
      if (a.asg !== p.asg || a.hook !== p.hook) continue;
      if (p.token !== undefined && a.token === p.token) return a;
      if (p.token === undefined && p.instanceId !== undefined && a.instanceId === p.instanceId) return a;
    }
    return undefined;
  }

  /** Returns an error message (as AWS words it) or null when the call was accepted. */
  complete(p: { asg: string; hook: string; token?: string; instanceId?: string; result: string }): string | null {
    const a = this.find(p);
    const error = !['CONTINUE', 'ABANDON'].includes(p.result)
      ? `LifecycleActionResult must be CONTINUE or ABANDON`
      : a === undefined ? `No active Lifecycle Action found with token ${p.token ?? ''}${p.instanceId ? ` / instance ID ${p.instanceId}` : ''}` : null;
    this.calls.push({ at: new Date(), kind: 'complete', asg: p.asg, hook: p.hook, instanceId: a?.instanceId ?? p.instanceId ?? '', token: p.token ?? '', result: p.result, accepted: error === null, ...(error ? { error } : {}) });
    if (a && error === null) this.settle({ action: a, result: p.result as Settled['result'], by: 'call' });
    return error;
  }

  /** Applies the default result to every action whose heartbeat or global timeout has passed. */
  expire(now = new Date()): Settled[] {
    const out: Settled[] = [];
    for (const a of [...this.pending.values()]) {
      const c = a.hookConfig;
      if (!c) continue;
      const by = now.getTime() - a.startedAt.getTime() >= globalTimeoutSec(c) * 1000 ? 'global-timeout'
        : now.getTime() - a.lastBeatAt.getTime() >= c.heartbeatTimeoutSec * 1000 ? 'heartbeat-timeout' : null;
      if (!by) continue;
      this.calls.push({ at: now, kind: 'expire', asg: a.asg, hook: a.hook, instanceId: a.instanceId, token: a.token, result: c.defaultResult, accepted: true, error: by });
      const s: Settled = { action: a, result: c.defaultResult, by };
      out.push(s);
      this.settle(s);
    }
    return out;
  }

  /** Actions AWS settled on expiry (the product never answered in time). */
  expired(): RecordedCall[] {
    return this.calls.filter((c) => c.kind === 'expire');
  }

  heartbeat(p: { asg: string; hook: string; token?: string; instanceId?: string }): string | null {
    const a = this.find(p);
    const error = a === undefined ? `No active Lifecycle Action found with token ${p.token ?? ''}` : null;
    if (a) {
      a.heartbeats++;
      a.lastBeatAt = new Date();
    }
    this.calls.push({ at: new Date(), kind: 'heartbeat', asg: p.asg, hook: p.hook, instanceId: a?.instanceId ?? p.instanceId ?? '', token: p.token ?? '', accepted: error === null, ...(error ? { error } : {}) });
    return error;
  }

  /** Accepted completions for an instance, e.g. ['CONTINUE']. */
  results(instanceId: string): string[] {
    return this.calls.filter((c) => (c.kind === 'complete' || c.kind === 'expire') && c.accepted && c.instanceId === instanceId).map((c) => c.result ?? '');
  }

  clear(): void {
    this.pending.clear();
    this.calls.length = 0;
  }
}
