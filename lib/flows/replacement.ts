/**
 * Master replacement (launch lifecycle hook). Level-triggered: every step re-reads the world
 * and does only what is still missing, so a duplicate, late or re-driven event is harmless.
 *
 *   instance → volume → predecessor → attach → agent → mount → urls → peer → membership
 *   (under the cluster lock: update | remove + add learner) → start → promote → caught up
 *   → apiserver → register → CONTINUE
 *
 * Steps that touch different things run side by side (each SSM command is 2+ s on AWS):
 * mount ∥ urls ∥ peer search, and caught-up (read on the peer) ∥ apiserver (this host).
 *
 * Unrecoverable problems end in ABANDON (the ASG launches another instance) and one alert.
 *
 * One flow drives a slot at a time: the whole run holds the slot lock (`lock#<cluster>/<member>`,
 * extended as it goes), so the event handler and the reconciler never work the same volume at
 * once. The event handler waits for it; the reconciler gives way ('busy'). Neither ABANDONs
 * because another flow is busy: that flow completes the hook.
 */
import { randomUUID } from 'node:crypto';
import { DescribeAutoScalingInstancesCommand } from '@aws-sdk/client-auto-scaling';
import { pollUntil, TimeoutError } from '../clock';
import { attachVolume, describeInstance, describeVolume, detachVolume, findMemberVolumes } from '../aws/ec2';
import { completeLifecycle, heartbeat, type HookRef } from '../aws/lifecycle';
import { findTargetGroups, registerAndWait } from '../aws/lb';
import { HostScriptError, runHostJson } from '../aws/run-command';
import { agentOnline } from '../aws/ssm-agent';
import { clusterHealth, planMembership, quorumOf } from '../domain/membership';
import { type PredecessorAction, predecessorAction } from '../domain/predecessor';
import { EtcdError, type EtcdErrorKind, type MemberId, type MemberList } from '../etcd';
import type { HostScriptName } from '../host/command';
import { type FlowDeps, runOpts, waitOpts } from './deps';
import { clusterMasters, firstHealthyPeer, type Peer } from './cluster-masters';
import { viewCluster } from './survey';
import { type MasterSlot, slotLockKey } from './master-slot';

export const APISERVER_PORT = 6443;
export const ETCD_DEVICE = '/dev/xvdf';
/** etcdctl command timeout for status reads: an unreachable member costs this much per read. */
export const STATUS_TIMEOUT = '2s';

export class FlowFailure extends Error {
  override readonly name = 'FlowFailure';
  constructor(
    readonly step: string,
    message: string,
    readonly action: string,
    readonly severity: 'critical' | 'warning' = 'critical',
    /** Alerts with the same key are sent once per window (e.g. one per slot and cause). */
    readonly dedupe: string = step,
  ) {
    super(message);
  }
}

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

interface Ctx {
  deps: FlowDeps;
  input: ReplacementInput;
  lastBeat: number;
  /** Set once this run holds the slot lock. */
  slotLock?: { key: string; owner: string };
}

/** The slot lock expired and another flow took it: stop here, that flow drives the slot now. */
class SlotLost extends Error {
  override readonly name = 'SlotLost';
}

/** Every 30 s (or when forced): extend the slot lock and send the lifecycle heartbeat. */
async function beat(ctx: Ctx, force = false): Promise<void> {
  const { hook } = ctx.input;
  if (!force && ctx.deps.clock.now() - ctx.lastBeat < 30_000) return;
  ctx.lastBeat = ctx.deps.clock.now();
  if (ctx.slotLock && !(await ctx.deps.lock.tryAcquire(ctx.slotLock.key, ctx.slotLock.owner))) {
    throw new SlotLost(`another flow took over ${ctx.slotLock.key}`);
  }
  if (hook) await heartbeat(ctx.deps.asg, hook);
}

