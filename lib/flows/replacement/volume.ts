/**
 * The replacement's first steps: the new instance, the member's volume, the predecessor that
 * may still hold it, the attachment, and the SSM agent. Each re-reads the world before acting.
 */
import { predecessorAction } from '../../domain/predecessor';
import { ETCD_DEVICE } from '../../host/layout';
import { TimeoutError } from '../../clock';
import type { ReplacementState as S } from './state';
import { FlowFailure, type FlowRun } from '../run';
import { decided, type Step } from '../steps';

const live = (state: string) => state === 'pending' || state === 'running';

/**
 * Why the roles could not act on this instance, if they could not: AttachVolume, DetachVolume
 * and SendCommand are authorised against the INSTANCE as well (its cluster tag must match the
 * condition), so a master launched without the tag (no PropagateAtLaunch) would fail later
 * with AccessDenied, half-way. Said once, up front.
 */
export function missingClusterTag(tags: Record<string, string>, tagKey: string, cluster: string): string | null {
  return tags[tagKey] === cluster ? null : `it does not carry the tag ${tagKey}=${cluster}${tags[tagKey] === undefined ? '' : ` (it says ${tagKey}=${tags[tagKey]})`}`;
}

const tagAdvice = (tagKey: string) => `Set PropagateAtLaunch on the master ASG's ${tagKey} tag (and tag the instances already running): Quorum Keeper's roles may attach volumes and run commands only on instances carrying it. The ASG will launch another instance.`;

/**
 * Why this instance is not one to bring in, if it is not: a launch flow acts only on an instance
 * waiting for its launch hook (Pending:Wait) or, without a hook (a repair), one InService — in
 * the slot's own group. A late or repeated launch event for an instance already terminating (or
 * gone, or in another group) must not attach the volume and start etcd while it retires.
 */
export async function notToBringIn(s: Pick<S, 'deps' | 'slot' | 'instanceId' | 'hook'>): Promise<string | null> {
  const a = await s.deps.machines.inGroup(s.instanceId);
  if (!a) return `${s.instanceId} is in no Auto Scaling group (terminated, or detached from ${s.slot.asg})`;
  if (a.group !== s.slot.asg) return `${s.instanceId} belongs to ${a.group}, not to ${s.slot.asg}`;
  const wanted = s.hook ? 'Pending:Wait' : 'InService';
  return a.state === wanted ? null : `${s.instanceId} is ${a.state} in ${a.group}, not ${wanted}: nothing to bring in`;
}

/** In the replacement's dry run a refusal is an ABANDON with one alert (replacementOutcomes). */
export const abandons = (f: FlowFailure) => `${f.message}; ABANDON and alert`;

export const instanceStep = decided<S, string>('instance', {
  async decide(_r, s) {
    const not = await notToBringIn(s);
    if (not) {
      s.ignored = not;
      return { kind: 'stop', detail: `${not}; nothing is touched, no hook completed` };
    }
    const i = await s.deps.machines.describe(s.instanceId);
    if (!live(i.state) || !i.az) return { kind: 'refuse', failure: new FlowFailure('instance', `instance ${s.instanceId} is ${i.state}`, 'Nothing to do for this instance; the ASG will launch another.', 'warning', `instance-${s.instanceId}`) };
    const untagged = missingClusterTag(i.tags, s.deps.tags.cluster, s.slot.cluster);
    if (untagged) return { kind: 'refuse', failure: new FlowFailure('instance', `instance ${s.instanceId}: ${untagged}`, tagAdvice(s.deps.tags.cluster), 'critical', `instance-tag-${s.slot.member}`) };
    s.az = i.az;
    const detail = `${s.instanceId} ${i.state} in ${i.az}`;
    return { kind: 'act', says: detail, with: detail };
  },
  act: (_r, _s, detail) => Promise.resolve({ detail }),
  refused: abandons,
});

export const volumeStep = decided<S, string>('volume', {
  async decide(_r, s) {
    const { deps, slot } = s;
    const vols = await deps.volumes.ofMember({ cluster: slot.cluster, member: slot.member, az: s.az! });
    if (vols.length !== 1) {
      return {
        kind: 'refuse',
        failure: new FlowFailure('volume', `${vols.length === 0 ? 'no' : vols.length} etcd volume${vols.length === 1 ? '' : 's'} tagged ${slot.cluster}/${slot.member} in ${s.az}${vols.length ? `: ${vols.map((v) => v.volumeId).join(', ')}` : ''}`,
          vols.length === 0 ? `Create or re-tag the member's volume in ${s.az} (${deps.tags.cluster}=${slot.cluster}, ${deps.tags.member}=${slot.member}).` : 'Keep exactly one volume per member and AZ: untag the wrong one.',
          'critical', `volume-count-${slot.member}`),
      };
    }
    const v = vols[0]!;
    s.volume = v;
    const found = `${v.volumeId} (${v.state}${v.attachedTo ? ` on ${v.attachedTo}` : ''})`;
    return { kind: 'act', says: `use ${found}`, with: found };
  },
  act: (_r, _s, detail) => Promise.resolve({ detail }),
  refused: abandons,
});

interface Release { how: 'force-detach' | 'wait-for-release'; volumeId: string; holder: string; state: string; asgState: string }

