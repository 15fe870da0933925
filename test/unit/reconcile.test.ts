import { DEFAULT_RECONCILE, describeAction, planReconcile, type ReconcileWorld, strayRemoval } from '../../lib/domain/reconcile';

const NOW = Date.UTC(2026, 10, 25, 12, 0, 0);
const MIN = 60_000;
const slot = (member: string, instanceId: string, state = 'InService') => ({ member, asg: `prod-${member}`, instances: [{ instanceId, lifecycleState: state }] });
const vol = (member: string, attachedTo: string | null, attachedInstanceState: string | null = attachedTo ? 'running' : null) => ({
  member, volumeId: `vol-${member}`, state: attachedTo ? 'in-use' : 'available', attachedTo, attachedInstanceState,
});
const healthy = (): ReconcileWorld => ({
  cluster: 'prod', now: NOW,
  slots: [slot('etcd-a', 'i-a'), slot('etcd-b', 'i-b'), slot('etcd-c', 'i-c')],
  volumes: [vol('etcd-a', 'i-a'), vol('etcd-b', 'i-b'), vol('etcd-c', 'i-c')],
  etcd: { members: [{ id: 'a1', name: 'etcd-a', isLearner: false }, { id: 'b1', name: 'etcd-b', isLearner: false }, { id: 'c1', name: 'etcd-c', isLearner: false }], leader: 'a1', healthyIds: ['a1', 'b1', 'c1'] },
  firstSeen: {}, lockHeld: false, backupAgeSec: 600,
});

