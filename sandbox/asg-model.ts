/**
 * What an Auto Scaling group does around its lifecycle hooks, which moto does not model (moto
 * replaces a terminated instance at once and has no lifecycle actions or instance refreshes):
 *
 * - a termination with a terminate hook waits in Terminating:Wait until the action is settled —
 *   by CompleteLifecycleAction (CONTINUE or ABANDON: "for instances in Terminating:Wait, both
 *   CONTINUE and ABANDON let the instance terminate") or by expiry (the hook's DefaultResult) —
 *   and only then does the instance terminate and, the group being below its desired capacity,
 *   a replacement launch;
 * - a launch with a launch hook waits in Pending:Wait; CONTINUE puts it InService, ABANDON (or
 *   expiry into ABANDON) terminates it and the group launches another;
 * - an instance refresh of a one-instance group (min = max = 1, the default MinHealthyPercentage
 *   90 leaves no room to launch first) terminates the instance first, through its terminate hook,
 *   then launches the replacement, through its launch hook, and succeeds once that is InService
 *   (https://docs.aws.amazon.com/autoscaling/ec2/userguide/instance-refresh-overview.html).
 *
 * Every lifecycle action begun here carries its hook's HeartbeatTimeout and DefaultResult, read
 * from the hook, so it expires as on AWS (lifecycle.ts). Its EventBridge event goes to `deliver`
 * (a test wires the lifecycle Lambda there) or, with none set, to `undelivered`.
 */