/** Takes the slot lock: at once ('try') or waiting with heartbeats ('wait'); false when busy. */
async function acquireSlot(ctx: Ctx, mode: 'wait' | 'try'): Promise<boolean> {
  const { deps, input } = ctx;
  const key = slotLockKey(input.slot);
  const owner = `${input.instanceId}/${randomUUID()}`;
  const take = async () => ((await deps.lock.tryAcquire(key, owner)) ? true : undefined);
  const got = mode === 'try' ? await take() : await pollUntil(`the ${key} slot lock`, take, {
    clock: deps.clock, timeoutMs: deps.timings.lockTimeoutSec * 1000, intervalMs: deps.timings.minDelaySec * 1000, ...(deps.signal ? { signal: deps.signal } : {}),
    onWait: async () => {
      deps.progress({ step: 'slot', status: 'wait', detail: `another flow is driving ${input.slot.member}` });
      await beat(ctx);
    },
  }).catch((err: unknown) => {
    if (err instanceof TimeoutError) return undefined;
    throw err;
  });
  if (got) ctx.slotLock = { key, owner };
  return got === true;
}

async function step<T>(ctx: Ctx, name: string, fn: () => Promise<{ value: T; detail: string; skipped?: boolean }>): Promise<T> {
  // Near the Lambda deadline the invocation stops between steps; a later run resumes.
  ctx.deps.signal?.throwIfAborted();
  await beat(ctx);
  const t0 = ctx.deps.clock.now();
  ctx.deps.progress({ step: name, status: 'start', detail: '' });
  try {
    const { value, detail, skipped } = await fn();
    ctx.deps.progress({ step: name, status: skipped ? 'skip' : 'ok', detail, ms: ctx.deps.clock.now() - t0 });
    return value;
  } catch (err) {
    ctx.deps.progress({ step: name, status: 'fail', detail: err instanceof Error ? err.message : String(err), ms: ctx.deps.clock.now() - t0 });
    if (err instanceof FlowFailure) throw err;
    if (err instanceof TimeoutError) throw new FlowFailure(name, err.message, 'Check the instance and the AWS console; the ASG will launch another instance.');
    throw err;
  }
}

/**
 * Starts step `name` beside the caller's own work. `cancel` stops it (through its signal) and
 * waits for it, so nothing of this run outlives it: a late heartbeat would take the released
 * slot lock again.
 */
function beside<T>(ctx: Ctx, name: string, fn: (signal: AbortSignal) => Promise<{ value: T; detail: string }>): { done: Promise<T>; cancel: () => Promise<void> } {
  const own = new AbortController();
  const signal = ctx.deps.signal ? AbortSignal.any([own.signal, ctx.deps.signal]) : own.signal;
  const done = step(ctx, name, () => fn(signal));
  done.catch(() => undefined); // the caller awaits it, or cancels it
  return { done, cancel: async () => { own.abort(); await done.catch(() => undefined); } };
}

/**
 * Runs one of this flow's host steps. Every one is idempotent and the host runs its mutating
 * steps one at a time (flock), so a command SSM reports unfinished is tried once more.
 */
async function host<T>(ctx: Ctx, instanceId: string, script: HostScriptName, args: string[], stepName: string): Promise<T> {
  try {
    return await runHostJson<T>(ctx.deps.ssm, ctx.deps.scripts, instanceId, script, args, {
      ...runOpts(ctx.deps), retryUnfinished: true,
      onRetry: (r) => ctx.deps.progress({ step: stepName, status: 'wait', detail: `SSM command ${r.commandId} ended ${r.status}; trying once more` }),
    });
  } catch (err) {
    if (!(err instanceof HostScriptError)) throw err;
    throw new FlowFailure(stepName, err.message, err.result.exitCode === 4
      ? 'The volume is marked for another cluster or member: check the volume and ASG tags.'
      : err.result.exitCode === -1
        ? `SSM Run Command did not finish on ${instanceId} twice (${err.result.status}): check the SSM agent there; the ASG will launch another instance.`
        : 'Read the command output in SSM Run Command history for this instance.');
  }
}

/** The predecessor's EC2 and Auto Scaling states, and what the safety rule says to do. */
async function predecessorOf(deps: FlowDeps, instanceId: string): Promise<{ state: string; asgState: string; action: PredecessorAction }> {
  const { state } = await describeInstance(deps.ec2, instanceId);
  const asgState = (await deps.asg.send(new DescribeAutoScalingInstancesCommand({ InstanceIds: [instanceId] }))).AutoScalingInstances?.[0]?.LifecycleState ?? 'none';
  return { state, asgState, action: predecessorAction(state, asgState) };
}