describe('planReconcile', () => {
  it('names after hosts, every slot claiming its member by identity: no strays, no repairs, nothing to do (issue 18)', () => {
    const base = healthy();
    const w: ReconcileWorld = {
      ...base,
      etcd: { ...base.etcd, members: base.etcd.members!.map((x, i) => ({ ...x, name: `ip-10-0-${i + 1}-5` })) },
      slots: base.slots.map((x, i) => ({ ...x, claim: { id: ['a1', 'b1', 'c1'][i]!, basis: 'peer-url' as const }, master: { instanceId: x.instances[0]!.instanceId, gaps: [] } })),
    };
    expect(planReconcile(w, { ...DEFAULT_RECONCILE, strayGraceSec: 0, repairGraceSec: 0 }).actions).toEqual([]);
    // Without the claims the same world has three live strays (alerts, never removals) and three masters "not members".
    const unclaimed = planReconcile({ ...w, slots: w.slots.map(({ claim: _c, ...x }) => x) }, { ...DEFAULT_RECONCILE, strayGraceSec: 0, repairGraceSec: 0 });
    expect(unclaimed.actions.filter((a) => a.kind === 'remove-stray')).toEqual([]);
    expect(unclaimed.actions.filter((a) => a.kind === 'alert' && a.code === 'stray-live')).toHaveLength(3);
  });

  it('an ASG tagged for the cluster with a missing or invalid member tag, or two with the same tag: one alert each, never guessed (issue 18)', () => {
    const base = healthy();
    const w: ReconcileWorld = { ...base, slots: [...base.slots, { ...slot('etcd-c', 'i-c2'), asg: 'prod-etcd-c-copy' }], badGroups: [{ asg: 'prod-x', memberTag: undefined }, { asg: 'prod-y', memberTag: 'Etcd_A' }] };
    const alerts = planReconcile(w).actions.filter((a) => a.kind === 'alert');
    expect(alerts.map((a) => a.kind === 'alert' && [a.code, a.key])).toEqual([['member-tag', 'prod-x'], ['member-tag', 'prod-y'], ['member-tag', 'prod-etcd-c-copy']]);
    expect(alerts.map((a) => a.kind === 'alert' && a.summary)).toEqual([
      'prod-x is tagged for prod but its member tag is missing: Quorum Keeper does not manage it',
      'prod-y is tagged for prod but its member tag ("Etcd_A") is not a valid member name: Quorum Keeper does not manage it',
      'prod-etcd-c-copy and prod-etcd-c are both tagged as member etcd-c of prod',
    ]);
  });

  it('a cluster in its desired shape: nothing to do, drift 0', () => {
    expect(planReconcile(healthy())).toEqual({ actions: [], notes: [], drift: 0, seen: {} });
  });

  it('a launch event that never came: re-drives the replacement only after the grace period and never while a flow drives the slot', () => {
    const w = { ...healthy(), slots: [slot('etcd-a', 'i-new', 'Pending:Wait'), slot('etcd-b', 'i-b'), slot('etcd-c', 'i-c')] };
    const first = planReconcile(w);
    expect(first.actions).toEqual([]);
    expect(first.notes).toEqual(['etcd-a: i-new in Pending:Wait for 0 s (grace 300 s)']);
    expect(first.seen).toEqual({ 'pending#i-new': NOW });
    const later = { ...w, now: NOW + 6 * MIN, firstSeen: first.seen };
    expect(planReconcile(later).actions).toEqual([{ kind: 'redrive-replacement', member: 'etcd-a', asg: 'prod-etcd-a', instanceId: 'i-new', reason: 'in Pending:Wait for 360 s with no flow making progress' }]);
    const driven = planReconcile({ ...later, slots: later.slots.map((x) => (x.member === 'etcd-a' ? { ...x, busy: true } : x)) });
    expect(driven.actions).toEqual([]);
    expect(driven.notes).toEqual(['etcd-a: i-new in Pending:Wait for 360 s; a flow is driving this slot']);
    // The cluster lock (a membership change elsewhere) does not stop a re-drive: the flow waits for it.
    expect(planReconcile({ ...later, lockHeld: true }).actions.map((a) => a.kind)).toEqual(['redrive-replacement']);
  });

  it('a master in Terminating:Wait no flow drives: its hook is kept alive and the retirement re-driven at once (no grace: the heartbeat timeout runs)', () => {
    const w = { ...healthy(), slots: [slot('etcd-a', 'i-a', 'Terminating:Wait'), slot('etcd-b', 'i-b'), slot('etcd-c', 'i-c')] };
    expect(planReconcile(w).actions).toEqual([{ kind: 'drive-retirement', member: 'etcd-a', asg: 'prod-etcd-a', instanceId: 'i-a', reason: 'in Terminating:Wait with no flow keeping its hook alive' }]);
    const driven = planReconcile({ ...w, slots: w.slots.map((x) => (x.member === 'etcd-a' ? { ...x, retiringBusy: ['i-a'] } : x)) });
    expect(driven.actions).toEqual([]);
    expect(driven.notes).toEqual(['etcd-a: i-a is retiring; a flow is driving it']);
  });

  it('an InService master that is not whole (by the one rule, read with the world) is repaired after the grace, only while the cluster has a leader and no flow drives it', () => {
    // What "whole" means is judged once, by slotGaps (test/unit/judges.test.ts); the plan acts on its answer.
    const whole = { instanceId: 'i-b', gaps: [] as string[] };
    const withB = (master: typeof whole, over: Partial<ReconcileWorld> = {}): ReconcileWorld => {
      const base = healthy();
      return { ...base, now: NOW + 6 * MIN, firstSeen: { 'repair#i-b': NOW }, slots: base.slots.map((x) => (x.member === 'etcd-b' ? { ...x, master } : x)), ...over };
    };
    expect(planReconcile(withB(whole)).actions).toEqual([]);
    const gaps = ['etcd-b (b1) is not following the leader', "etcd-b's master i-b is unhealthy in the target group"];
    expect(planReconcile(withB({ ...whole, gaps })).actions).toEqual([{
      kind: 'repair-master', member: 'etcd-b', asg: 'prod-etcd-b', instanceId: 'i-b',
      reason: "etcd-b (b1) is not following the leader; etcd-b's master i-b is unhealthy in the target group for 360 s",
    }]);
    expect(describeAction(planReconcile(withB({ ...whole, gaps: ['etcd-b is not an etcd member'] })).actions[0]!))
      .toBe('repair etcd-b on i-b with the replacement flow (etcd-b is not an etcd member for 360 s)');
    // Within the grace: a note, and the first sighting is remembered.
    const early = planReconcile(withB({ ...whole, gaps: ["etcd-b's master i-b is initial in the target group"] }, { firstSeen: {}, now: NOW }));
    expect(early.actions).toEqual([]);
    expect(early.notes).toEqual(["etcd-b's master i-b is initial in the target group for 0 s (grace 300 s)"]);
    expect(early.seen).toEqual({ 'repair#i-b': NOW });
    // A flow drives the slot; or the cluster has no leader (repairs would be refused; the alarms own it).
    const busy = withB({ ...whole, gaps });
    expect(planReconcile({ ...busy, slots: busy.slots.map((x) => (x.member === 'etcd-b' ? { ...x, busy: true } : x)) }).actions).toEqual([]);
    expect(planReconcile(withB({ ...whole, gaps }, { etcd: { ...healthy().etcd, leader: null } })).actions).toEqual([]);
  });

  it('a stray member is removed only once it has not answered for its whole grace, with a leader, and only if quorum holds without it', () => {
    const base = healthy();
    const withStray = (healthyIds: string[], leader = 'a1'): ReconcileWorld => ({
      ...base, now: NOW + 11 * MIN, firstSeen: { 'stray#d1': NOW },
      etcd: { members: [...base.etcd.members!, { id: 'd1', name: 'etcd-old', isLearner: false }], leader, healthyIds },
    });
    expect(planReconcile({ ...withStray(['a1', 'b1', 'c1']), now: NOW + MIN }).actions).toEqual([]); // within grace
    expect(planReconcile(withStray(['a1', 'b1', 'c1'])).actions).toEqual([
      { kind: 'remove-stray', memberId: 'd1', name: 'etcd-old', reason: 'no slot for 660 s; 3/3 healthy voters remain (quorum 2)' },
    ]);
    // 4 voters, only a1 and b1 healthy: removing the stray leaves 2/3, fine; with only a1 → 1/3 → refused, alert.
    const unsafe = planReconcile(withStray(['a1']));
    expect(unsafe.actions.map((a) => a.kind)).toEqual(['alert']);
    expect(describeAction(unsafe.actions[0]!)).toMatch(/removing it would leave 1\/3 healthy voters \(quorum 2\)/);
    const noLeader = { ...withStray([]), etcd: { ...withStray([]).etcd, leader: null } };
    expect(planReconcile(noLeader).actions.map((a) => a.kind)).toEqual(['alert']);
    // Mid membership change (a replacement's learner has no name yet): decided next run, not now.
    const busy = planReconcile({ ...withStray(['a1', 'b1', 'c1']), lockHeld: true });
    expect(busy.actions).toEqual([]);
    expect(busy.notes).toEqual(['etcd member etcd-old has no slot for 660 s; a membership change holds the lock, decided next run']);
  });

  it('never removes a voter that answers and follows the leader: a healthy 4th voter no slot claims is an alert, at any grace, run after run', () => {
    const base = healthy();
    const w: ReconcileWorld = {
      ...base, now: NOW + 60 * MIN, firstSeen: { 'stray#d1': NOW },
      etcd: { members: [...base.etcd.members!, { id: 'd1', name: 'etcd-hand', isLearner: false }], leader: 'a1', healthyIds: ['a1', 'b1', 'c1', 'd1'] },
    };
    const plan = planReconcile(w, { ...DEFAULT_RECONCILE, strayGraceSec: 0 });
    expect(plan.actions).toEqual([expect.objectContaining({ kind: 'alert', code: 'stray-live', key: 'd1' })]);
    expect(describeAction(plan.actions[0]!)).toMatch(/etcd-hand \(d1\) answers and follows the leader, but no slot claims it: not removed/);
    // Its grace is not remembered while it answers: were it to stop, the whole grace would start then.
    expect(plan.seen).toEqual({});
  });

  it('etcd names that differ from the slot tags (kubeadm-style): three healthy "strays" are never removed, and never below the slots', () => {
    const base = healthy();
    const hosts = [{ id: 'a1', name: 'ip-10-0-1-5', isLearner: false }, { id: 'b1', name: 'ip-10-0-2-5', isLearner: false }, { id: 'c1', name: 'ip-10-0-3-5', isLearner: false }];
    const plan = planReconcile({ ...base, etcd: { members: hosts, leader: 'a1', healthyIds: ['a1', 'b1', 'c1'] } }, { ...DEFAULT_RECONCILE, strayGraceSec: 0 });
    expect(plan.actions.filter((a) => a.kind === 'remove-stray')).toEqual([]);
    expect(plan.actions.filter((a) => a.kind === 'alert' && a.code === 'stray-live')).toHaveLength(3);
    // One of them down for the whole grace: still not removed, it would leave 2 voters for 3 slots.
    const down = planReconcile({ ...base, firstSeen: { 'stray#c1': NOW - 60 * MIN }, etcd: { members: hosts, leader: 'a1', healthyIds: ['a1', 'b1'] } });
    expect(down.actions.filter((a) => a.kind === 'remove-stray')).toEqual([]);
    expect(down.actions.map(describeAction).join('\n')).toMatch(/would leave 2 voter\(s\) for 3 slots/);
  });

  it('strayRemoval: learners do not count as voters; an unstarted voter can go while the rest keep quorum; never a live one, never below the slots', () => {
    const etcd = (extra: { id: string; isLearner: boolean }, healthyIds: string[]) => ({
      members: [...healthy().etcd.members!, { ...extra, name: '' }], leader: 'a1', healthyIds,
    });
    expect(strayRemoval(etcd({ id: 'l1', isLearner: true }, ['a1', 'b1']), { id: 'l1', isLearner: true }, 3)).toEqual({ ok: true, reason: '2/3 healthy voters remain (quorum 2)' });
    expect(strayRemoval(etcd({ id: 'd1', isLearner: false }, ['a1', 'b1', 'c1']), { id: 'd1', isLearner: false }, 3)).toEqual({ ok: true, reason: '3/3 healthy voters remain (quorum 2)' });
    expect(strayRemoval(etcd({ id: 'd1', isLearner: false }, ['a1']), { id: 'd1', isLearner: false }, 3)).toMatchObject({ ok: false, why: 'removing it would leave 1/3 healthy voters (quorum 2)' });
    expect(strayRemoval(etcd({ id: 'd1', isLearner: false }, ['a1', 'b1', 'c1', 'd1']), { id: 'd1', isLearner: false }, 3)).toMatchObject({ ok: false, why: 'it answers and follows the leader' });
    expect(strayRemoval(etcd({ id: 'd1', isLearner: false }, ['a1', 'b1', 'c1']), { id: 'd1', isLearner: false }, 4)).toMatchObject({ ok: false, why: 'removing it would leave 3 voter(s) for 4 slots' });
    expect(strayRemoval({ members: null, leader: null, healthyIds: [] }, { id: 'd1', isLearner: false }, 3)).toMatchObject({ ok: false, why: 'the cluster has no leader' });
  });

  it('nothing is decided about membership when no member answered', () => {
    expect(planReconcile({ ...healthy(), etcd: { members: null, leader: null, healthyIds: [] } }).actions).toEqual([]);
  });

  it('detaches a volume left on a terminated instance; an orphan volume is only reported; a volume on a running instance is never touched', () => {
    const w = { ...healthy(), slots: [slot('etcd-a', 'i-a2'), slot('etcd-b', 'i-b'), { member: 'etcd-c', asg: 'prod-etcd-c', instances: [] }],
      volumes: [vol('etcd-a', 'i-a', 'terminated'), vol('etcd-b', 'i-b'), vol('etcd-c', null)] };
    const p = planReconcile(w);
    expect(p.actions.filter((a) => a.kind === 'detach-volume')).toEqual([{ kind: 'detach-volume', member: 'etcd-a', volumeId: 'vol-etcd-a', instanceId: 'i-a', reason: 'still attached to terminated i-a' }]);
    expect(p.actions.filter((a) => a.kind === 'alert').map((a) => a.kind === 'alert' && a.code)).toEqual(['slot-empty', 'orphan-volume']);
    expect(p.actions.some((a) => a.kind === 'detach-volume' && a.volumeId === 'vol-etcd-b')).toBe(false);
  });

  it('a stale or missing backup: take one and alert; an unknown listing decides nothing', () => {
    expect(planReconcile({ ...healthy(), backupAgeSec: 2 * 3600 }).actions.map((a) => a.kind)).toEqual(['backup', 'alert']);
    expect(planReconcile({ ...healthy(), backupAgeSec: null }).actions[0]).toEqual({ kind: 'backup', reason: 'there is no backup' });
    expect(planReconcile({ ...healthy(), backupAgeSec: 'unknown' }).actions).toEqual([]);
    expect(planReconcile({ ...healthy(), backupAgeSec: 2 * 3600 }).drift).toBe(1);
  });
});

