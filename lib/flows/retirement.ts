/**
 * Master retirement (terminate lifecycle hook). The steps, in order (`retirementSteps`):
 *
 *   instance → deregister (drain) → etcd (is stopping it safe?) → move-leader → stop → detach → complete (CONTINUE)
 *
 * Leadership goes to a healthy follower before etcd stops cleanly; the volume is unmounted and
 * detached so the replacement attaches it without force. Membership is left alone: the volume
 * keeps the member's identity for the replacement.
 *
 * ABANDON does not stop a termination (unless the ASG retains terminated instances), so when
 * losing this member would cost quorum the flow HOLDS the hook (heartbeats) and alerts rather
 * than pretending to veto; the next run (or the reconciler) re-checks.
 */
import { describeInstance, detachVolume, findMemberVolumes } from '../aws/ec2';
import { completeLifecycle, heartbeat, type HookRef } from '../aws/lifecycle';
import { completeHookStep } from './hook-step';
import { deregisterAndWait, findTargetGroups } from '../aws/lb';
import { ssmEtcdRunner } from '../aws/run-command';
import { agentOnline } from '../aws/ssm-agent';
import { canStopMember } from '../domain/membership';
import { type EndpointStatus, EtcdClient, STATUS_TIMEOUT } from '../etcd';
import type { HostScriptName } from '../host/command';
import { APISERVER_PORT } from '../host/layout';
import type { FlowDeps } from './deps';
import type { MasterSlot } from './master-slot';
import { type Entry, FlowRun, runSteps, type Step } from './run';

export interface RetirementInput {
  slot: MasterSlot;
  instanceId: string;
  hook: HookRef | null;
  /** `WarmPool` when the instance is parked rather than destroyed: handled the same way. */
  destination?: string;
}

export interface RetirementOutcome {
  result: 'continued' | 'held' | 'failed';
  step?: string;
  reason?: string;
  movedLeaderTo?: string;
}

interface S extends RetirementInput {
  deps: FlowDeps;
  az?: string;
  /** Running with an SSM agent that answers: etcd can be asked, stopped and unmounted. */
  reachable?: boolean;
  etcd?: EtcdClient;
  me?: EndpointStatus;
  statuses?: readonly EndpointStatus[];
  running?: boolean;
  movedLeaderTo?: string;
  held?: string;
}

// status, stop and unmount are idempotent (and flock'ed on the host): a command SSM reports
// unfinished is tried once more rather than failing the retirement.
const onHost = <T>(r: FlowRun, s: S, script: HostScriptName, args: string[]): Promise<T> => r.host<T>(s.instanceId, script, args, { retryUnfinished: true });

const instanceStep: Step<S> = {
  name: 'instance',
  async run(_r, s) {
    const inst = await describeInstance(s.deps.ec2, s.instanceId);
    s.az = inst.az ?? '';
    s.reachable = inst.state === 'running' && (await agentOnline(s.deps.ssm, s.instanceId));
    return { detail: `${s.instanceId} ${inst.state}${s.reachable ? '' : ' (agent unreachable)'}${s.destination === 'WarmPool' ? ', going to the warm pool' : ''}` };
  },
};

const deregisterStep: Step<S> = {
  name: 'deregister',
  async run(r, s) {
    const { deps } = s;
    const tgs = await findTargetGroups(deps.elb, deps.tags.cluster, s.slot.cluster);
    for (const tg of tgs) await deregisterAndWait(deps.elb, tg, s.instanceId, APISERVER_PORT, r.waitOpts(deps.timings.targetTimeoutSec));
    return tgs.length ? { detail: `drained from ${tgs.length} target group(s)` } : { detail: 'no target group', skipped: true };
  },
};

