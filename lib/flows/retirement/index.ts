/**
 * Master retirement (terminate lifecycle hook). The steps, in order (`retirementSteps`):
 *
 *   instance → etcd (is it running here?)
 *   → turn: wait until leaving is safe, then [cluster lock: leave (re-check) → deregister (drain)
 *           → confirm (re-check) → move-leader → stop]
 *   → detach → complete (CONTINUE)
 *
 * Masters leave one at a time (DESIGN.md): an instance refresh on every master ASG at once fires
 * every terminate hook together, and each of them alone would read "3/3 healthy, two remain".
 * So a retirement whose member is a healthy voter waits — hook heartbeated — until every other
 * slot is whole (InService, following the leader, target healthy: `departureGate`), and it
 * stops etcd only under the cluster lock, after reading that again there. The whole run holds
 * the instance's lock, so a late launch event for this instance cannot work the volume meanwhile
 * (and the launch flow refuses an instance that is not Pending:Wait or InService anyway).
 *
 * When waiting does not end within `departureWaitSec` the run ends with the hook HELD (recorded
 * in the state table); the reconciler heartbeats and re-drives it on every run until leaving is
 * safe. ABANDON would not stop the termination (unless the ASG retains terminated instances),
 * and an expired hook applies its default result, so a held hook is never left to expire.
 *
 * Leadership goes to a healthy follower before etcd stops cleanly; the volume is unmounted and
 * detached so the replacement attaches it without force. Membership is left alone: the volume
 * keeps the member's identity for the replacement.
 */
import { beatEveryMsFor, type HookRef } from '../../aws/lifecycle';
import { completeHookStep } from '../hook-step';
import { type Departure, departureGate } from '../../domain/departure';
import { type EndpointStatus, EtcdClient } from '../../etcd';
import { contextOf, observeCluster } from '../../observe/observe';
import { memberAnswersElsewhere } from './elsewhere';
import type { HostCommand } from '../../host/commands';
import { APISERVER_PORT } from '../../host/layout';
import type { FlowDeps } from '../deps';
import { recordHeld } from './held';
import { instanceLockKey, type MasterSlot } from '../master-slot';
import { TimeoutError } from '../../clock';
import { FlowRun, hostFailureOf, type OutcomePolicy } from '../run';
import { type Entry, runSteps, type Step } from '../steps';

export interface RetirementInput {
  slot: MasterSlot;
  instanceId: string;
  hook: HookRef | null;
  /** `WarmPool` when the instance is parked rather than destroyed: handled the same way. */
  destination?: string;
}

export interface RetirementOptions {
  /** 'wait' (event handler, default): wait for another flow on this instance; 'try' (reconciler): give way at once. */
  slotLock?: 'wait' | 'try';
  /** How long this run waits for its turn before it holds the hook (default: timings.departureWaitSec). */
  waitSec?: number;
}

export interface RetirementOutcome {
  /** 'busy': another flow holds the slot; nothing was done here. */
  result: 'continued' | 'held' | 'failed' | 'busy';
  step?: string;
  reason?: string;
  movedLeaderTo?: string;
  /** For a held hook: seconds since it was first held. */
  heldForSec?: number;
}

interface S extends RetirementInput {
  deps: FlowDeps;
  waitSec: number;
  az?: string;
  /** Running with an SSM agent that answers: etcd can be asked, stopped and unmounted. */
  reachable?: boolean;
  instanceState?: string;
  etcd?: EtcdClient;
  clientUrl?: string;
  me?: EndpointStatus;
  statuses?: readonly EndpointStatus[];
  running?: boolean;
  movedLeaderTo?: string;
  /** Why the run ends with the hook held. */
  held?: Departure;
  /** etcd was stopped here by this run. */
  stopped?: boolean;
}

// status, stop and unmount are idempotent (and flock'ed on the host): a command SSM reports
// unfinished is tried once more rather than failing the retirement.
const onHost = <C extends HostCommand>(r: FlowRun, s: S, command: C) => r.host(s.instanceId, command, { retryUnfinished: true });

const instanceStep: Step<S> = {
  name: 'instance',
  async run(_r, s) {
    const inst = await s.deps.machines.describe(s.instanceId);
    s.az = inst.az ?? '';
    s.instanceState = inst.state;
    s.reachable = inst.state === 'running' && (await s.deps.hosts.online(s.instanceId));
    return { detail: `${s.instanceId} ${inst.state}${s.reachable ? '' : ' (agent unreachable)'}${s.destination === 'WarmPool' ? ', going to the warm pool' : ''}` };
  },
};

