/**
 * Master replacement (launch lifecycle hook). Level-triggered: every step re-reads the world
 * and does only what is still missing, so a duplicate, late or re-driven event is harmless.
 * The steps, in order (`replacementSteps`; the dry run walks the same list):
 *
 *   instance → volume → predecessor → attach → agent → mount ∥ urls ∥ peer → bootstrap → version
 *   → [cluster lock: membership (update | remove + add learner) → start → caught-up ∥ apiserver]
 *   → register → complete (CONTINUE)
 *
 * `bootstrap` matters only when no member answers: a new cluster (never formed, blank volumes,
 * no backup) is seeded by exactly one master and joined by the others (replacement-bootstrap.ts).
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
import { type HookRef } from '../../aws/lifecycle';
import { completeHookStep } from '../hook-step';
import { APISERVER_PORT } from '../../host/layout';
import type { FlowDeps } from '../deps';
import { instanceLockKey, type MasterSlot, slotLockKey } from '../master-slot';
import { apiserverStep, caughtUpStep, membershipStep, mountStep, startStep, urlsStep } from './etcd';
import { peerStep, versionStep } from './peer';
import type { ReplacementState as S } from './state';
import { agentStep, attachStep, instanceStep, notToBringIn, predecessorStep, volumeStep } from './volume';
import { bootstrapStep } from './bootstrap';
import { type FlowFailure, FlowRun, type OutcomePolicy } from '../run';
import { beside, decided, type Entry, holding, join, type PlannedStep, planSteps, runSteps } from '../steps';

export type { PlannedStep } from '../steps';

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
  /**
   * 'busy': another flow holds the slot (or took it over): nothing was done here, no hook completed.
   * 'ignored': the instance is not one to bring in (not Pending:Wait / InService in the slot's ASG).
   * 'awaiting-dr': no quorum; the master came in with its volume mounted and etcd stopped.
   */
  result: 'continued' | 'abandoned' | 'busy' | 'ignored' | 'awaiting-dr';
  step?: string;
  reason?: string;
  membership?: string;
}

const registerStep = decided<S, string[]>('register', {
  async decide(_r, s) {
    const tgs = await s.deps.targets.groups(s.slot.cluster);
    if (tgs.length === 0) return { kind: 'skip', detail: `no target group tagged ${s.deps.tags.cluster}=${s.slot.cluster}` };
    return { kind: 'act', says: `register in ${tgs.length} target group(s) on port ${APISERVER_PORT}, wait until healthy`, with: tgs };
  },
  async act(r, s, tgs) {
    await r.beat(true);
    for (const tg of tgs) await r.beating(s.deps.targets.register(tg, s.instanceId, APISERVER_PORT, r.waitOpts(s.deps.timings.targetTimeoutSec)));
    return { detail: `healthy in ${tgs.length} target group(s)` };
  },
});

const completeStep = completeHookStep<S>('no lifecycle hook (re-driven run)');

/**
 * The replacement's one outcome policy. No quorum, a new cluster that may not be seeded (data or
 * a backup exists) or that did not form in time: the master comes in awaiting DR (volume mounted,
 * etcd stopped, hook CONTINUEd) — ABANDONing would only relaunch it forever, and `restore` needs
 * every slot InService. Anything else: ABANDON (the ASG launches another instance) and one alert.
 */
export const replacementOutcomes: OutcomePolicy<'abandon' | 'await-dr'> = {
  codes: { 'no-quorum': 'await-dr', 'bootstrap-refused': 'await-dr', 'bootstrap-timeout': 'await-dr' },
  otherwise: 'abandon',
};

/** The replacement, step by step, as both the flow and its dry run walk it. */
export const replacementSteps: ReadonlyArray<Entry<S>> = [
  instanceStep, volumeStep, predecessorStep, attachStep, agentStep,
  beside(peerStep), beside(urlsStep), mountStep, join(urlsStep), join(peerStep), bootstrapStep, versionStep,
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
    ...(hook ? { heartbeat: () => deps.lifecycle.heartbeat(hook) } : {}),
  });
}