import { randomUUID } from 'node:crypto';
import { type AutoScalingClient, DescribeAutoScalingGroupsCommand } from '@aws-sdk/client-auto-scaling';
import { type EC2Client, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { hookOf } from '../lib/aws/lifecycle';
import type { SandboxHost } from './host';
import type { HookConfig, LifecycleEvent, LifecycleModel, Settled, Transition } from './lifecycle';

export interface InstanceRefresh {
  id: string;
  asg: string;
  status: 'InProgress' | 'Successful' | 'Failed';
  statusReason: string;
  startedAt: Date;
  endedAt: Date | null;
  /** The instance the refresh replaced, and its replacement once launched. */
  from: string;
  to: string | null;
}

const TERMINATING: Transition = 'autoscaling:EC2_INSTANCE_TERMINATING';
const LAUNCHING: Transition = 'autoscaling:EC2_INSTANCE_LAUNCHING';

export class AsgModel {
  /** Where EventBridge delivers lifecycle events (fire and forget, like an async invocation). */
  deliver: ((e: LifecycleEvent) => void) | null = null;
  readonly undelivered: LifecycleEvent[] = [];
  readonly refreshes = new Map<string, InstanceRefresh>();
  /** Tokens of the actions this model began: their settlement moves the instance on. */
  private readonly driven = new Map<string, string>();
  private readonly settledWaiters = new Map<string, (s: Settled) => void>();
  private readonly timer: NodeJS.Timeout;
  /**
   * States AWS shows between a settled action and the next one, which moto skips: an instance
   * whose terminate action settled is `Terminating:Proceed` until it is gone (moto would show it
   * InService again meanwhile), and a replacement moto launched is `Pending` until its launch
   * action begins. Keyed by instance ID; `launchingInto` holds, per group, the instances it had
   * before the launch, so the gateway knows which one is new.
   */
  readonly between = new Map<string, string>();
  readonly launchingInto = new Map<string, Set<string>>();
  /** Bumped by clear() and close(): refreshes of an earlier world stop. */
  private generation = 0;

  constructor(
    private readonly lifecycle: LifecycleModel,
    private readonly asg: AutoScalingClient,
    private readonly ec2: EC2Client,
    private readonly hosts: Map<string, SandboxHost>,
  ) {
    lifecycle.onSettled((s) => this.onSettled(s));
    // AWS checks its timeouts continuously; a quarter second is fine enough for tests.
    this.timer = setInterval(() => lifecycle.expire(), 250);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
    this.generation++;
  }

  clear(): void {
    this.generation++;
    this.deliver = null;
    this.undelivered.length = 0;
    this.refreshes.clear();
    this.driven.clear();
    this.settledWaiters.clear();
    this.between.clear();
    this.launchingInto.clear();
  }

  /** The group's hook for `transition`, with its timeout and default result (null: no hook). */
  async hookFor(asgName: string, transition: Transition): Promise<{ name: string; config: HookConfig } | null> {
    const h = await hookOf(this.asg, asgName, transition);
    return h ? { name: h.name, config: { heartbeatTimeoutSec: h.heartbeatTimeoutSec, defaultResult: h.defaultResult } } : null;
  }

  /**
   * The instance enters the wait state of `transition` (or, without a hook, goes straight on).
   * Returns the action's token, or null when the group has no hook for it.
   */
  async begin(asgName: string, instanceId: string, transition: Transition): Promise<string | null> {
    const hook = await this.hookFor(asgName, transition);
    if (!hook) {
      if (transition === TERMINATING) await this.terminate(asgName, instanceId);
      return null;
    }
    const event = this.lifecycle.begin({ asg: asgName, hook: hook.name, instanceId, transition, hookConfig: hook.config });
    const token = event.detail.LifecycleActionToken;
    this.driven.set(token, asgName);
    if (this.deliver) this.deliver(event);
    else this.undelivered.push(event);
    return token;
  }

  /** Resolves when the action with `token` is settled (by a call or by expiry). */
  settled(token: string): Promise<Settled> {
    return new Promise((resolve) => this.settledWaiters.set(token, resolve));
  }

  private onSettled(s: Settled): void {
    const asgName = this.driven.get(s.action.token);
    if (asgName === undefined) return; // a bare recorded event: tests decide what happens next
    this.driven.delete(s.action.token);
    const leaving = s.action.transition === TERMINATING || s.result === 'ABANDON';
    if (leaving) this.between.set(s.action.instanceId, 'Terminating:Proceed');
    const next = leaving ? this.terminate(asgName, s.action.instanceId) : Promise.resolve();
    void next.catch((err: unknown) => console.error(`sandbox ASG model: ${String(err)}`)).finally(() => {
      this.settledWaiters.get(s.action.token)?.(s);
      this.settledWaiters.delete(s.action.token);
    });
  }

  /** The instance terminates (its host shuts down); the group launches a replacement through its launch hook. */
  async terminate(asgName: string, instanceId: string): Promise<string | null> {
    this.between.set(instanceId, 'Terminating:Proceed');
    try {
      await this.hosts.get(instanceId)?.shutdown();
      const before = new Set(await this.instancesOf(asgName));
      this.launchingInto.set(asgName, before);
      await this.ec2.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }));
      // moto launches the replacement within TerminateInstances (the group is below desired).
      const fresh = (await this.instancesOf(asgName)).find((id) => !before.has(id) && id !== instanceId);
      if (fresh) await this.begin(asgName, fresh, LAUNCHING);
      return fresh ?? null;
    } finally {
      this.between.delete(instanceId);
      this.launchingInto.delete(asgName);
    }
  }

  private async instancesOf(asgName: string): Promise<string[]> {
    const g = await this.asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [asgName] }));
    return (g.AutoScalingGroups?.[0]?.Instances ?? []).map((i) => i.InstanceId ?? '').filter(Boolean);
  }

  /** StartInstanceRefresh on a one-instance group: terminate first, then the launch; see above. */
  async startRefresh(asgName: string): Promise<InstanceRefresh> {
    const [from] = await this.instancesOf(asgName);
    if (!from) throw new Error(`${asgName} has no instance to refresh`);
    const r: InstanceRefresh = { id: randomUUID(), asg: asgName, status: 'InProgress', statusReason: 'Waiting for the instance to terminate', startedAt: new Date(), endedAt: null, from, to: null };
    this.refreshes.set(r.id, r);
    void this.runRefresh(r).catch((err: unknown) => this.endRefresh(r, 'Failed', String(err)));
    return r;
  }

  private async runRefresh(r: InstanceRefresh): Promise<void> {
    const generation = this.generation;
    const token = await this.begin(r.asg, r.from, TERMINATING);
    if (token) await this.settled(token);
    // The replacement goes through its launch hook: done once it has settled CONTINUE.
    for (const deadline = Date.now() + 30 * 60_000; Date.now() < deadline && generation === this.generation; await new Promise((res) => setTimeout(res, 250))) {
      const ids = (await this.instancesOf(r.asg)).filter((id) => id !== r.from);
      const launched = ids.find((id) => this.lifecycle.results(id).includes('CONTINUE') && ![...this.lifecycle.pending.values()].some((a) => a.instanceId === id));
      if (launched) {
        r.to = launched;
        return this.endRefresh(r, 'Successful', 'Instance refresh completed');
      }
    }
    this.endRefresh(r, 'Failed', 'the replacement never came InService');
  }

  private endRefresh(r: InstanceRefresh, status: InstanceRefresh['status'], reason: string): void {
    r.status = status;
    r.statusReason = reason;
    r.endedAt = new Date();
  }
}
