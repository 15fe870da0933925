/**
 * Master replacement (launch lifecycle hook). Level-triggered: every step re-reads the world
 * and does only what is still missing, so a duplicate, late or re-driven event is harmless.
 * The steps, in order (`replacementSteps`; the dry run walks the same list):
 *
 *   instance → volume → predecessor → attach → agent → mount ∥ urls ∥ peer
 *   → [cluster lock: membership (update | remove + add learner) → start → caught-up ∥ apiserver]
 *   → register → complete (CONTINUE)
 *
 * Steps that touch different things run side by side (each SSM command is 2+ s on AWS):
 * mount ∥ urls ∥ peer search, and caught-up (read on the peer) ∥ apiserver (this host; it
 * outlives the cluster lock, which only the membership change and its catch-up need).
 *
 * Unrecoverable problems end in ABANDON (the ASG launches another instance) and one alert.
 *
 * One flow drives a slot at a time: the whole run holds the slot lock (`lock#<cluster>/<member>`,
 * extended by the heartbeat), so the event handler and the reconciler never work the same
 * volume at once. The event handler waits for it; the reconciler gives way ('busy'). Neither
 * ABANDONs because another flow is busy: that flow completes the hook.
 */
import { completeLifecycle, heartbeat, type HookRef } from '../aws/lifecycle';
import { completeHookStep } from './hook-step';
import { findTargetGroups, registerAndWait } from '../aws/lb';
import { APISERVER_PORT } from '../host/layout';
import type { FlowDeps } from './deps';
import { type MasterSlot, slotLockKey } from './master-slot';
import { apiserverStep, caughtUpStep, membershipStep, mountStep, peerStep, startStep, urlsStep } from './replacement-etcd';
import type { ReplacementState as S } from './replacement-state';
import { agentStep, attachStep, instanceStep, predecessorStep, volumeStep } from './replacement-volume';
import { beside, type Entry, FlowFailure, FlowRun, holding, join, LockLost, type PlannedStep, planSteps, runSteps, type Step } from './run';

export type { PlannedStep } from './run';

export interface ReplacementInput {
  slot: MasterSlot;
  instanceId: string;
  hook: HookRef | null;
}

export interface ReplacementOptions {
  /** 'wait' (event handler, default): wait for another flow on the slot; 'try' (reconciler): give way at once. */
  slotLock?: 'wait' | 'try';
}

export interface ReplacementOutcome {
  /** 'busy': another flow holds the slot (or took it over): nothing was done here, no hook completed. */
  result: 'continued' | 'abandoned' | 'busy';
  step?: string;
  reason?: string;
  membership?: string;
}

const registerStep: Step<S> = {
  name: 'register',
  async run(r, s) {
    const { deps } = s;
    const tgs = await findTargetGroups(deps.elb, deps.tags.cluster, s.slot.cluster);
    if (tgs.length === 0) return { detail: `no target group tagged ${deps.tags.cluster}=${s.slot.cluster}`, skipped: true };
    await r.beat(true);
    for (const tg of tgs) await registerAndWait(deps.elb, tg, s.instanceId, APISERVER_PORT, r.waitOpts(deps.timings.targetTimeoutSec));
    return { detail: `healthy in ${tgs.length} target group(s)` };
  },
  async plan(_r, s) {
    const tgs = await findTargetGroups(s.deps.elb, s.deps.tags.cluster, s.slot.cluster);
    return { action: tgs.length ? `register in ${tgs.length} target group(s) on port ${APISERVER_PORT}, wait until healthy` : 'no target group tagged for this cluster' };
  },
};

const completeStep = completeHookStep<S>('no lifecycle hook (re-driven run)');

/** The replacement, step by step, as both the flow and its dry run walk it. */
export const replacementSteps: ReadonlyArray<Entry<S>> = [
  instanceStep, volumeStep, predecessorStep, attachStep, agentStep,
  beside(peerStep), beside(urlsStep), mountStep, join(urlsStep), join(peerStep),
  holding<S>('cluster lock', (s) => s.slot.cluster,
    membershipStep, startStep, beside(apiserverStep), caughtUpStep),
  join(apiserverStep),
  registerStep, completeStep,
];

function runOf(deps: FlowDeps, input: ReplacementInput): FlowRun {
  const { hook } = input;
  return new FlowRun(deps, {
    owner: input.instanceId,
    timeoutAction: 'Check the instance and the AWS console; the ASG will launch another instance.',
    ...(hook ? { heartbeat: () => heartbeat(deps.asg, hook) } : {}),
  });
}

export async function replaceMaster(deps: FlowDeps, input: ReplacementInput, opts: ReplacementOptions = {}): Promise<ReplacementOutcome> {
  const r = runOf(deps, input);
  await r.beat(true);
  const s: S = { deps, ...input };
  try {
    const out = await r.hold(slotLockKey(input.slot), opts.slotLock ?? 'wait', async () => {
      await runSteps(r, s, replacementSteps);
      return { result: 'continued', membership: s.membership ?? '' } satisfies ReplacementOutcome;
    }, { step: 'slot', waitDetail: `another flow is driving ${input.slot.member}` });
    if (out) return out;
    deps.progress({ step: 'slot', status: 'skip', detail: `another flow is driving ${input.slot.member}; it completes the hook` });
    return { result: 'busy', reason: `another flow holds the ${slotLockKey(input.slot)} slot lock` };
  } catch (err) {
    // Stopped (deadline or shutdown), not failed: no ABANDON, no alert. The retried event or
    // the reconciler re-runs the flow, which picks up where the world is now.
    if (r.aborted) {
      deps.signal!.throwIfAborted();
      throw err;
    }
    if (err instanceof LockLost) return { result: 'busy', reason: err.message };
    const failure = err instanceof FlowFailure ? err : new FlowFailure('unexpected', err instanceof Error ? err.message : String(err), 'Check the function logs; the ASG will launch another instance.', 'critical', 'unexpected', { cause: err });
    const { slot, instanceId } = input;
    await deps.alerter.alert({
      severity: failure.severity, cluster: slot.cluster, member: slot.member, instanceId, flow: 'replacement', step: failure.step,
      summary: `replacing ${slot.member} failed at ${failure.step}: ${failure.message}`.slice(0, 400), action: failure.action,
      dedupeKey: `${slot.cluster}/${slot.member}/${failure.dedupe}`,
    });
    if (input.hook) await completeLifecycle(deps.asg, input.hook, 'ABANDON');
    return { result: 'abandoned', step: failure.step, reason: failure.message };
  }
}

/**
 * Dry run: what `replaceMaster` would do now and why, walking `replacementSteps` with each
 * step's read-only `plan` (describe, agent state, `etcd-member.sh urls`, etcd member list /
 * endpoint status on a peer). Nothing is attached, mounted, started, changed or completed.
 */
export async function planReplacement(deps: FlowDeps, input: ReplacementInput): Promise<PlannedStep[]> {
  const quiet: FlowDeps = { ...deps, progress: () => undefined };
  return planSteps(new FlowRun(quiet), { deps: quiet, ...input, hook: input.hook }, replacementSteps);
}