/** The safety rule on a volume another instance holds (lib/domain/predecessor.ts): force-detach from a dead one, wait for a leaving one, never take it from a running one. */
export const predecessorStep = decided<S, Release>('predecessor', {
  async decide(_r, s) {
    const v = await s.deps.volumes.describe(s.volume!.volumeId);
    if (!v.attachedTo || v.attachedTo === s.instanceId) return { kind: 'skip', detail: v.attachedTo ? 'already attached here' : 'volume is free' };
    const holder = v.attachedTo;
    const { state } = await s.deps.machines.describe(holder);
    const asgState = (await s.deps.machines.inGroup(holder))?.state ?? 'none';
    const how = predecessorAction(state, asgState);
    if (how === 'force-detach') return { kind: 'act', says: `force-detach ${v.volumeId} from ${holder} (${state})`, with: { how, volumeId: v.volumeId, holder, state, asgState } };
    if (how === 'wait-for-release') {
      return { kind: 'act', says: `wait up to ${s.deps.timings.predecessorTimeoutSec} s for ${holder} (${state}/${asgState}) to release the volume`, with: { how, volumeId: v.volumeId, holder, state, asgState } };
    }
    return {
      kind: 'refuse',
      failure: new FlowFailure('predecessor', `volume ${v.volumeId} is still attached to ${holder}, which is ${state} (${asgState}); not detaching a running master`,
        asgState === 'Terminating:Retained'
          ? `${holder} was retained by the ASG's instance lifecycle policy after its termination was abandoned, and keeps the volume until it is terminated. Check etcd on it, then run \`aws autoscaling terminate-instance-in-auto-scaling-group --instance-id ${holder} --no-should-decrement-desired-capacity\`; the next replacement attaches the volume.`
          : `Find out why two masters exist for ${s.slot.member}. If ${holder} is really dead, terminate it; Quorum Keeper never force-detaches from a running instance.`,
        'critical', `predecessor-running-${holder}`),
    };
  },
  async act(r, s, d) {
    const { deps } = s;
    if (d.how === 'force-detach') {
      await deps.volumes.detach(d.volumeId, d.holder, true, r.waitOpts(deps.timings.volumeTimeoutSec));
      return { detail: `force-detached from ${d.holder} (${d.state})` };
    }
    r.say('predecessor', 'wait', `${d.holder} is ${d.state}/${d.asgState}: waiting for it to release the volume`);
    await r.poll(`${d.holder} to release ${d.volumeId}`, async () => ((await deps.volumes.describe(d.volumeId)).attachedTo ? undefined : true), { timeoutSec: deps.timings.predecessorTimeoutSec });
    return { detail: `released by ${d.holder}` };
  },
  refused: abandons,
});

export const attachStep = decided<S, { volumeId: string; attachHere: boolean }>('attach', {
  async decide(_r, s) {
    const volumeId = s.volume!.volumeId;
    const v = await s.deps.volumes.describe(volumeId);
    if (v.attachedTo === s.instanceId && v.attachmentState === 'attached') return { kind: 'skip', detail: 'already attached' };
    // In a dry run a predecessor may still hold it: the attach follows its release.
    return { kind: 'act', says: `attach ${volumeId} to ${s.instanceId} as ${ETCD_DEVICE}, wait until attached`, with: { volumeId, attachHere: v.attachedTo !== s.instanceId } };
  },
  async act(r, s, { volumeId, attachHere }) {
    const { deps, instanceId } = s;
    if (attachHere) await deps.volumes.attach(volumeId, instanceId, ETCD_DEVICE, r.waitOpts(deps.timings.volumeTimeoutSec));
    // The volume reads in-use as soon as an attachment exists; the device is there only once
    // the attachment itself is `attached` (one can stay `attaching` for good).
    await r.poll(`${volumeId} to finish attaching to ${instanceId}`, async () => {
      const now = await deps.volumes.describe(volumeId);
      return now.attachedTo === instanceId && now.attachmentState === 'attached' ? true : undefined;
    }, { timeoutSec: deps.timings.volumeTimeoutSec }).catch((err: unknown) => {
      if (!(err instanceof TimeoutError)) throw err;
      throw new FlowFailure('attach', `${volumeId} is stuck attaching to ${instanceId} (${deps.timings.volumeTimeoutSec} s)`,
        'The ASG launches another instance (ABANDON), which releases the attachment. If volumes keep sticking, check the volume and its AZ in the EC2 console.',
        'critical', `attach-stuck-${s.slot.member}`, { cause: err });
    });
    return { detail: `${volumeId} → ${instanceId} as ${ETCD_DEVICE}` };
  },
});

export const agentStep: Step<S> = {
  name: 'agent',
  async run(r: FlowRun, s) {
    await r.poll(`the SSM agent on ${s.instanceId}`, async () => ((await s.deps.hosts.online(s.instanceId)) ? true : undefined), { timeoutSec: s.deps.timings.agentTimeoutSec });
    return { detail: 'online' };
  },
  async plan(_r, s) {
    s.agentOnline = await s.deps.hosts.online(s.instanceId);
    return { action: s.agentOnline ? 'SSM agent online' : `wait up to ${s.deps.timings.agentTimeoutSec} s for the SSM agent` };
  },
};
