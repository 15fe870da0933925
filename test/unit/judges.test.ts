/**
 * The two shared judgements (lib/domain/judge.ts), each by one rule with a table test, and the
 * proof that status, the reconciler and the departure gate agree on the same views: they all
 * ask `slotGaps`. Views come from `observeCluster` over in-memory ports (test/support/fake-world.ts).
 */
import { departureGate } from '../../lib/domain/departure';
import { etcdStoppedOn, judgeQuorum, type QuorumJudgement, slotGaps } from '../../lib/domain/judge';
import { DEFAULT_RECONCILE, planReconcile } from '../../lib/domain/reconcile';
import { judgeStatus } from '../../lib/domain/status';
import type { EtcdView } from '../../lib/domain/view';
import { readWorld } from '../../lib/flows/reconcile';
import { observeCluster } from '../../lib/observe/observe';
import { fixedClock } from '../support/fake-world';

const CTX = { clock: fixedClock() };
import { fakePorts, type FakeWorld, healthyWorld, hexId, hostReport, member, status } from '../support/fake-world';

const etcdOf = (members: EtcdView['members'], statuses: ReturnType<typeof status>[], unreachable: Array<[string, string]> = []): Pick<EtcdView, 'members' | 'status'> => ({
  members, status: { statuses, unreachable: unreachable.map(([h, error]) => ({ endpoint: `https://${h}:2379`, error })) },
});
const three = ['a', 'b', 'c'].map((h) => member(h, `etcd-${h}`));
const TIMEOUT = 'context deadline exceeded';
const REFUSED = 'dial tcp 127.0.0.1:2379: connect: connection refused';