const etcdStep: Step<S> = {
  name: 'etcd',
  async run(r, s) {
    if (!s.reachable && s.instanceState === 'running') return unreachable(r, s);
    if (!s.reachable) return { detail: `${s.instanceState ?? 'not running'}: etcd is not running there`, skipped: true };
    const st = await onHost(r, s, { kind: 'member-status' });
    s.running = st.running;
    if (!st.running) return { detail: 'etcd is not running', skipped: true };
    s.clientUrl = st.clientUrl;
    s.etcd = new EtcdClient(s.deps.hosts.etcdctl(s.instanceId, r.runOpts()), { endpoints: [st.clientUrl] });
    return { detail: `etcd running (${st.clientUrl})` };
  },
};

/**
 * A running master whose SSM agent is lost: its etcd cannot be stopped cleanly from here, and a
 * volume is never detached from under a running etcd (DESIGN.md). Whether the member still runs
 * is asked through another master; unless it is proven gone, the hook is held (kept alive, the
 * reconciler re-drives it) and the operator told.
 */
async function unreachable(r: FlowRun, s: S): Promise<{ detail: string; skipped?: boolean; stop?: boolean }> {
  const { deps, slot } = s;
  const seen = await memberAnswersElsewhere(deps, slot.cluster, slot.member);
  if (seen.verdict === 'gone') return { detail: `agent unreachable, etcd not running: ${seen.detail}`, skipped: true };
  s.held = notNow(`the SSM agent on ${s.instanceId} is unreachable and ${seen.verdict === 'alive' ? 'its etcd still runs' : 'whether its etcd runs is unknown'} (${seen.detail}): not detaching its volume from under it`);
  await deps.alerter.alert({
    severity: 'critical', cluster: slot.cluster, member: slot.member, instanceId: s.instanceId, flow: 'retirement', step: 'etcd',
    summary: `retiring ${slot.member}: ${s.held.detail}; holding the termination`,
    action: `Bring the SSM agent on ${s.instanceId} back (the retirement then stops etcd cleanly and lets it go), or stop the instance (aws ec2 stop-instances): once etcd is down the retirement detaches the volume and continues. Do not complete the hook by hand.`,
    dedupeKey: `${slot.cluster}/${slot.member}/retire-unreachable/${s.instanceId}`,
  });
  return { detail: `holding the hook: ${s.held.detail}`, stop: true };
}

/** The departure decision on a fresh observation: etcd through this member, the slots, their volumes, target health. */
async function readGate(s: S): Promise<Departure> {
  const { deps, slot } = s;
  const view = await observeCluster(deps.observe, slot.cluster, {
    volumes: true, targets: true, claims: true, etcd: { via: [{ instanceId: s.instanceId, member: slot.member }] },
  }, contextOf(deps));
  const gate = departureGate(view, slot.member, s.clientUrl!);
  s.me = view.etcd.status.statuses.find((x) => x.endpoint === s.clientUrl);
  s.statuses = view.etcd.status.statuses;
  return gate;
}

async function quorumAlert(s: S, gate: Departure): Promise<void> {
  const { slot } = s;
  await s.deps.alerter.alert({
    severity: 'critical', cluster: slot.cluster, member: slot.member, instanceId: s.instanceId, flow: 'retirement', step: 'quorum',
    summary: `${gate.go === false && gate.quorumLost ? `etcd has lost quorum, so ${slot.member} cannot retire` : `retiring ${slot.member} now would lose etcd quorum`} (${gate.detail}); holding the termination`,
    action: 'Bring the failed masters back first: Quorum Keeper keeps the hook alive (heartbeats) and lets the instance go once the others are whole. Do not complete the hook by hand.',
    dedupeKey: `${slot.cluster}/${slot.member}/retire-quorum`,
  });
}

const deregisterStep: Step<S> = {
  name: 'deregister',
  async run(r, s) {
    const { deps } = s;
    const tgs = await deps.targets.groups(s.slot.cluster);
    // The drain takes the whole deregistration delay (300 s by default): beat through it.
    for (const tg of tgs) await r.beating(deps.targets.deregister(tg, s.instanceId, APISERVER_PORT, r.waitOpts(deps.timings.targetTimeoutSec)));
    return tgs.length ? { detail: `drained from ${tgs.length} target group(s)` } : { detail: 'no target group', skipped: true };
  },
};

/** Under the cluster lock: the decision on a fresh read (before the drain, and again after it). */
const checkStep = (name: string): Step<S> => ({
  name,
  async run(_r, s) {
    const gate = await readGate(s);
    if (gate.go) return { detail: gate.detail };
    s.held = gate;
    return { detail: `not now: ${gate.detail}`, stop: true };
  },
});