export async function replaceMaster(deps: FlowDeps, input: ReplacementInput, opts: ReplacementOptions = {}): Promise<ReplacementOutcome> {
  const r = runOf(deps, input);
  await r.beat(true);
  const s: S = { deps, ...input };
  try {
    // A late or repeated event for an instance that is not waiting to come in: answered at once,
    // without waiting for the locks its retirement may hold (and checked again under them).
    const not = await notToBringIn(s);
    if (not) {
      r.say('instance', 'skip', not);
      return { result: 'ignored', step: 'instance', reason: not };
    }
    const mode = opts.slotLock ?? 'wait';
    const waitDetail = `another flow is driving ${input.slot.member}`;
    // The slot lock, then this instance's lock (its retirement takes only that one).
    const out = await r.hold(slotLockKey(input.slot), mode, () => r.hold(instanceLockKey(input.slot, input.instanceId), mode, async (): Promise<ReplacementOutcome> => {
      if ((await runSteps(r, s, replacementSteps)) === 'stopped') return { result: 'ignored', step: 'instance', reason: s.ignored ?? 'nothing to do' };
      await deps.awaitingDr.clear(input.slot.cluster, input.slot.member);
      return { result: 'continued', membership: s.membership ?? '' };
    }, { step: 'slot', waitDetail }), { step: 'slot', waitDetail });
    if (out) return out;
    deps.progress({ step: 'slot', status: 'skip', detail: `another flow is driving ${input.slot.member}; it completes the hook` });
    return { result: 'busy', reason: `another flow holds the ${slotLockKey(input.slot)} slot lock` };
  } catch (err) {
    // Stopped (deadline or shutdown): re-thrown by settle, no ABANDON, no alert; the retried
    // event or the reconciler re-runs the flow from where the world is now.
    const end = r.settle(err, replacementOutcomes, 'Check the function logs; the ASG will launch another instance.');
    if (end.kind === 'busy') return { result: 'busy', reason: end.reason };
    const { failure } = end;
    const { slot, instanceId } = input;
    // Awaiting DR needs the volume mounted here and a hook to CONTINUE; else it is an ABANDON.
    if (end.kind === 'await-dr' && s.mounted && input.hook) return awaitDr(deps, input, s.mounted.hasData, failure);
    await deps.alerter.alert({
      severity: failure.severity, cluster: slot.cluster, member: slot.member, instanceId, flow: 'replacement', step: failure.step,
      summary: `replacing ${slot.member} failed at ${failure.step}: ${failure.message}`.slice(0, 400), action: failure.action,
      dedupeKey: `${slot.cluster}/${slot.member}/${failure.dedupe}`,
    });
    if (input.hook) await deps.lifecycle.complete(input.hook, 'ABANDON');
    return { result: 'abandoned', step: failure.step, reason: failure.message };
  }
}

/**
 * The cluster has no quorum (a majority of masters gone, not only their etcd): no membership
 * change is possible, and ABANDONing would only make the ASG launch again and again while no slot
 * ever becomes InService — which `restore` needs. So the master comes in as far as is safe: its
 * volume attached and mounted (data untouched), etcd left stopped, nothing registered, the hook
 * CONTINUEd, the slot recorded as awaiting DR, one alert. From there either quorum comes back
 * (the other masters were only down) and the reconciler repairs this master like any other, or
 * an operator restores.
 */
async function awaitDr(deps: FlowDeps, input: ReplacementInput, hasData: boolean, failure: FlowFailure): Promise<ReplacementOutcome> {
  const { slot, instanceId } = input;
  await deps.awaitingDr.mark({ cluster: slot.cluster, member: slot.member, instanceId, hasData });
  const base = { severity: 'critical', cluster: slot.cluster, member: slot.member, instanceId, flow: 'replacement' } as const;
  await deps.alerter.alert(failure.code === 'bootstrap-refused' || failure.code === 'bootstrap-timeout' ? {
    ...base, step: 'bootstrap', action: failure.action,
    summary: `${slot.cluster}: ${failure.code === 'bootstrap-refused' ? 'not seeding a new cluster: ' : ''}${failure.message}; ${slot.member} on ${instanceId} is InService with its volume mounted, etcd stopped`.slice(0, 450),
    // One alert for the cluster, however many masters refuse or wait.
    dedupeKey: `${slot.cluster}/${failure.dedupe}`,
  } : {
    ...base, step: 'awaiting-dr',
    summary: `${slot.cluster} has no etcd quorum (${failure.message}); ${slot.member} on ${instanceId} is InService awaiting disaster recovery: volume mounted${hasData ? ' with its data' : ', blank'}, etcd left stopped`.slice(0, 450),
    action: hasData
      ? 'If the other masters are only down (frozen, rebooting, cut off) and their data is intact, bring them back: once quorum returns the reconciler brings this master in with its data. Restore only if a majority\'s data is gone for good: `quorum-keeper restore --cluster ' + slot.cluster + ' --snapshot latest` (writes after that backup are lost).'
      : 'This member\'s data is gone. If a majority of members is lost for good, restore once every slot is InService: `quorum-keeper restore --cluster ' + slot.cluster + ' --snapshot latest`.',
    dedupeKey: `${slot.cluster}/${slot.member}/awaiting-dr/${instanceId}`,
  });
  await deps.lifecycle.complete(input.hook!, 'CONTINUE');
  deps.progress({ step: 'awaiting-dr', status: 'fail', detail: `no quorum: ${slot.member} InService with its volume mounted, etcd stopped` });
  return { result: 'awaiting-dr', step: failure.step, reason: failure.message };
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