async function findPeer(ctx: Ctx): Promise<Peer> {
  const { deps, input } = ctx;
  const candidates: Array<{ instanceId: string; member: string }> = [];
  for (const m of await clusterMasters(deps.asg, deps.tags, input.slot.cluster)) {
    if (m.member === input.slot.member) continue;
    for (const i of m.instances) if (i.instanceId !== input.instanceId && i.lifecycleState === 'InService') candidates.push({ instanceId: i.instanceId, member: m.member });
  }
  const peer = await firstHealthyPeer(deps.ssm, deps.scripts, candidates, runOpts(deps));
  if (peer) return peer;
  throw new FlowFailure('peer', `no healthy etcd peer of ${input.slot.cluster} answers (tried ${candidates.map((c) => c.member).join(', ') || 'none'})`,
    'The cluster has probably lost quorum: check `quorum-keeper status`. If the other masters are only slow, frozen or cut off, they recover on their own and the next instance the ASG launches joins; only if their etcd data is gone for good, follow the disaster-recovery runbook (restore from the newest verified backup). Do not replace masters one by one.',
    'critical', 'no-quorum');
}

/** findPeer, retried for a while: a leader election after a crash makes /health false briefly. */
async function findPeerPatiently(ctx: Ctx, stop: AbortSignal | undefined = ctx.deps.signal): Promise<Peer> {
  const { deps } = ctx;
  let last: unknown;
  return pollUntil('a healthy etcd peer', async () => {
    try {
      return await findPeer(ctx);
    } catch (err) {
      last = err;
      return undefined;
    }
  }, { clock: deps.clock, timeoutMs: deps.timings.peerTimeoutSec * 1000, intervalMs: deps.timings.minDelaySec * 1000, ...(stop ? { signal: stop } : {}), onWait: () => beat(ctx) }).catch((err: unknown) => {
    throw last instanceof FlowFailure && !stop?.aborted ? last : err;
  });
}

/**
 * Member list and quorum as the peer sees them; refuses without a leader and quorum. The old
 * incarnation of the member being replaced (its peer URL is not the new host's) is dead or
 * about to be: it counts as unhealthy without being asked (dialling it costs the full status
 * timeout, ~2 s of every replacement).
 */
async function readCluster(ctx: Ctx, peer: Peer, newPeerUrl: string): Promise<MemberList> {
  const view = await viewCluster(ctx.deps.ssm, ctx.deps.scripts, peer.instanceId, runOpts(ctx.deps), { member: ctx.input.slot.member, peerUrl: newPeerUrl });
  const health = clusterHealth(view.members.members, view.status);
  if (health.leader === null || health.healthyVoters < health.quorum) {
    throw new FlowFailure('membership', `cluster ${ctx.input.slot.cluster} has no leader or no quorum (${health.healthyVoters}/${health.voters} healthy voters, quorum ${health.quorum}); no membership change attempted`,
      'Restore quorum first (bring back failed masters) or follow the disaster-recovery runbook.', 'critical', 'no-quorum');
  }
  return view.members;
}

async function withLock<T>(ctx: Ctx, fn: () => Promise<T>): Promise<T> {
  const { deps, input } = ctx;
  const owner = `${input.instanceId}/${randomUUID()}`;
  await pollUntil(`the ${input.slot.cluster} cluster lock`, async () => ((await deps.lock.tryAcquire(input.slot.cluster, owner)) ? true : undefined), {
    clock: deps.clock, timeoutMs: deps.timings.lockTimeoutSec * 1000, intervalMs: deps.timings.minDelaySec * 1000, ...(deps.signal ? { signal: deps.signal } : {}),
    onWait: async () => {
      deps.progress({ step: 'lock', status: 'wait', detail: 'another flow holds the cluster lock' });
      await beat(ctx);
    },
  });
  try {
    return await fn();
  } finally {
    await deps.lock.release(input.slot.cluster, owner);
  }
}