const notNow = (detail: string): Departure => ({ go: false, kind: 'no-leader', detail, safety: { safe: false, leader: null, othersHealthy: 0, quorum: 0, voters: 0 }, inTransition: false });

/**
 * Wait for this master's turn, then leave under the cluster lock: `leave` re-reads the decision
 * there, the drain follows (other departures wait on the lock meanwhile, so two API servers never
 * drain at once), `confirm` reads it once more, then leadership moves and etcd stops. Any "not
 * now" releases the lock and waits again; when the wait runs out the hook is held.
 */
const turnStep: Step<S> = {
  name: 'turn',
  async run(r, s) {
    // Each look costs two SSM commands: ask at the poll ceiling (15 s on AWS), not the floor.
    if (!s.running) {
      await runSteps(r, s, [deregisterStep]);
      return { detail: 'etcd not running here: nothing to wait for', skipped: true };
    }
    let alerted = false;
    let last: Departure = notNow('not decided yet');
    const left = await r.poll('this master\'s turn to leave', async () => {
      try {
        last = await readGate(s);
      } catch (err) {
        // An unanswered read decides nothing: not now, ask again (a held hook waits for an answer).
        if (r.aborted) throw err;
        last = notNow(`etcd could not be read here: ${err instanceof Error ? err.message : String(err)}`.slice(0, 300));
      }
      if (last.go) {
        const ran = await r.hold(s.slot.cluster, 'try', () => runSteps(r, s, leaveSteps));
        if (ran === 'done') return last.detail;
        last = ran === null ? notNow('another membership change holds the cluster lock') : s.held ?? last;
      }
      // Quorum at stake through a failure (not a master the ASG is already replacing): say so at once.
      if (last.go === false && last.kind === 'would-lose-quorum' && !last.inTransition && !alerted) {
        alerted = true;
        await quorumAlert(s, last);
      }
      r.say('turn', 'wait', last.detail);
      return undefined;
    }, { timeoutSec: s.waitSec, intervalSec: Math.max(1, s.deps.timings.maxDelaySec) }).catch((err: unknown) => {
      if (r.aborted || !(err instanceof TimeoutError)) throw err;
      return null;
    });
    if (left !== null) return { detail: `left: ${left}` };
    s.held = last;
    return { detail: `holding the hook: ${last.detail}`, stop: true };
  },
};

const moveLeaderStep: Step<S> = {
  name: 'move-leader',
  async run(_r, s) {
    const me = s.me;
    const target = me?.isLeader ? s.statuses!.find((x) => !x.isLeader && !x.isLearner && x.leader === me.memberId) : undefined;
    if (!target) return { detail: me?.isLeader ? 'no follower to hand leadership to' : 'not the leader', skipped: true };
    const moved = await s.etcd!.moveLeader(target.memberId);
    s.movedLeaderTo = moved.to;
    return { detail: `leadership ${moved.from} → ${moved.to}` };
  },
};

const stopStep: Step<S> = {
  name: 'stop',
  async run(r, s) {
    if (!s.running) return { detail: 'etcd not running here', skipped: true };
    await r.verifyLocks();
    // Waited for even past the Lambda deadline (a stop takes seconds; middy aborts 30 s early):
    // the cluster lock must not be released while this member may still be stopping.
    // The host checks once more, at the last moment, that the other voters still make a quorum
    // without this one (a member may have failed during the drain): if not, etcd keeps running
    // and this master waits for its turn again.
    try {
      await r.host(s.instanceId, { kind: 'member-stop', ifQuorumWithoutMe: true }, { retryUnfinished: true, signal: new AbortController().signal });
    } catch (err) {
      const host = hostFailureOf(err);
      if (host?.kind !== 'unsafe') throw err;
      s.held = notNow(`the master checked just before stopping etcd: ${host.detail}`.slice(0, 300));
      return { detail: `not now: ${s.held.detail}`, stop: true };
    }
    s.stopped = true;
    return { detail: 'etcd stopped' };
  },
};

const detachStep: Step<S> = {
  name: 'detach',
  async run(r, s) {
    const { deps, slot } = s;
    const vols = (await deps.volumes.ofMember({ cluster: slot.cluster, member: slot.member, az: s.az ?? '' }))
      .filter((v) => v.attachedTo === s.instanceId);
    for (const v of vols) {
      if (s.reachable) await onHost(r, s, { kind: 'volume-unmount', volumeId: v.volumeId, cluster: slot.cluster, member: slot.member });
      await deps.volumes.detach(v.volumeId, s.instanceId, false, r.waitOpts(deps.timings.volumeTimeoutSec));
    }
    return vols.length ? { detail: `${vols.map((v) => v.volumeId).join(', ')} unmounted and detached` } : { detail: 'no member volume attached', skipped: true };
  },
};