describe('judgeQuorum: one rule, and "cannot see" is never "lost"', () => {
  const cases: Array<[string, Pick<EtcdView, 'members' | 'status'>, Partial<QuorumJudgement>]> = [
    ['all three follow a', etcdOf(three, [status('a', 'a'), status('b', 'a'), status('c', 'a')]), { state: 'quorate', healthyVoters: 3, margin: 1 }],
    ['one follower slow to answer: quorate, margin 0', etcdOf(three, [status('a', 'a'), status('c', 'a')], [['b', TIMEOUT]]), { state: 'quorate', healthyVoters: 2, margin: 0 }],
    ['the leader answered, both followers slow: unknown, not lost', etcdOf(three, [status('a', 'a')], [['b', TIMEOUT], ['c', TIMEOUT]]), { state: 'unknown', healthyVoters: 1, downIds: [] }],
    ['the leader answered, both followers refused the connection: lost', etcdOf(three, [status('a', 'a')], [['b', REFUSED], ['c', REFUSED]]), { state: 'lost', downIds: [hexId('b'), hexId('c')] }],
    ['a survivor without a leader, two refused: lost', etcdOf(three, [status('a', null)], [['b', REFUSED], ['c', REFUSED]]), { state: 'lost', leader: null }],
    ['a survivor without a leader, two slow: unknown', etcdOf(three, [status('a', null)], [['b', TIMEOUT], ['c', TIMEOUT]]), { state: 'unknown', downIds: [hexId('a')] }],
    ['no member answered at all: unknown', { members: null, status: { statuses: [], unreachable: [] } }, { state: 'unknown', why: 'no etcd member answered' }],
    ['a learner is no voter: 2 of 2 voters follow', etcdOf([...three.slice(0, 2), member('c', 'etcd-c', { isLearner: true })], [status('a', 'a'), status('b', 'a'), status('c', 'a', { isLearner: true })]),
      { state: 'quorate', voters: 2, healthyVoters: 2, healthyIds: [hexId('a'), hexId('b'), hexId('c')] }],
    ['five voters, two slow, three follow: quorate at margin 0', etcdOf([...three, member('d', 'etcd-d'), member('e', 'etcd-e')], [status('a', 'a'), status('b', 'a'), status('c', 'a')], [['d', TIMEOUT], ['e', TIMEOUT]]),
      { state: 'quorate', voters: 5, quorum: 3, margin: 0 }],
  ];
  it.each(cases)('%s', (_name, etcd, expected) => {
    expect(judgeQuorum(etcd)).toMatchObject(expected);
  });

  it('the fleet testifies: a survivor without a leader whose two peers\' slots have no instance left is lost (their etcd cannot be running)', () => {
    const w = healthyWorld();
    const etcd = etcdOf(three, [status('a', null)], [['b', TIMEOUT], ['c', TIMEOUT]]);
    const gone = w.slots.map((s) => (s.member === 'etcd-a' ? s : { ...s, instanceId: null, instances: [{ instanceId: `x-${s.member}`, lifecycleState: 'Terminated' }] }));
    expect(judgeQuorum(etcd, { slots: gone, claims: {} }).state).toBe('unknown'); // identity not read: the fleet cannot say whose member is gone
    const claims = { 'etcd-a': { id: hexId('a'), basis: 'name' as const }, 'etcd-b': { id: hexId('b'), basis: 'name' as const }, 'etcd-c': { id: hexId('c'), basis: 'name' as const } };
    expect(judgeQuorum(etcd, { slots: gone, claims })).toMatchObject({ state: 'lost', downIds: [hexId('a'), hexId('b'), hexId('c')] });
  });

  /** The hosts' word: the masters of `members` say etcd is stopped, the others that it runs. */
  const stoppedOn = (slots: FakeWorld['slots'], members: readonly string[]) => Object.fromEntries(slots.map((x) => [x.instanceId!, { report: hostReport(x.member, { running: !members.includes(x.member) }) }]));

  it('etcdStoppedOn: a slot counts only when every master that may run its member was asked and says etcd is stopped', () => {
    const w = healthyWorld();
    const said = (running: boolean) => ({ report: hostReport('x', { running }) });
    // Asked and stopped.
    expect(etcdStoppedOn({ slots: w.slots, hosts: { 'i-a': said(false), 'i-b': said(true) } })).toEqual(['etcd-a']);
    // A retiring master (Terminating:Wait) still runs etcd for all the new one knows: both must say stopped.
    const two = [{ ...w.slots[0]!, instances: [{ instanceId: 'i-a', lifecycleState: 'InService' }, { instanceId: 'i-old', lifecycleState: 'Terminating:Wait' }] }];
    expect(etcdStoppedOn({ slots: two, hosts: { 'i-a': said(false) } })).toEqual([]);
    expect(etcdStoppedOn({ slots: two, hosts: { 'i-a': said(false), 'i-old': said(false) } })).toEqual(['etcd-a']);
    // A terminated instance cannot run it: not asked, not needed.
    const gone = [{ ...w.slots[0]!, instances: [{ instanceId: 'i-a', lifecycleState: 'InService' }, { instanceId: 'i-dead', lifecycleState: 'Terminated' }] }];
    expect(etcdStoppedOn({ slots: gone, hosts: { 'i-a': said(false) } })).toEqual(['etcd-a']);
    // Not answering (agent offline, command failed) testifies nothing; neither does `running: false` without `stopped`.
    expect(etcdStoppedOn({ slots: w.slots.slice(0, 1), hosts: { 'i-a': { unavailable: 'its SSM agent is not online' } } })).toEqual([]);
    expect(etcdStoppedOn({ slots: w.slots.slice(0, 1), hosts: { 'i-a': { report: hostReport('a', { running: false, stopped: false }) } } })).toEqual([]);
    // A slot without any live master is judged empty elsewhere, not "stopped".
    expect(etcdStoppedOn({ slots: [{ ...w.slots[0]!, instanceId: null, instances: [] }], hosts: {} })).toEqual([]);
  });

  it('the hosts testify: a master that says its etcd is not running is evidence; a silent one is not', () => {
    const w = healthyWorld();
    const claims = { 'etcd-a': { id: hexId('a'), basis: 'name' as const }, 'etcd-b': { id: hexId('b'), basis: 'name' as const }, 'etcd-c': { id: hexId('c'), basis: 'name' as const } };
    const slow = etcdOf(three, [status('a', null)], [['b', TIMEOUT], ['c', TIMEOUT]]);
    // Two peers slow: cannot see. Their masters say etcd is stopped there: lost.
    expect(judgeQuorum(slow, { slots: w.slots, claims }).state).toBe('unknown');
    expect(judgeQuorum(slow, { slots: w.slots, claims, hosts: stoppedOn(w.slots, ['etcd-b', 'etcd-c']) })).toMatchObject({ state: 'lost', downIds: [hexId('a'), hexId('b'), hexId('c')] });
    // etcd-a without a leader and etcd-b stopped: two of three down, lost whatever etcd-c would say.
    expect(judgeQuorum(slow, { slots: w.slots, claims, hosts: stoppedOn(w.slots, ['etcd-b']) }).state).toBe('lost');
    // All three slow and one stopped: two may still form a quorum; cannot tell.
    const allSlow = etcdOf(three, [], [['a', TIMEOUT], ['b', TIMEOUT], ['c', TIMEOUT]]);
    expect(judgeQuorum(allSlow, { slots: w.slots, claims, hosts: stoppedOn(w.slots, ['etcd-b']) })).toMatchObject({ state: 'unknown', downIds: [hexId('b')] });
    // Nobody answered at all: lost only when every master says etcd is stopped (or has no instance).
    const silent = { members: null, status: { statuses: [], unreachable: [] } };
    expect(judgeQuorum(silent, { slots: w.slots, claims: {}, hosts: stoppedOn(w.slots, ['etcd-a', 'etcd-b', 'etcd-c']) })).toMatchObject({ state: 'lost', why: expect.stringMatching(/etcd runs on none of the 3 masters/) as unknown });
    expect(judgeQuorum(silent, { slots: w.slots, claims: {}, hosts: stoppedOn(w.slots, ['etcd-a', 'etcd-b']) }).state).toBe('unknown');
    // A quorate cluster stays quorate whatever a host claims (the answers are the stronger evidence).
    expect(judgeQuorum(w.etcd, { slots: w.slots, claims, hosts: stoppedOn(w.slots, ['etcd-c']) }).state).toBe('quorate');
  });
});

