/**
 * The reconciler: read one cluster, plan (the pure `planReconcile` decides), then take the
 * planned steps with the same idempotent flows the event handlers use. Safe to run twice and
 * next to the event handlers: a re-drive or volume fix-up takes the slot lock and gives way
 * when a flow already drives the slot; a stray is removed under the cluster lock after the
 * safety rule is checked again on a fresh read.
 *
 * First-seen times come from the world where it records them (a `Pending:Wait` instance's
 * launch time) and otherwise from what an earlier run remembered (strays).
 */
import type { BackupStore } from '../../aws/backups';
import type { ClusterLock } from '../../aws/lock';
import type { ReconcileMemory } from '../../aws/reconcile-memory';
import { judgeQuorum, slotGaps } from '../../domain/judge';
import {
  describeAction, planReconcile, seenKey, type ReconcileAction, type ReconcilePlan, type ReconcileSettings, type ReconcileWorld, strayLabel, strayRemoval, type WorldEtcd,
} from '../../domain/reconcile';
import { type EndpointStatusReport as StatusReport, type Member, STATUS_TIMEOUT } from '../../etcd';
import { contextOf, observeCluster } from '../../observe/observe';
import type { Clock } from '../../clock';
import type { ObservePorts } from '../../observe/ports';
import { backupCluster, type BackupSettings } from '../backup';
import { type RecoverDeps, recoverCluster, type RecoveryReadDeps, readRecovery, startOnOwnData } from '../recover';
import type { RecoverySettings } from '../../domain/recovery';
import type { RestoreJournal } from '../../aws/restore-journal';
import { firstHealthyPeer } from '../cluster-masters';
import type { FlowDeps } from '../deps';
import { FlowRun } from '../run';
import { instanceLockKey, slotLockKey, slotOfGroup } from '../master-slot';
import { replaceMaster } from '../replacement';
import { retireMaster } from '../retirement';

export interface ReconcileReadDeps {
  observe: ObservePorts;
  clock: Clock;
  signal?: AbortSignal;
  /** Whether a flow holds the cluster lock; absent = assume not. */
  lockHeld?: (cluster: string) => Promise<boolean>;
  /** Whether a flow holds a slot's lock (is driving that slot); absent = assume not. */
  slotBusy?: (cluster: string, member: string) => Promise<boolean>;
  /** Whether a flow holds one instance's lock (is retiring it); absent = assume not. */
  instanceBusy?: (cluster: string, member: string, instanceId: string) => Promise<boolean>;
  /** First-seen times remembered by earlier runs. */
  remembered?: (cluster: string) => Promise<Record<string, number>>;
  /**
   * Quorum loss judged too (absent: not judged): how to ask the hosts and each cluster's recovery
   * settings (the highest revision the probe saw is in the view's records).
   */
  recovery?: { read: RecoveryReadDeps; settings: (cluster: string) => RecoverySettings };
}

/** The members, the leader most voters agree on, and the members that follow it: the one quorum rule's reading. */
export function etcdView(members: readonly Member[], status: StatusReport): WorldEtcd {
  const q = judgeQuorum({ members: [...members], status });
  return { members: members.map((m) => ({ id: m.id, name: m.name, isLearner: m.isLearner })), leader: q.leader, healthyIds: q.healthyIds };
}