const completeStep = completeHookStep<S>('no lifecycle hook');

/** Under the cluster lock, once it is this master's turn (see turnStep). */
const leaveSteps: ReadonlyArray<Entry<S>> = [checkStep('leave'), deregisterStep, checkStep('confirm'), moveLeaderStep, stopStep];

/**
 * The retirement's one outcome policy: every failure is judged the same way, by what is known of
 * etcd here — held (heartbeats; the reconciler retries) while it may still run, let go once it is
 * known stopped or not running (see the failure tail in `retireMaster`).
 */
const retirementOutcomes: OutcomePolicy<'hold-or-let-go'> = { codes: {}, otherwise: 'hold-or-let-go' };

/** The retirement, step by step. */
export const retirementSteps: ReadonlyArray<Entry<S>> = [instanceStep, etcdStep, turnStep, detachStep, completeStep];

export async function retireMaster(deps: FlowDeps, input: RetirementInput, opts: RetirementOptions = {}): Promise<RetirementOutcome> {
  const { slot, instanceId, hook } = input;
  // Heartbeat often enough for this hook's timeout (a third of it, at most every 30 s).
  const settings = hook ? await deps.lifecycle.hookOf(hook.asg, 'autoscaling:EC2_INSTANCE_TERMINATING').catch(() => null) : null;
  const timeoutSec = settings?.heartbeatTimeoutSec ?? 3600;
  const r = new FlowRun(deps, { owner: instanceId, beatEveryMs: beatEveryMsFor(timeoutSec), ...(hook ? { heartbeat: () => deps.lifecycle.heartbeat(hook) } : {}) });
  const s: S = { ...input, deps, waitSec: opts.waitSec ?? deps.timings.departureWaitSec };
  try {
    await r.beat(true);
    const out = await r.hold(instanceLockKey(slot, instanceId), opts.slotLock ?? 'wait', async (): Promise<RetirementOutcome> => {
      if ((await runSteps(r, s, retirementSteps)) === 'stopped') {
        const reason = s.held?.detail ?? 'held';
        return { result: 'held', step: 'turn', reason, heldForSec: await recordHeld(deps, s, timeoutSec, reason) };
      }
      if (hook) await deps.held.release(slot.cluster, slot.member, instanceId);
      return { result: 'continued', ...(s.movedLeaderTo ? { movedLeaderTo: s.movedLeaderTo } : {}) };
    }, { step: 'slot', waitDetail: `another flow is driving ${slot.member}` });
    return out ?? { result: 'busy', reason: `another flow holds the ${instanceLockKey(slot, instanceId)} lock` };
  } catch (err) {
    // Near the Lambda deadline the run stops between steps (settle re-throws: no alert, no
    // CONTINUE); the retried event re-runs the flow, and every step is safe to repeat. Another
    // flow took the slot or the cluster over: it decides; nothing was stopped here unverified.
    const end = r.settle(err, retirementOutcomes, 'Check the function logs.');
    if (end.kind === 'busy') return { result: 'busy', reason: end.reason };
    const reason = end.failure.message;
    // Before etcd is known stopped (or known not running), letting the instance go could take a
    // second member out: hold the hook instead, and the reconciler retries.
    const mayStillRun = s.running !== false && !s.stopped && s.reachable !== false;
    await deps.alerter.alert({
      severity: 'warning', cluster: slot.cluster, member: slot.member, instanceId, flow: 'retirement', step: r.current,
      summary: `retiring ${slot.member} failed at ${r.current}: ${reason}`.slice(0, 400),
      action: mayStillRun
        ? 'Its etcd may still be running, so the hook is held (heartbeats) and the reconciler retries the retirement; check the SSM agent and etcd on the instance.'
        : 'etcd is stopped here, so the instance is let go; the replacement detaches the volume once the instance is gone. Check etcd health.',
      dedupeKey: `${slot.cluster}/${slot.member}/retire-${r.current}`,
    });
    if (mayStillRun && hook) {
      return { result: 'held', step: r.current, reason, heldForSec: await recordHeld(deps, s, timeoutSec, `failed at ${r.current}: ${reason}`) };
    }
    // Let termination go ahead: ABANDON would not stop it anyway, and CONTINUE frees the slot sooner.
    if (hook) {
      await deps.lifecycle.complete(hook, 'CONTINUE');
      await deps.held.release(slot.cluster, slot.member, instanceId);
    }
    return { result: 'failed', step: r.current, reason };
  }
}