async function retryUnhealthy<T>(ctx: Ctx, what: string, fn: () => Promise<T>, alsoRetry: readonly EtcdErrorKind[] = []): Promise<T> {
  // etcd refuses reconfiguration for ~5 s after members (re)connect: "unhealthy cluster".
  // `alsoRetry` adds kinds that are safe to repeat for this change (an idempotent one).
  // (Boxed: pollUntil treats `undefined` as "not yet", and fn may legitimately return void.)
  const boxed = await pollUntil(what, async () => {
    try {
      return { value: await fn() };
    } catch (err) {
      if (err instanceof EtcdError && (err.kind === 'unhealthy-cluster' || alsoRetry.includes(err.kind))) {
        ctx.deps.progress({ step: 'membership', status: 'wait', detail: `${what}: ${err.message}` });
        return undefined;
      }
      throw err;
    }
  }, { clock: ctx.deps.clock, timeoutMs: 60_000, intervalMs: 1000, onWait: () => beat(ctx) });
  return boxed.value;
}

export async function replaceMaster(deps: FlowDeps, input: ReplacementInput, opts: ReplacementOptions = {}): Promise<ReplacementOutcome> {
  const ctx: Ctx = { deps, input, lastBeat: 0 };
  await beat(ctx, true);
  if (!(await acquireSlot(ctx, opts.slotLock ?? 'wait'))) {
    deps.progress({ step: 'slot', status: 'skip', detail: `another flow is driving ${input.slot.member}; it completes the hook` });
    return { result: 'busy', reason: `another flow holds the ${slotLockKey(input.slot)} slot lock` };
  }
  try {
    return await replaceLocked(ctx);
  } finally {
    await deps.lock.release(ctx.slotLock!.key, ctx.slotLock!.owner);
  }
}