const etcdStep: Step<S> = {
  name: 'etcd',
  async run(r, s) {
    if (!s.reachable) return { detail: 'not reachable: etcd left as it is', skipped: true };
    const { deps, slot } = s;
    const st = await onHost<{ running: boolean; clientUrl: string }>(r, s, 'etcd-member.sh', ['status']);
    s.running = st.running;
    if (!st.running) return { detail: 'etcd is not running', skipped: true };
    const etcd = new EtcdClient(ssmEtcdRunner(deps.ssm, deps.scripts, s.instanceId, r.runOpts()), { endpoints: [st.clientUrl] });
    s.etcd = etcd;
    // Stop only when the OTHER voters keep quorum with a leader. Unknown counts as unsafe: right
    // after another member died there may be no leader yet (an election), so wait a little for
    // one, and hold if it does not come.
    const read = async () => {
      const list = await etcd.memberList();
      const status = await etcd.endpointStatus({ cluster: true, timeout: STATUS_TIMEOUT });
      return { status, me: status.statuses.find((x) => x.endpoint === st.clientUrl), safety: canStopMember(list.members, status, st.clientUrl) };
    };
    let view = await read();
    if (view.safety.leader === null) {
      view = await r.poll('an etcd leader', async () => {
        view = await read();
        return view.safety.leader === null ? undefined : view;
      }, { timeoutSec: deps.timings.peerTimeoutSec, onWait: () => r.say('etcd', 'wait', 'no etcd leader right now (election?); waiting before deciding') }).catch((err: unknown) => {
        if (r.aborted) throw err;
        return view;
      });
    }
    const { status, me, safety } = view;
    s.me = me;
    s.statuses = status.statuses;
    if (safety.safe) return { detail: `${safety.othersHealthy} other healthy voter(s) of ${safety.voters} keep quorum ${safety.quorum}` };
    // Stopping this member would (or might) lose quorum: hold the hook and alert.
    await r.beat(true);
    await deps.alerter.alert({
      severity: 'critical', cluster: slot.cluster, member: slot.member, instanceId: s.instanceId, flow: 'retirement', step: 'quorum',
      summary: `retiring ${slot.member} now would lose etcd quorum (${safety.othersHealthy} other healthy voter(s) of ${safety.voters}, quorum ${safety.quorum}${safety.leader ? '' : ', no leader'}); holding the termination`,
      action: 'Bring the failed masters back first. Termination proceeds when the hook times out; set the ASG instance-lifecycle retention policy so ABANDON can keep the instance.',
      dedupeKey: `${slot.cluster}/${slot.member}/retire-quorum`,
    });
    s.held = 'stopping this member would lose quorum';
    r.say('quorum', 'wait', 'holding: would lose quorum');
    return { detail: 'holding: would lose quorum', stop: true };
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
    await onHost(r, s, 'etcd-member.sh', ['stop']);
    return { detail: 'etcd stopped' };
  },
};

const detachStep: Step<S> = {
  name: 'detach',
  async run(r, s) {
    const { deps, slot } = s;
    const vols = (await findMemberVolumes(deps.ec2, { tagCluster: deps.tags.cluster, tagMember: deps.tags.member, cluster: slot.cluster, member: slot.member, az: s.az ?? '' }))
      .filter((v) => v.attachedTo === s.instanceId);
    for (const v of vols) {
      if (s.reachable) await onHost(r, s, 'etcd-mount.sh', ['--unmount', '--volume-id', v.volumeId, '--cluster', slot.cluster, '--member', slot.member]);
      await detachVolume(deps.ec2, v.volumeId, s.instanceId, false, r.waitOpts(deps.timings.volumeTimeoutSec));
    }
    return vols.length ? { detail: `${vols.map((v) => v.volumeId).join(', ')} unmounted and detached` } : { detail: 'no member volume attached', skipped: true };
  },
};

const completeStep = completeHookStep<S>('no lifecycle hook');

/** The retirement, step by step. */
export const retirementSteps: ReadonlyArray<Entry<S>> = [instanceStep, deregisterStep, etcdStep, moveLeaderStep, stopStep, detachStep, completeStep];

export async function retireMaster(deps: FlowDeps, input: RetirementInput): Promise<RetirementOutcome> {
  const { slot, instanceId, hook } = input;
  const r = new FlowRun(deps, { owner: instanceId, ...(hook ? { heartbeat: () => heartbeat(deps.asg, hook) } : {}) });
  const s: S = { ...input, deps };
  try {
    await r.beat(true);
    if ((await runSteps(r, s, retirementSteps)) === 'stopped') return { result: 'held', step: 'quorum', reason: s.held ?? 'held' };
    return { result: 'continued', ...(s.movedLeaderTo ? { movedLeaderTo: s.movedLeaderTo } : {}) };
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    // Near the Lambda deadline the run stops between steps (no alert, no CONTINUE): the retried
    // event re-runs the flow, and every step is safe to repeat.
    if (r.aborted) {
      r.say(r.current, 'fail', `stopped before the Lambda deadline (${reason}); the retried event resumes`);
      deps.signal!.throwIfAborted();
    }
    await deps.alerter.alert({
      severity: 'warning', cluster: slot.cluster, member: slot.member, instanceId, flow: 'retirement', step: r.current,
      summary: `retiring ${slot.member} failed at ${r.current}: ${reason}`.slice(0, 400),
      action: 'The instance will still terminate when its hook ends. The replacement will detach the volume once the instance is gone; check etcd health.',
      dedupeKey: `${slot.cluster}/${slot.member}/retire-${r.current}`,
    });
    // Let termination go ahead: ABANDON would not stop it anyway, and CONTINUE frees the slot sooner.
    if (hook) await completeLifecycle(deps.asg, hook, 'CONTINUE');
    return { result: 'failed', step: r.current, reason };
  }
}