describe('slotGaps: the one "slot is whole" rule', () => {
  const judged = (edit: (w: FakeWorld) => void, slot = 'etcd-b') => {
    const w = healthyWorld();
    edit(w);
    const view = { slots: w.slots, etcd: { ...w.etcd }, claims: {}, targets: w.targets, volumes: Object.fromEntries(w.volumes.map((v) => [v.memberTag!, { volumeId: v.volumeId, volumeState: v.state, attachmentState: v.attachmentState, attachedTo: v.attachedTo }])) };
    return slotGaps(view, view.slots.find((s) => s.member === slot)!, judgeQuorum(view.etcd));
  };
  const slotB = (w: FakeWorld) => w.slots[1]!;
  const cases: Array<[string, (w: FakeWorld) => void, string[]]> = [
    ['whole', () => undefined, []],
    ['no target group tagged for the cluster: whole (doctor checks the set-up)', (w) => { w.targets = null; }, []],
    ['its master not yet healthy in the target group', (w) => { w.targets!['i-b'] = 'initial'; }, ["etcd-b's master i-b is initial in the target group"]],
    ['its master not registered', (w) => { delete w.targets!['i-b']; }, ["etcd-b's master i-b is not registered in the target group"]],
    ['no instance at all', (w) => { slotB(w).instances = []; slotB(w).instanceId = null; }, ['etcd-b has no master']],
    ['only a replacement in Pending:Wait', (w) => { slotB(w).instances = [{ instanceId: 'i-b2', lifecycleState: 'Pending:Wait' }]; slotB(w).instanceId = null; w.etcd.status.statuses.splice(1, 1); },
      ['etcd-b has no InService master (i-b2 Pending:Wait)', `etcd-b (${hexId('b')}) is not following the leader`]],
    ['retiring but still following: not left yet, whole', (w) => { slotB(w).instances = [{ instanceId: 'i-b', lifecycleState: 'Terminating:Wait' }]; slotB(w).instanceId = null; }, []],
    ['launch before terminate: judged by its member, still on the retiring master', (w) => { slotB(w).instances = [{ instanceId: 'i-b', lifecycleState: 'Terminating:Wait' }, { instanceId: 'i-b2', lifecycleState: 'Pending:Wait' }]; slotB(w).instanceId = null; }, []],
    ['its member a learner', (w) => { w.etcd.members![1] = member('b', 'etcd-b', { isLearner: true }); }, ['etcd-b is still a learner']],
    ['no member for it', (w) => { w.etcd.members!.splice(1, 1); }, ['etcd-b is not an etcd member']],
    ['its member slow to answer', (w) => { w.etcd.status.statuses.splice(1, 1); w.etcd.status.unreachable.push({ endpoint: 'https://b:2379', error: TIMEOUT }); }, [`etcd-b (${hexId('b')}) is not following the leader`]],
    ['its volume detached', (w) => { Object.assign(w.volumes[1]!, { attachedTo: null, attachmentState: null, state: 'available' }); }, ["etcd-b's volume vol-b is available, not attached to i-b"]],
    ['its volume still attaching', (w) => { w.volumes[1]!.attachmentState = 'attaching'; }, ["etcd-b's volume vol-b is attaching to i-b, not attached to i-b"]],
    ['no volume tagged for it', (w) => { w.volumes.splice(1, 1); }, ['etcd-b has no etcd volume tagged for it']],
  ];
  it.each(cases)('%s', (_name, edit, gaps) => {
    expect(judged(edit)).toEqual(gaps);
  });
});