async function replaceLocked(ctx: Ctx): Promise<ReplacementOutcome> {
  const { deps, input } = ctx;
  const { slot, instanceId } = input;
  try {
    const inst = await step(ctx, 'instance', async () => {
      const i = await describeInstance(deps.ec2, instanceId);
      if (!['pending', 'running'].includes(i.state) || !i.az) throw new FlowFailure('instance', `instance ${instanceId} is ${i.state}`, 'Nothing to do for this instance; the ASG will launch another.', 'warning', `instance-${instanceId}`);
      return { value: i, detail: `${instanceId} ${i.state} in ${i.az}` };
    });
    const az = inst.az!;

    const volume = await step(ctx, 'volume', async () => {
      const vols = await findMemberVolumes(deps.ec2, { tagCluster: deps.tags.cluster, tagMember: deps.tags.member, cluster: slot.cluster, member: slot.member, az });
      if (vols.length !== 1) {
        throw new FlowFailure('volume', `${vols.length === 0 ? 'no' : vols.length} etcd volume${vols.length === 1 ? '' : 's'} tagged ${slot.cluster}/${slot.member} in ${az}${vols.length ? `: ${vols.map((v) => v.volumeId).join(', ')}` : ''}`,
          vols.length === 0 ? `Create or re-tag the member's volume in ${az} (${deps.tags.cluster}=${slot.cluster}, ${deps.tags.member}=${slot.member}).` : 'Keep exactly one volume per member and AZ: untag the wrong one.',
          'critical', `volume-count-${slot.member}`);
      }
      return { value: vols[0]!, detail: `${vols[0]!.volumeId} (${vols[0]!.state}${vols[0]!.attachedTo ? ` on ${vols[0]!.attachedTo}` : ''})` };
    });

    await step(ctx, 'predecessor', async () => {
      const v = await describeVolume(deps.ec2, volume.volumeId);
      if (!v.attachedTo || v.attachedTo === instanceId) return { value: null, detail: v.attachedTo ? 'already attached here' : 'volume is free', skipped: true };
      const { state, asgState, action } = await predecessorOf(deps, v.attachedTo);
      if (action === 'force-detach') {
        await detachVolume(deps.ec2, v.volumeId, v.attachedTo, true, waitOpts(deps, deps.timings.volumeTimeoutSec));
        return { value: null, detail: `force-detached from ${v.attachedTo} (${state})` };
      }
      if (action === 'wait-for-release') {
        deps.progress({ step: 'predecessor', status: 'wait', detail: `${v.attachedTo} is ${state}/${asgState}: waiting for it to release the volume` });
        await pollUntil(`${v.attachedTo} to release ${v.volumeId}`, async () => ((await describeVolume(deps.ec2, v.volumeId)).attachedTo ? undefined : true), {
          clock: deps.clock, timeoutMs: deps.timings.predecessorTimeoutSec * 1000, intervalMs: deps.timings.minDelaySec * 1000, onWait: () => beat(ctx),
        });
        return { value: null, detail: `released by ${v.attachedTo}` };
      }
      throw new FlowFailure('predecessor', `volume ${v.volumeId} is still attached to ${v.attachedTo}, which is ${state} (${asgState}); not detaching a running master`,
        `Find out why two masters exist for ${slot.member}. If ${v.attachedTo} is really dead, terminate it; Quorum Keeper never force-detaches from a running instance.`,
        'critical', `predecessor-running-${v.attachedTo}`);
    });

    await step(ctx, 'attach', async () => {
      const v = await describeVolume(deps.ec2, volume.volumeId);
      if (v.attachedTo === instanceId && v.attachmentState === 'attached') return { value: null, detail: 'already attached', skipped: true };
      if (v.attachedTo !== instanceId) await attachVolume(deps.ec2, volume.volumeId, instanceId, ETCD_DEVICE, waitOpts(deps, deps.timings.volumeTimeoutSec));
      // The volume reads in-use as soon as an attachment exists; the device is there only once
      // the attachment itself is `attached` (one can stay `attaching` for good).
      await pollUntil(`${volume.volumeId} to finish attaching to ${instanceId}`, async () => {
        const now = await describeVolume(deps.ec2, volume.volumeId);
        return now.attachedTo === instanceId && now.attachmentState === 'attached' ? true : undefined;
      }, { clock: deps.clock, timeoutMs: deps.timings.volumeTimeoutSec * 1000, intervalMs: deps.timings.minDelaySec * 1000, onWait: () => beat(ctx) }).catch((err: unknown) => {
        if (!(err instanceof TimeoutError)) throw err;
        throw new FlowFailure('attach', `${volume.volumeId} is stuck attaching to ${instanceId} (${deps.timings.volumeTimeoutSec} s)`,
          'The ASG launches another instance (ABANDON), which releases the attachment. If volumes keep sticking, check the volume and its AZ in the EC2 console.',
          'critical', `attach-stuck-${slot.member}`);
      });
      return { value: null, detail: `${volume.volumeId} → ${instanceId} as ${ETCD_DEVICE}` };
    });

    await step(ctx, 'agent', async () => {
      await pollUntil(`the SSM agent on ${instanceId}`, async () => ((await agentOnline(deps.ssm, instanceId)) ? true : undefined), {
        clock: deps.clock, timeoutMs: deps.timings.agentTimeoutSec * 1000, intervalMs: deps.timings.minDelaySec * 1000, onWait: () => beat(ctx),
      });
      return { value: null, detail: 'online' };
    });

    // mount, urls and the peer search touch different things (this host's volume, this host's
    // config, another master) and are each an SSM round trip (2+ s on AWS): side by side.
    const peerSearch = beside(ctx, 'peer', async (signal) => {
      const p = await findPeerPatiently(ctx, signal);
      return { value: p, detail: `${p.member} on ${p.instanceId}` };
    });
    const [mounted, urls] = await Promise.all([
      step(ctx, 'mount', async () => {
        const m = await host<{ hasData: boolean; formatted: boolean; device: string }>(ctx, instanceId, 'etcd-mount.sh',
          ['--volume-id', volume.volumeId, '--cluster', slot.cluster, '--member', slot.member, '--device', ETCD_DEVICE, '--allow-format'], 'mount');
        return { value: m, detail: `${m.device} ${m.formatted ? 'was blank: formatted' : 'mounted'}; etcd data ${m.hasData ? 'present' : 'absent'}` };
      }),
      step(ctx, 'urls', async () => {
        const u = await host<{ peerUrl: string; clientUrl: string }>(ctx, instanceId, 'etcd-member.sh', ['urls'], 'urls');
        return { value: u, detail: `peer ${u.peerUrl}` };
      }),
    ]).catch(async (err: unknown) => {
      await peerSearch.cancel();
      throw err;
    });
    const peer = await peerSearch.done;

    let plan = '';
    // kube-apiserver's readiness (this host) is polled beside the catch-up check (the peer).
    let apiserver: ReturnType<typeof beside<null>> | undefined;
    await withLock(ctx, async () => {
      const list = await step(ctx, 'membership', async () => {
        const before = await readCluster(ctx, peer, urls.peerUrl);
        const p = planMembership(before.members, slot.member, urls.peerUrl, mounted.hasData);
        plan = p.kind;
        switch (p.kind) {
          case 'refuse':
            throw new FlowFailure('membership', p.reason, p.action, 'critical', `membership-${slot.member}`);
          case 'in-place':
            return { value: before, detail: `member ${p.id} already at ${urls.peerUrl}${p.isLearner ? ' (learner)' : ''}`, skipped: true };
          case 'update': {
            // Setting the same peer URL twice changes nothing: a lost answer (timeout) is retried.
            const after = await retryUnhealthy(ctx, 'member update', () => peer.etcd.memberUpdate(p.id, [urls.peerUrl]), ['timeout']);
            return { value: after, detail: `member update ${p.id}: ${p.from.join(',')} → ${urls.peerUrl}` };
          }
          case 'replace': {
            if (p.removeId) {
              const report = await peer.etcd.endpointStatus({ cluster: true, timeout: STATUS_TIMEOUT });
              if (report.statuses.some((s) => s.memberId === p.removeId)) {
                throw new FlowFailure('membership', `old member ${p.removeId} of ${slot.member} still answers; refusing to remove a live member`, 'Stop the old etcd of this member first.', 'critical', `live-old-${slot.member}`);
              }
              const voters = before.members.filter((m) => !m.isLearner).length;
              const health = clusterHealth(before.members, report);
              if (health.healthyVoters < quorumOf(voters - 1)) throw new FlowFailure('membership', 'removing the old member would lose quorum', 'Restore the other members first.', 'critical', 'no-quorum');
              await retryUnhealthy(ctx, 'member remove', () => peer.etcd.memberRemove(p.removeId as MemberId));
            }
            const added = await retryUnhealthy(ctx, 'member add', () => peer.etcd.memberAdd(slot.member, [urls.peerUrl], { learner: true }));
            return { value: { ...before, members: added.members }, detail: `${p.removeId ? `removed ${p.removeId}, ` : ''}added learner ${added.member.id} at ${urls.peerUrl}` };
          }
        }
      });

      await step(ctx, 'start', async () => {
        const initial = list.members
          .filter((m) => m.name !== '' || m.peerUrls.includes(urls.peerUrl))
          .map((m) => `${m.peerUrls.includes(urls.peerUrl) ? slot.member : m.name}=${m.peerUrls.includes(urls.peerUrl) ? urls.peerUrl : (m.peerUrls[0] ?? '')}`)
          .join(',');
        const st = await host<{ running: boolean; healthy: boolean; pid: number | null }>(ctx, instanceId, 'etcd-member.sh',
          ['start', '--name', slot.member, '--initial-cluster', initial, '--initial-cluster-state', 'existing'], 'start');
        return { value: null, detail: `etcd ${st.running ? 'running' : 'not running'}${st.pid ? ` (pid ${st.pid})` : ''}` };
      });

      apiserver = beside(ctx, 'apiserver', async (signal) => {
        await pollUntil('kube-apiserver /readyz', async () => ((await host<{ ready: boolean }>(ctx, instanceId, 'etcd-member.sh', ['apiserver'], 'apiserver')).ready ? true : undefined), {
          clock: deps.clock, timeoutMs: deps.timings.targetTimeoutSec * 1000, intervalMs: deps.timings.minDelaySec * 1000, signal, onWait: () => beat(ctx),
        });
        return { value: null, detail: '/readyz 200' };
      });

      await step(ctx, 'caught-up', async () => {
        let promoted = false;
        const detail = await pollUntil(`${slot.member} to join and catch up`, async () => {
          const read = async () => {
            const v = await viewCluster(deps.ssm, deps.scripts, peer.instanceId, runOpts(deps));
            const m = v.members.members.find((x) => x.peerUrls.includes(urls.peerUrl));
            if (!m) throw new FlowFailure('caught-up', `${slot.member} vanished from the member list`, 'Re-run the replacement (the reconciler will).');
            return { me: m, report: v.status };
          };
          let { me, report } = await read();
          if (me.isLearner) {
            try {
              await peer.etcd.memberPromote(me.id);
              promoted = true;
            } catch (err) {
              if (err instanceof EtcdError && err.kind === 'learner-not-in-sync') return undefined;
              throw err;
            }
            ({ me, report } = await read());
          }
          const mine = report.statuses.find((s) => s.memberId === me.id);
          const leader = report.statuses.find((s) => s.isLeader);
          // Peer connectivity, not just /health: the leader must see our index move up to its own.
          if (!mine || !leader || mine.leader !== leader.memberId || mine.isLearner) return undefined;
          const lag = leader.raftIndex - mine.raftIndex;
          return lag <= deps.timings.maxRaftLag ? `${me.id}${promoted ? ' promoted,' : ''} raft index ${mine.raftIndex} (leader ${leader.raftIndex})` : undefined;
        }, { clock: deps.clock, timeoutMs: deps.timings.catchUpTimeoutSec * 1000, intervalMs: 1000, onWait: () => beat(ctx) });
        return { value: null, detail };
      });
    }).catch(async (err: unknown) => {
      await apiserver?.cancel();
      throw err;
    });
    await apiserver?.done;

    await step(ctx, 'register', async () => {
      const tgs = await findTargetGroups(deps.elb, deps.tags.cluster, slot.cluster);
      if (tgs.length === 0) return { value: null, detail: `no target group tagged ${deps.tags.cluster}=${slot.cluster}`, skipped: true };
      await beat(ctx, true);
      for (const tg of tgs) await registerAndWait(deps.elb, tg, instanceId, APISERVER_PORT, waitOpts(deps, deps.timings.targetTimeoutSec));
      return { value: null, detail: `healthy in ${tgs.length} target group(s)` };
    });

    await step(ctx, 'complete', async () => {
      if (!input.hook) return { value: null, detail: 'no lifecycle hook (re-driven run)', skipped: true };
      const r = await completeLifecycle(deps.asg, input.hook, 'CONTINUE');
      return { value: null, detail: r === 'done' ? 'CONTINUE' : 'hook already completed', skipped: r === 'gone' };
    });
    return { result: 'continued', membership: plan };
  } catch (err) {
    // Stopped (deadline or shutdown), not failed: no ABANDON, no alert. The retried event or
    // the reconciler re-runs the flow, which picks up where the world is now.
    if (deps.signal?.aborted) {
      deps.signal.throwIfAborted();
      throw err;
    }
    if (err instanceof SlotLost) return { result: 'busy', reason: err.message };
    const failure = err instanceof FlowFailure ? err : new FlowFailure('unexpected', err instanceof Error ? err.message : String(err), 'Check the function logs; the ASG will launch another instance.');
    await deps.alerter.alert({
      severity: failure.severity, cluster: slot.cluster, member: slot.member, instanceId, flow: 'replacement', step: failure.step,
      summary: `replacing ${slot.member} failed at ${failure.step}: ${failure.message}`.slice(0, 400), action: failure.action,
      dedupeKey: `${slot.cluster}/${slot.member}/${failure.dedupe}`,
    });
    if (input.hook) await completeLifecycle(deps.asg, input.hook, 'ABANDON');
    return { result: 'abandoned', step: failure.step, reason: failure.message };
  }
}