/** The reconciler's world: one observation (lib/observe), judged slot by slot with the one "slot is whole" rule, plus the locks and memory. */
export async function readWorld(deps: ReconcileReadDeps, cluster: string, opts: { store?: BackupStore } = {}): Promise<ReconcileWorld> {
  const [view, lockHeld, remembered] = await Promise.all([
    observeCluster(deps.observe, cluster, { volumes: true, targets: true, etcd: {}, claims: true, instances: true, backups: opts.store ?? null, records: true }, contextOf(deps)),
    deps.lockHeld ? deps.lockHeld(cluster) : Promise.resolve(false),
    deps.remembered ? deps.remembered(cluster) : Promise.resolve({} as Record<string, number>),
  ]);
  const { slots: masters, at: now } = view;
  const [busy, retiringBusy] = await Promise.all([
    Promise.all(masters.map(async (m) => (deps.slotBusy && m.instances.some((i) => i.lifecycleState === 'Pending:Wait') ? deps.slotBusy(cluster, m.member) : false))),
    Promise.all(masters.map(async (m) => {
      const retiring = m.instances.filter((i) => i.lifecycleState === 'Terminating:Wait').map((i) => i.instanceId);
      const busyIds = await Promise.all(retiring.map(async (id) => (deps.instanceBusy ? deps.instanceBusy(cluster, m.member, id) : false)));
      return retiring.filter((_, k) => busyIds[k]);
    })),
  ]);
  const firstSeen: Record<string, number> = { ...remembered };
  for (const m of masters) {
    for (const i of m.instances.filter((x) => x.lifecycleState === 'Pending:Wait')) {
      const launched = view.instances[i.instanceId]?.launchedAt;
      if (launched) firstSeen[seenKey('pending', i.instanceId)] = launched;
    }
  }
  const newest = view.backups === null || 'error' in view.backups ? 'unknown' : view.backups.usable.at(-1);
  const q = judgeQuorum(view.etcd, view);
  const recovery = deps.recovery ? await readRecovery(deps.recovery.read, view, {
    lostSince: remembered[seenKey('lost', 'quorum')] ?? null, highestSeen: remembered[seenKey('revision', 'high')] ?? null,
    startedAt: Object.fromEntries(Object.entries(remembered).filter(([k]) => k.startsWith('start#')).map(([k, t]) => [k.slice('start#'.length), t])),
  }, deps.recovery.settings(cluster), opts.store) : undefined;
  return {
    cluster, now, ...(view.badGroups.length ? { badGroups: view.badGroups } : {}),
    ...(recovery ? { recovery: { verdict: recovery.verdict, clientUrls: recovery.clientUrls, highestSeen: recovery.highestSeen } } : {}),
    slots: masters.map((m, i) => ({
      member: m.member, asg: m.asg, instances: m.instances, ...(busy[i] ? { busy: true } : {}), ...(retiringBusy[i]?.length ? { retiringBusy: retiringBusy[i] } : {}),
      ...(view.claims[m.member] ? { claim: view.claims[m.member] } : {}),
      ...(m.instanceId ? { master: { instanceId: m.instanceId, gaps: slotGaps(view, m, q) } } : {}),
    })),
    volumes: Object.entries(view.volumes).map(([member, v]) => {
      const state = v.attachmentState ?? v.volumeState;
      return {
        member, volumeId: v.volumeId, state: state === 'attached' || state === 'attaching' ? 'in-use' : state, attachedTo: v.attachedTo,
        attachedInstanceState: v.attachedTo ? (view.instances[v.attachedTo]?.state ?? 'terminated') : null,
      };
    }),
    etcd: view.etcd.members ? { members: view.etcd.members.map((m) => ({ id: m.id, name: m.name, isLearner: m.isLearner })), leader: q.leader, healthyIds: q.healthyIds } : { members: null, leader: null, healthyIds: [] },
    firstSeen, lockHeld,
    backupAgeSec: newest === 'unknown' ? 'unknown' : newest ? Math.max(0, Math.round((now - newest.takenAt.getTime()) / 1000)) : null,
  };
}

export async function planCluster(deps: ReconcileReadDeps, cluster: string, settings: ReconcileSettings, opts: { store?: BackupStore } = {}): Promise<{ world: ReconcileWorld; plan: ReconcilePlan }> {
  const world = await readWorld(deps, cluster, opts);
  return { world, plan: planReconcile(world, settings) };
}