/** One view, three judges: the gaps each names per slot. */
async function threeJudges(w: FakeWorld) {
  const ports = fakePorts(w);
  const view = await observeCluster(ports, 'prod', { volumes: true, targets: true, etcd: {}, claims: true, records: true, backups: null }, CTX);
  const st = judgeStatus(view);
  const world = await readWorld({ observe: fakePorts(w), clock: fixedClock(w.now) }, 'prod');
  const plan = planReconcile({ ...world, firstSeen: Object.fromEntries(world.slots.flatMap((s) => (s.master ? [[`repair#${s.master.instanceId}`, w.now - 3_600_000]] : []))) }, DEFAULT_RECONCILE);
  const gate = departureGate(view, 'etcd-a', 'https://a:2379');
  const others = ['etcd-b', 'etcd-c'];
  return {
    quorum: judgeQuorum(view.etcd, view).state,
    // status: the slot problems it lists; reconcile: what its world says of each slot; the gate: the other slots it names.
    status: others.map((m) => st.problems.filter((p) => p.startsWith(`${m} `) || p.startsWith(`${m}'s `))),
    reconcile: others.map((m) => [...(world.slots.find((s) => s.member === m)?.master?.gaps ?? [])]),
    gate: others.map((m) => (gate.go ? [] : gate.detail.split(/: |, |; /).filter((p) => p.startsWith(`${m} `) || p.startsWith(`${m}'s `)))),
    healthy: st.healthy,
    repairs: plan.actions.filter((a) => a.kind === 'repair-master').map((a) => a.kind === 'repair-master' && a.member),
    go: gate.go ? 'go' : gate.kind,
  };
}

describe('status, the reconciler and the departure gate agree on the same views', () => {
  const cases: Array<[string, (w: FakeWorld) => void, { quorum: string; healthy: boolean; repairs: string[]; go: string; notWhole: string[] }]> = [
    ['a healthy cluster', () => undefined, { quorum: 'quorate', healthy: true, repairs: [], go: 'go', notWhole: [] }],
    ['a cluster without a target group', (w) => { w.targets = null; }, { quorum: 'quorate', healthy: true, repairs: [], go: 'go', notWhole: [] }],
    ['a member slow to answer (etcd-b\'s status timed out)', (w) => {
      w.etcd.status.statuses.splice(1, 1);
      w.etcd.status.unreachable.push({ endpoint: 'https://b:2379', error: TIMEOUT });
    }, { quorum: 'quorate', healthy: false, repairs: ['etcd-b'], go: 'would-lose-quorum', notWhole: ['etcd-b'] }],
    ['a cluster without quorum (etcd-a alone, no leader; b and c refuse connections)', (w) => {
      w.etcd.membersFrom = 'local';
      w.etcd.status = { statuses: [status('a', null)], unreachable: [{ endpoint: 'https://b:2379', error: REFUSED }, { endpoint: 'https://c:2379', error: REFUSED }] };
    }, { quorum: 'lost', healthy: false, repairs: [], go: 'no-leader', notWhole: ['etcd-b', 'etcd-c'] }],
  ];
  it.each(cases)('%s', async (_name, edit, expected) => {
    const w = healthyWorld();
    edit(w);
    const j = await threeJudges(w);
    expect({ quorum: j.quorum, healthy: j.healthy, repairs: j.repairs, go: j.go }).toEqual({ quorum: expected.quorum, healthy: expected.healthy, repairs: expected.repairs, go: expected.go });
    // The same gaps, slot by slot, from status and the reconciler; the gate names them too (when it judges the other slots: with a leader).
    expect(j.reconcile).toEqual(j.status);
    expect(j.status.map((g, i) => (g.length ? ['etcd-b', 'etcd-c'][i] : null)).filter(Boolean)).toEqual(expected.notWhole);
    if (expected.go !== 'no-leader') expect(j.gate).toEqual(j.status);
  });
});
