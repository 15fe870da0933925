/**
 * Master retirement (terminate lifecycle hook): drain the load balancer, hand etcd leadership
 * to a healthy follower, stop etcd cleanly, unmount and detach the volume so the replacement
 * attaches it without force, then CONTINUE. Membership is left alone: the volume keeps the
 * member's identity for the replacement.
 *
 * ABANDON does not stop a termination (unless the ASG retains terminated instances), so when
 * losing this member would cost quorum the flow HOLDS the hook (heartbeats) and alerts rather
 * than pretending to veto; the next run (or the reconciler) re-checks.
 */
import { describeInstance, detachVolume, findMemberVolumes } from '../aws/ec2';
import { completeLifecycle, heartbeat, type HookRef } from '../aws/lifecycle';
import { deregisterAndWait, findTargetGroups } from '../aws/lb';
import { runHostJson, ssmEtcdRunner } from '../aws/run-command';
import { agentOnline } from '../aws/ssm-agent';
import { canStopMember } from '../domain/membership';
import { EtcdClient } from '../etcd';
import type { HostScriptName } from '../host/command';
import { type FlowDeps, runOpts, waitOpts } from './deps';
import type { MasterSlot } from './master-slot';
import { APISERVER_PORT, STATUS_TIMEOUT } from './replacement';

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