/** Read deps that also see the locks (cluster and slots) and what earlier runs remembered. */
export function withLockView(base: ReconcileReadDeps, lock: Pick<ClusterLock, 'isHeld'>, memory: Pick<ReconcileMemory, 'get'>): ReconcileReadDeps {
  return {
    ...base,
    lockHeld: (c) => lock.isHeld(c),
    slotBusy: (c, member) => lock.isHeld(slotLockKey({ cluster: c, member })),
    instanceBusy: (c, member, id) => lock.isHeld(instanceLockKey({ cluster: c, member }, id)),
    remembered: (c) => memory.get(c),
  };
}

export interface ReconcileDeps extends FlowDeps {
  observe: ObservePorts;
  memory: ReconcileMemory;
  /** Quorum-loss recovery: each cluster's settings and the restore's journal (absent: not judged). */
  recovery?: { settings: (cluster: string) => RecoverySettings; journal: RestoreJournal };
  /** Where the backups are: the listing decides staleness and a stale cluster gets a backup. Absent = backups not judged. */
  backup?: { settings: BackupSettings };
}

export interface ReconcileStep {
  action: ReconcileAction;
  result: 'done' | 'skipped' | 'failed';
  detail: string;
}

export interface ReconcileOutcome {
  cluster: string;
  dryRun: boolean;
  drift: number;
  plan: ReconcilePlan;
  steps: ReconcileStep[];
  /** The one log line per cluster and run: what it found, what it did. */
  summary: string;
}

/** Volume fix-ups first (a re-drive then finds the volume free), alerts last. */
// A retirement before a re-driven replacement: the replacement may wait for the volume that
// retirement releases, and the retiring master's hook needs its heartbeat first.
const ORDER: Record<ReconcileAction['kind'], number> = { 'detach-volume': 0, 'drive-retirement': 1, 'redrive-replacement': 2, 'repair-master': 3, 'remove-stray': 4, backup: 5, 'start-member': 6, recover: 7, alert: 8 };

/** `alert`: the reconciler itself must tell the operator (the replacement and backup flows alert on their own failures). */
type StepResult = Omit<ReconcileStep, 'action'> & { alert?: boolean };
const done = (detail: string): StepResult => ({ result: 'done', detail });
const skipped = (detail: string): StepResult => ({ result: 'skipped', detail });
const failed = (detail: string, alert = true): StepResult => ({ result: 'failed', detail, alert });

/** Runs `fn` holding `key` in the lock table (extended by the run's heartbeat), or skips when another flow holds it. */
async function holding(r: FlowRun, key: string, busy: string, fn: () => Promise<StepResult>): Promise<StepResult> {
  return (await r.hold(key, 'try', fn)) ?? skipped(busy);
}

async function detach(r: FlowRun, deps: ReconcileDeps, cluster: string, a: Extract<ReconcileAction, { kind: 'detach-volume' }>): Promise<StepResult> {
  return holding(r, slotLockKey({ cluster, member: a.member }), `a flow is driving ${a.member}; it handles the volume`, async () => {
    // Re-read: only a volume still attached to that instance, only if it is really gone.
    const v = await deps.volumes.describe(a.volumeId);
    if (v.attachedTo !== a.instanceId) return skipped(`${a.volumeId} is no longer attached to ${a.instanceId}`);
    const i = await deps.machines.describe(a.instanceId);
    if (i.state !== 'terminated' && i.state !== 'gone') return skipped(`${a.instanceId} is ${i.state}, not terminated: not touched`);
    await deps.volumes.detach(a.volumeId, a.instanceId, true, r.waitOpts(deps.timings.volumeTimeoutSec));
    return done(`detached ${a.volumeId} from terminated ${a.instanceId}`);
  });
}