describe('planReconcile: quorum loss (the recovery verdict)', () => {
  const lost = (verdict: NonNullable<ReconcileWorld['recovery']>['verdict'], firstSeen: Record<string, number> = {}): ReconcileWorld => ({
    ...healthy(), etcd: { members: null, leader: null, healthyIds: [] }, firstSeen,
    recovery: { verdict, clientUrls: { 'etcd-c': 'https://10.0.3.5:2379' }, highestSeen: 1234 },
  });
  const restore = (mode: 'manual' | 'automatic') => ({
    kind: 'restore' as const, mode, source: { kind: 'member' as const, member: 'etcd-c', instanceId: 'i-c', revision: 1200 }, why: 'quorum lost for 700 s', chosenBecause: 'the survivor', highest: 1234, revisionsLost: 34, lostForSec: 700,
  });

  it('members down on their own data are started, and the start and the loss are remembered', () => {
    const p = planReconcile(lost({ kind: 'start', why: 'two can run', members: [{ member: 'etcd-a', kind: 'own-data', instanceId: 'i-a', revision: 9, why: 'down' }] }, { 'lost#quorum': NOW - MIN }));
    expect(p.actions).toEqual([expect.objectContaining({ kind: 'start-member', member: 'etcd-a', instanceId: 'i-a' })]);
    expect(p.seen).toMatchObject({ 'lost#quorum': NOW - MIN, 'start#i-a': NOW, 'revision#high': 1234 });
  });

  it('automatic: a restore from the copy (its client URL passed on); manual: one alert naming `recover --plan`, nothing done', () => {
    expect(planReconcile(lost(restore('automatic'))).actions).toEqual([expect.objectContaining({ kind: 'recover', clientUrl: 'https://10.0.3.5:2379' })]);
    const manual = planReconcile(lost(restore('manual'))).actions;
    expect(manual.map((a) => a.kind === 'alert' && a.code)).toEqual(['quorum-lost']);
    expect(describeAction(manual[0]!)).toContain('quorum-keeper recover --cluster prod --plan');
  });

  it('waiting and cannot-see are notes only; an interrupted restore is finished only where automatic', () => {
    expect(planReconcile(lost({ kind: 'wait', why: 'a launch is under way' })).actions).toEqual([]);
    expect(planReconcile(lost({ kind: 'cannot-see', why: 'no member answered' })).notes).toContain('no member answered');
    expect(planReconcile(lost({ kind: 'unfinished', mode: 'automatic', token: 't', snapshotKey: 'k', why: 'interrupted' })).actions.map((a) => a.kind)).toEqual(['recover']);
    expect(planReconcile(lost({ kind: 'unfinished', mode: 'manual', token: 't', snapshotKey: 'k', why: 'interrupted' })).actions.map((a) => a.kind)).toEqual(['alert']);
  });
});