export interface PlannedStep {
  step: string;
  action: string;
}

/**
 * Dry run: what `replaceMaster` would do now and why, from read-only calls only (describe,
 * agent state, `etcd-member.sh urls/status`, etcd member list / endpoint status on a peer).
 * Nothing is attached, mounted, started, changed or completed.
 */
export async function planReplacement(deps: FlowDeps, input: ReplacementInput): Promise<PlannedStep[]> {
  const ctx: Ctx = { deps: { ...deps, progress: () => undefined }, input: { ...input, hook: null }, lastBeat: 0 };
  const { slot, instanceId } = input;
  const plan: PlannedStep[] = [];
  const add = (step: string, action: string) => plan.push({ step, action });
  const inst = await describeInstance(deps.ec2, instanceId);
  if (!['pending', 'running'].includes(inst.state) || !inst.az) {
    add('instance', `stop: ${instanceId} is ${inst.state}; ABANDON`);
    return plan;
  }
  add('instance', `${instanceId} is ${inst.state} in ${inst.az}`);
  const vols = await findMemberVolumes(deps.ec2, { tagCluster: deps.tags.cluster, tagMember: deps.tags.member, cluster: slot.cluster, member: slot.member, az: inst.az });
  if (vols.length !== 1) {
    add('volume', `stop: ${vols.length} volumes tagged ${slot.cluster}/${slot.member} in ${inst.az}; ABANDON and alert`);
    return plan;
  }
  const v = vols[0]!;
  add('volume', `use ${v.volumeId} (${v.state})`);
  if (v.attachedTo && v.attachedTo !== instanceId) {
    const { state, asgState, action } = await predecessorOf(deps, v.attachedTo);
    add('predecessor', action === 'force-detach'
      ? `force-detach ${v.volumeId} from ${v.attachedTo} (${state})`
      : action === 'wait-for-release'
        ? `wait up to ${deps.timings.predecessorTimeoutSec} s for ${v.attachedTo} (${state}/${asgState}) to release the volume`
        : `stop: ${v.attachedTo} is ${state} (${asgState}) and holds the volume; never detach from a running master; ABANDON and alert`);
    if (action === 'refuse') return plan;
  }
  add('attach', v.attachedTo === instanceId ? 'already attached' : `attach ${v.volumeId} to ${instanceId} as ${ETCD_DEVICE}, wait until in-use`);
  const online = await agentOnline(deps.ssm, instanceId);
  add('agent', online ? 'SSM agent online' : `wait up to ${deps.timings.agentTimeoutSec} s for the SSM agent`);
  add('mount', `mount ${v.volumeId} and check its marker ${slot.cluster}/${slot.member}; create a filesystem only if the device is blank`);
  let peerUrl = '(its peer URL)';
  if (online) peerUrl = (await host<{ peerUrl: string }>(ctx, instanceId, 'etcd-member.sh', ['urls'], 'urls')).peerUrl;
  try {
    const peer = await findPeerPatiently(ctx);
    const list = await peer.etcd.memberList();
    const health = clusterHealth(list.members, await peer.etcd.endpointStatus({ cluster: true, timeout: STATUS_TIMEOUT }));
    const quorumOk = health.leader !== null && health.healthyVoters >= health.quorum;
    add('peer', `read etcd through ${peer.member} (${peer.instanceId}): ${health.healthyVoters}/${health.voters} healthy voters, quorum ${health.quorum}, leader ${health.leader ?? 'none'}`);
    if (!quorumOk) {
      add('membership', 'stop: no leader or no quorum; no membership change; ABANDON and a critical alert');
      return plan;
    }
    const withData = planMembership(list.members, slot.member, peerUrl, true);
    const blank = planMembership(list.members, slot.member, peerUrl, false);
    const say = (p: ReturnType<typeof planMembership>) => p.kind === 'update' ? `member update ${p.id} → ${peerUrl}` : p.kind === 'in-place' ? `nothing (member ${p.id} already at ${peerUrl})`
      : p.kind === 'replace' ? `${p.removeId ? `member remove ${p.removeId}, ` : ''}member add --learner ${slot.member} at ${peerUrl}, promote when in sync` : `stop: ${p.reason}`;
    add('membership', `under the ${slot.cluster} lock: if the volume has data: ${say(withData)}; if it is blank: ${say(blank)}`);
  } catch (err) {
    add('peer', `stop: ${err instanceof Error ? err.message : String(err)}`);
    return plan;
  }
  add('start', `start etcd on ${instanceId} (--initial-cluster-state existing) and wait until it is caught up (lag ≤ ${deps.timings.maxRaftLag})`);
  add('apiserver', 'wait for kube-apiserver /readyz');
  const tgs = await findTargetGroups(deps.elb, deps.tags.cluster, slot.cluster);
  add('register', tgs.length ? `register in ${tgs.length} target group(s) on port ${APISERVER_PORT}, wait until healthy` : 'no target group tagged for this cluster');
  add('complete', input.hook ? 'CompleteLifecycleAction CONTINUE' : 'no lifecycle hook to complete');
  return plan;
}