async function redrive(deps: ReconcileDeps, a: Extract<ReconcileAction, { kind: 'redrive-replacement' }>): Promise<StepResult> {
  const found = slotOfGroup(await deps.lifecycle.group(a.asg), a.asg, deps.tags);
  if (found.kind !== 'master') return skipped(found.reason);
  const hook = (await deps.lifecycle.hookOf(a.asg, 'autoscaling:EC2_INSTANCE_LAUNCHING'))?.name ?? null;
  if (!hook) return failed(`${a.asg} has no launch lifecycle hook, so ${a.instanceId} cannot be completed`);
  // Exactly the event path, minus the token: CompleteLifecycleAction by instance ID.
  const out = await replaceMaster(deps, { slot: found.slot, instanceId: a.instanceId, hook: { asg: a.asg, hook, instanceId: a.instanceId } }, { slotLock: 'try' });
  if (out.result === 'continued') return done(`${a.member} on ${a.instanceId} brought in (${out.membership ?? 'membership unchanged'}), hook completed`);
  if (out.result === 'busy' || out.result === 'ignored') return skipped(out.reason ?? 'another flow is driving the slot');
  return failed(`replacement of ${a.member} abandoned at ${out.step}: ${out.reason}`, false); // the flow alerted
}

async function repair(deps: ReconcileDeps, a: Extract<ReconcileAction, { kind: 'repair-master' }>): Promise<StepResult> {
  const found = slotOfGroup(await deps.lifecycle.group(a.asg), a.asg, deps.tags);
  if (found.kind !== 'master') return skipped(found.reason);
  // A dead host cannot be repaired from here: its ASG health check (or an operator) replaces it.
  if (!(await deps.hosts.online(a.instanceId))) return failed(`the SSM agent on ${a.instanceId} is offline: if the instance is impaired, terminate it so ${a.asg} replaces it`);
  const out = await replaceMaster(deps, { slot: found.slot, instanceId: a.instanceId, hook: null }, { slotLock: 'try' });
  if (out.result === 'continued') return done(`${a.member} on ${a.instanceId} repaired (${out.membership ?? 'membership unchanged'})`);
  if (out.result === 'busy' || out.result === 'ignored') return skipped(out.reason ?? 'another flow is driving the slot');
  return failed(`repair of ${a.member} stopped at ${out.step}: ${out.reason}`, false); // the flow alerted
}

/**
 * A master in Terminating:Wait that no flow drives: heartbeat its hook (by instance ID) and run
 * the retirement once, without waiting: it lets the master go if that is safe now, else keeps
 * the hook held for the next run. The hook never expires into its default result meanwhile.
 */
async function driveRetirement(deps: ReconcileDeps, a: Extract<ReconcileAction, { kind: 'drive-retirement' }>): Promise<StepResult> {
  const found = slotOfGroup(await deps.lifecycle.group(a.asg), a.asg, deps.tags);
  if (found.kind !== 'master') return skipped(found.reason);
  const hook = await deps.lifecycle.hookOf(a.asg, 'autoscaling:EC2_INSTANCE_TERMINATING');
  if (!hook) return failed(`${a.asg} has no terminate lifecycle hook, yet ${a.instanceId} is in Terminating:Wait`);
  const out = await retireMaster(deps, { slot: found.slot, instanceId: a.instanceId, hook: { asg: a.asg, hook: hook.name, instanceId: a.instanceId } }, { slotLock: 'try', waitSec: 0 });
  if (out.result === 'continued') return done(`${a.member} on ${a.instanceId} retired${out.movedLeaderTo ? ` (leadership → ${out.movedLeaderTo})` : ''}, hook completed`);
  if (out.result === 'busy') return skipped(out.reason ?? 'another flow is retiring it');
  if (out.result === 'held') return done(`hook of ${a.member} on ${a.instanceId} kept alive, held ${Math.round((out.heldForSec ?? 0) / 60)} min: ${out.reason ?? ''}`);
  return failed(`retirement of ${a.member} stopped at ${out.step}: ${out.reason}`, false); // the flow alerted
}