export async function retireMaster(deps: FlowDeps, input: RetirementInput): Promise<RetirementOutcome> {
  const { slot, instanceId, hook } = input;
  let current = 'instance';
  const report = (status: 'ok' | 'skip' | 'wait' | 'fail', detail: string) => deps.progress({ step: current, status, detail });
  // Near the Lambda deadline the run stops between steps (no alert, no CONTINUE): the retried
  // event re-runs the flow, and every step is safe to repeat.
  const enter = (next: string) => {
    deps.signal?.throwIfAborted();
    current = next;
  };
  // status, stop and unmount are idempotent (and flock'ed on the host): a command SSM reports
  // unfinished is tried once more rather than failing the retirement.
  const hostJson = <T>(script: HostScriptName, args: string[]): Promise<T> => runHostJson<T>(deps.ssm, deps.scripts, instanceId, script, args, {
    ...runOpts(deps), retryUnfinished: true,
    onRetry: (r) => deps.progress({ step: current, status: 'wait', detail: `SSM command ${r.commandId} ended ${r.status}; trying once more` }),
  });
  try {
    if (hook) await heartbeat(deps.asg, hook);
    const inst = await describeInstance(deps.ec2, instanceId);
    const reachable = inst.state === 'running' && (await agentOnline(deps.ssm, instanceId));
    report('ok', `${instanceId} ${inst.state}${reachable ? '' : ' (agent unreachable)'}${input.destination === 'WarmPool' ? ', going to the warm pool' : ''}`);

    enter('deregister');
    const tgs = await findTargetGroups(deps.elb, deps.tags.cluster, slot.cluster);
    for (const tg of tgs) await deregisterAndWait(deps.elb, tg, instanceId, APISERVER_PORT, waitOpts(deps, deps.timings.targetTimeoutSec));
    report(tgs.length ? 'ok' : 'skip', tgs.length ? `drained from ${tgs.length} target group(s)` : 'no target group');

    let movedLeaderTo: string | undefined;
    if (reachable) {
      enter('etcd');
      const st = await hostJson<{ running: boolean; clientUrl: string }>('etcd-member.sh', ['status']);
      if (st.running) {
        const etcd = new EtcdClient(ssmEtcdRunner(deps.ssm, deps.scripts, instanceId, runOpts(deps)), { endpoints: [st.clientUrl] });
        // Stop only when the OTHER voters keep quorum with a leader. Unknown counts as unsafe:
        // right after another member died there may be no leader yet (an election), so wait a
        // little for one, and hold if it does not come.
        const read = async () => {
          const list = await etcd.memberList();
          const status = await etcd.endpointStatus({ cluster: true, timeout: STATUS_TIMEOUT });
          return { status, me: status.statuses.find((s) => s.endpoint === st.clientUrl), safety: canStopMember(list.members, status, st.clientUrl) };
        };
        let view = await read();
        const deadline = deps.clock.now() + deps.timings.peerTimeoutSec * 1000;
        while (view.safety.leader === null && deps.clock.now() < deadline) {
          report('wait', 'no etcd leader right now (election?); waiting before deciding');
          await deps.clock.sleep(deps.timings.minDelaySec * 1000, deps.signal);
          view = await read();
        }
        const { status, me, safety } = view;
        if (!safety.safe) {
          // Stopping this member would (or might) lose quorum: hold the hook and alert.
          if (hook) await heartbeat(deps.asg, hook);
          await deps.alerter.alert({
            severity: 'critical', cluster: slot.cluster, member: slot.member, instanceId, flow: 'retirement', step: 'quorum',
            summary: `retiring ${slot.member} now would lose etcd quorum (${safety.othersHealthy} other healthy voter(s) of ${safety.voters}, quorum ${safety.quorum}${safety.leader ? '' : ', no leader'}); holding the termination`,
            action: 'Bring the failed masters back first. Termination proceeds when the hook times out; set the ASG instance-lifecycle retention policy so ABANDON can keep the instance.',
            dedupeKey: `${slot.cluster}/${slot.member}/retire-quorum`,
          });
          report('wait', 'holding: would lose quorum');
          return { result: 'held', step: 'quorum', reason: 'stopping this member would lose quorum' };
        }
        if (me?.isLeader) {
          const target = status.statuses.find((s) => !s.isLeader && !s.isLearner && s.leader === me.memberId);
          if (target) {
            enter('move-leader');
            const moved = await etcd.moveLeader(target.memberId);
            movedLeaderTo = moved.to;
            report('ok', `leadership ${moved.from} → ${moved.to}`);
          }
        }
        enter('stop');
        await hostJson('etcd-member.sh', ['stop']);
        report('ok', 'etcd stopped');
      }
    }

    enter('detach');
    const vols = (await findMemberVolumes(deps.ec2, { tagCluster: deps.tags.cluster, tagMember: deps.tags.member, cluster: slot.cluster, member: slot.member, az: inst.az ?? '' }))
      .filter((v) => v.attachedTo === instanceId);
    for (const v of vols) {
      if (reachable) await hostJson('etcd-mount.sh', ['--unmount', '--volume-id', v.volumeId, '--cluster', slot.cluster, '--member', slot.member]);
      await detachVolume(deps.ec2, v.volumeId, instanceId, false, waitOpts(deps, deps.timings.volumeTimeoutSec));
    }
    report(vols.length ? 'ok' : 'skip', vols.length ? `${vols.map((v) => v.volumeId).join(', ')} unmounted and detached` : 'no member volume attached');

    enter('complete');
    if (hook) {
      const r = await completeLifecycle(deps.asg, hook, 'CONTINUE');
      report(r === 'done' ? 'ok' : 'skip', r === 'done' ? 'CONTINUE' : 'hook already completed');
    }
    return { result: 'continued', ...(movedLeaderTo ? { movedLeaderTo } : {}) };
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    if (deps.signal?.aborted) {
      report('fail', `stopped before the Lambda deadline (${reason}); the retried event resumes`);
      deps.signal.throwIfAborted();
    }
    report('fail', reason);
    await deps.alerter.alert({
      severity: 'warning', cluster: slot.cluster, member: slot.member, instanceId, flow: 'retirement', step: current,
      summary: `retiring ${slot.member} failed at ${current}: ${reason}`.slice(0, 400),
      action: 'The instance will still terminate when its hook ends. The replacement will detach the volume once the instance is gone; check etcd health.',
      dedupeKey: `${slot.cluster}/${slot.member}/retire-${current}`,
    });
    // Let termination go ahead: ABANDON would not stop it anyway, and CONTINUE frees the slot sooner.
    if (hook) await completeLifecycle(deps.asg, hook, 'CONTINUE');
    return { result: 'failed', step: current, reason };
  }
}