async function removeStray(r: FlowRun, deps: ReconcileDeps, cluster: string, a: Extract<ReconcileAction, { kind: 'remove-stray' }>): Promise<StepResult> {
  return holding(r, cluster, 'a membership change holds the cluster lock; decided next run', async () => {
    const masters = (await deps.observe.fleet.masterGroups(cluster)).masters;
    const peer = await firstHealthyPeer(deps.hosts, masters.flatMap((m) => (m.instanceId ? [{ member: m.member, instanceId: m.instanceId }] : [])), r.runOpts());
    if (!peer) return failed('no healthy etcd member answers: nothing removed');
    const list = await peer.etcd.memberList();
    const m = list.members.find((x) => x.id === a.memberId);
    if (!m) return skipped(`${a.name} ${a.memberId} is no longer a member`);
    if (masters.some((x) => x.member === m.name)) return skipped(`${m.name} has a slot now`);
    const recorded = await deps.memberIds.get(cluster, masters.map((x) => x.member));
    const owner = Object.entries(recorded).find(([, id]) => id === m.id)?.[0];
    if (owner) return skipped(`${strayLabel(m)} ${m.id} is recorded as slot ${owner}'s member`);
    // The safety rule again, on a fresh read, under the lock.
    const safe = strayRemoval(etcdView(list.members, await peer.etcd.endpointStatus({ cluster: true, timeout: STATUS_TIMEOUT })), m, masters.length);
    if (!safe.ok) return failed(`not removed: ${safe.why}`);
    await r.verifyLocks();
    await peer.etcd.memberRemove(m.id);
    return done(`removed ${strayLabel(m)} ${m.id} (${safe.reason})`);
  });
}

async function backup(deps: ReconcileDeps, cluster: string): Promise<StepResult> {
  if (!deps.backup) return skipped('no backup bucket configured');
  const out = await backupCluster(deps, cluster, deps.backup.settings);
  return out.result === 'uploaded' ? done(`backup ${out.key} uploaded (revision ${out.revision})`) : failed(`backup failed at ${out.failure?.step}: ${out.failure?.message}`, false);
}

/** A member down on its own data while quorum is lost: started under its slot's lock, if its etcd still does not run. */
async function startMember(r: FlowRun, deps: ReconcileDeps, cluster: string, a: Extract<ReconcileAction, { kind: 'start-member' }>): Promise<StepResult> {
  return holding(r, slotLockKey({ cluster, member: a.member }), `a flow is driving ${a.member}`, async () => {
    const out = await startOnOwnData(deps, r.hostOpts(120), a.member, a.instanceId);
    return out.started ? done(out.detail) : skipped(out.detail);
  });
}

async function recover(deps: ReconcileDeps, cluster: string, a: Extract<ReconcileAction, { kind: 'recover' }>): Promise<StepResult> {
  if (!deps.backup || !deps.recovery) return failed('no backup bucket configured: nothing to restore from');
  const out = await recoverCluster(recoverDepsOf(deps), cluster, a.verdict, deps.backup.settings, a.clientUrl);
  return out.result === 'restored' ? done(`restored from ${out.snapshotKey} (token ${out.token})`) : failed(`recovery failed: ${out.failure ?? ''}`, false); // the flow alerted
}

/** The restore and the survivor's copy see the reconciler's clients, locks and records. */
export function recoverDepsOf(deps: ReconcileDeps): RecoverDeps {
  return { ...deps, journal: deps.recovery!.journal };
}

async function execute(r: FlowRun, deps: ReconcileDeps, cluster: string, a: ReconcileAction): Promise<StepResult> {
  switch (a.kind) {
    case 'detach-volume': return detach(r, deps, cluster, a);
    case 'redrive-replacement': return redrive(deps, a);
    case 'repair-master': return repair(deps, a);
    case 'drive-retirement': return driveRetirement(deps, a);
    case 'remove-stray': return removeStray(r, deps, cluster, a);
    case 'backup': return backup(deps, cluster);
    case 'start-member': return startMember(r, deps, cluster, a);
    case 'recover': return recover(deps, cluster, a);
    case 'alert': {
      const sent = await deps.alerter.alert({
        severity: a.code === 'backup-stale' || a.code === 'orphan-volume' || a.code === 'stray-live' || a.code === 'member-tag' ? 'warning' : 'critical', cluster, flow: 'reconcile', step: a.code,
        summary: a.summary, action: a.action, dedupeKey: `${cluster}/reconcile/${a.code}/${a.key}`,
      });
      return sent ? done('alert sent') : skipped('alert already sent recently');
    }
  }
}

/** What an action is about, for alert de-duplication. */
function subjectOf(a: ReconcileAction): string {
  switch (a.kind) {
    case 'detach-volume': return a.volumeId;
    case 'redrive-replacement': case 'repair-master': case 'drive-retirement': return a.instanceId;
    case 'remove-stray': return a.memberId;
    case 'backup': return 'backup';
    case 'start-member': return a.instanceId;
    case 'recover': return 'recovery';
    case 'alert': return a.key;
  }
}

function summarize(cluster: string, plan: ReconcilePlan, steps: readonly ReconcileStep[], dryRun: boolean): string {
  if (plan.actions.length === 0) return `reconcile ${cluster}: in shape, nothing to do${plan.notes.length ? `; noted: ${plan.notes.join('; ')}` : ''}`;
  const found = plan.actions.map(describeAction).join('; ');
  const did = dryRun ? 'dry run, nothing done' : steps.map((x) => `${x.result === 'done' ? '' : `${x.result.toUpperCase()} `}${x.detail}`).join('; ');
  return `reconcile ${cluster}: drift ${plan.drift}; found: ${found}; did: ${did}${plan.notes.length ? `; noted: ${plan.notes.join('; ')}` : ''}`;
}

/** One reconciler run for one cluster: read, plan, remember first sightings, act (unless dry run). */
export async function reconcileCluster(deps: ReconcileDeps, cluster: string, settings: ReconcileSettings, opts: { dryRun?: boolean } = {}): Promise<ReconcileOutcome> {
  const read = withLockView({
    observe: deps.observe, clock: deps.clock, ...(deps.signal ? { signal: deps.signal } : {}),
    ...(deps.recovery ? { recovery: { read: { ...deps, journal: deps.recovery.journal }, settings: deps.recovery.settings } } : {}),
  }, deps.lock, deps.memory);
  const { world, plan } = await planCluster(read, cluster, settings, deps.backup ? { store: deps.backup.settings.store } : {});
  const dryRun = opts.dryRun ?? false;
  const steps: ReconcileStep[] = [];
  if (!dryRun) {
    await deps.memory.put(cluster, plan.seen);
    // Identity found by name or peer URL is recorded: it then holds when names or URLs change.
    for (const slot of world.slots) if (slot.claim && slot.claim.basis !== 'recorded') await deps.memberIds.record(cluster, slot.member, slot.claim.id, `reconciler, by ${slot.claim.basis}`);
    const run = new FlowRun(deps, { owner: 'reconciler' });
    for (const a of [...plan.actions].sort((x, y) => ORDER[x.kind] - ORDER[y.kind])) {
      deps.signal?.throwIfAborted();
      run.say(a.kind, 'start', describeAction(a));
      let r: StepResult;
      try {
        r = await execute(run, deps, cluster, a);
      } catch (err) {
        if (run.aborted) throw err;
        r = failed(`${describeAction(a)}: ${err instanceof Error ? err.message : String(err)}`);
      }
      run.say(a.kind, r.result === 'done' ? 'ok' : r.result === 'skipped' ? 'skip' : 'fail', r.detail);
      steps.push({ action: a, result: r.result, detail: r.detail });
      if (r.alert) {
        await deps.alerter.alert({
          severity: 'warning', cluster, flow: 'reconcile', step: a.kind, summary: `reconciler could not ${describeAction(a)}: ${r.detail}`.slice(0, 400),
          action: 'Check `quorum-keeper status` and the reconciler logs; the next run tries again.', dedupeKey: `${cluster}/reconcile/${a.kind}-failed/${subjectOf(a)}`,
        });
      }
    }
  }
  return { cluster, dryRun, drift: plan.drift, plan, steps, summary: summarize(cluster, plan, steps, dryRun) };
}
