/** Masters leave one at a time: the retirement's departure decision (lib/domain/departure). */
import { departureGate as gate } from '../../lib/domain/departure';
import { judgeQuorum, slotGaps, type SlotJudgeView } from '../../lib/domain/judge';
import type { SlotView } from '../../lib/domain/view';
import { memberIdFromHex, type Member, type EndpointStatus, type EndpointStatusReport } from '../../lib/etcd';

type OtherSlot = Pick<SlotView, 'member' | 'instances'>;
/** The view the gate reads: this member's slot (etcd-a on i-a) and the others, etcd through it, target health. */
const view = (members: Member[], report: EndpointStatusReport, others: readonly OtherSlot[], targets: ReadonlyMap<string, string> | null): SlotJudgeView => ({
  slots: [{ member: 'etcd-a', instances: [{ instanceId: 'i-a', lifecycleState: 'Terminating:Wait' }] }, ...others].map((o) => ({
    ...o, asg: `prod-${o.member}`, availabilityZones: [], instanceId: o.instances.find((i) => i.lifecycleState === 'InService')?.instanceId ?? null,
  })),
  etcd: { via: null, members, clusterId: null, membersFrom: 'quorum', status: report, clusterVersion: null, alarms: null, leases: {}, certs: [], tried: [], errors: [] },
  claims: {},
  targets: targets ? Object.fromEntries(targets) : null,
});
const departureGate = (members: Member[], report: EndpointStatusReport, me: string, others: readonly OtherSlot[], targets: ReadonlyMap<string, string> | null) =>
  gate(view(members, report, others, targets), 'etcd-a', me);
/** The one "slot is whole" rule's answer for `slot` (null: whole). */
const notWhole = (slot: OtherSlot, members: Member[], report: EndpointStatusReport, targets: ReadonlyMap<string, string> | null): string | null => {
  const v = view(members, report, [slot], targets);
  return slotGaps(v, v.slots[1]!, judgeQuorum(v.etcd, v)).join(', ') || null;
};

const id = (h: string) => memberIdFromHex(h);
const member = (h: string, name: string, extra: Partial<Member> = {}): Member => ({
  id: id(h), name, peerUrls: [`http://${h}:2380`], clientUrls: [`http://${h}:2379`], isLearner: false, started: true, ...extra,
});
const status = (h: string, leader: string | null, extra: Partial<EndpointStatus> = {}): EndpointStatus => ({
  endpoint: `http://${h}:2379`, memberId: id(h), clusterId: id('1'), version: '3.4.23', dbSize: 1, dbSizeInUse: 1, leader: leader ? id(leader) : null,
  isLeader: leader === h, isLearner: false, raftIndex: 10, raftAppliedIndex: 10, raftTerm: 2, revision: 5, errors: [], ...extra,
});
const report = (...s: EndpointStatus[]): EndpointStatusReport => ({ statuses: s, unreachable: [] });
const slot = (member: string, instanceId: string, state = 'InService'): OtherSlot => ({ member, instances: [{ instanceId, lifecycleState: state }] });

const members = [member('a', 'etcd-a'), member('b', 'etcd-b'), member('c', 'etcd-c')];
const all = report(status('a', 'a'), status('b', 'a'), status('c', 'a'));
const others = [slot('etcd-b', 'i-b'), slot('etcd-c', 'i-c')];
const healthy = new Map([['i-b', 'healthy'], ['i-c', 'healthy']]);
const ME = 'http://a:2379';

describe('departureGate', () => {
  it('every other slot whole and quorum kept → go', () => {
    expect(departureGate(members, all, ME, others, healthy)).toMatchObject({ go: true });
  });

  it('three retirements at once all read 3/3: only one may go — the others see its member stopped and wait', () => {
    // etcd-b already stopped (its retirement went first): quorum alone would let etcd-a go too.
    const bStopped = report(status('a', 'a'), status('c', 'a'));
    const bRetiring = [slot('etcd-b', 'i-b', 'Terminating:Wait'), slot('etcd-c', 'i-c')];
    const d = departureGate(members, bStopped, ME, bRetiring, healthy);
    // Expected during a rolling refresh (the ASG is replacing etcd-b): wait, no alarm.
    expect(d).toMatchObject({ go: false, kind: 'would-lose-quorum', inTransition: true });
    // The same with etcd-b's master InService but its etcd down: a failure, not a transition.
    expect(departureGate(members, bStopped, ME, others, healthy)).toMatchObject({ go: false, kind: 'would-lose-quorum', inTransition: false });
    // Even with five members (quorum kept), a second master does not leave while one is out.
    const five = [...members, member('d', 'etcd-d'), member('e', 'etcd-e')];
    const fiveOneOut = report(status('a', 'a'), status('c', 'a'), status('d', 'a'), status('e', 'a'));
    const slots5 = [slot('etcd-b', 'i-b', 'Pending:Wait'), slot('etcd-c', 'i-c'), slot('etcd-d', 'i-d'), slot('etcd-e', 'i-e')];
    expect(departureGate(five, fiveOneOut, ME, slots5, null)).toMatchObject({ go: false, kind: 'other-out', detail: expect.stringMatching(/etcd-b has no InService master \(i-b Pending:Wait\)/) as unknown });
  });

  it('a leader whose followers are both gone: quorum is already lost, and the detail says so, not "would lose"', () => {
    const alone = report(status('a', 'a'));
    const d = departureGate(members, alone, ME, others, healthy);
    expect(d).toMatchObject({ go: false, kind: 'would-lose-quorum', detail: expect.stringMatching(/^etcd has already lost quorum \(0 other healthy voter\(s\) of 3, quorum 2\)/) as unknown });
    // One follower gone: this stop is what would cost quorum.
    expect(departureGate(members, report(status('a', 'a'), status('c', 'a')), ME, others, healthy)).toMatchObject({ detail: expect.stringMatching(/^stopping would lose quorum/) as unknown });
  });

  it('a replacement that is InService and following but not yet healthy in the target group → wait', () => {
    const d = departureGate(members, all, ME, others, new Map([['i-b', 'initial'], ['i-c', 'healthy']]));
    expect(d).toMatchObject({ go: false, kind: 'other-out', detail: expect.stringMatching(/i-b is initial in the target group/) as unknown });
  });

  it('other masters that are retiring too but still follow the leader have not left: whole (else three refreshes wait on each other forever)', () => {
    const allRetiring = [slot('etcd-b', 'i-b', 'Terminating:Wait'), slot('etcd-c', 'i-c', 'Terminating:Wait')];
    // Their targets may already be draining: a master that is leaving is judged by etcd only.
    expect(departureGate(members, all, ME, allRetiring, new Map([['i-b', 'draining'], ['i-c', 'healthy']]))).toMatchObject({ go: true });
    expect(notWhole({ member: 'etcd-b', instances: [] }, members, all, null)).toMatch(/no master/);
    // Launch before terminate in two slots at once: each old master still follows the leader, a
    // new one waits beside it for the volume. Judged "out", the two would wait on each other forever.
    const beside = (m: string, old: string, fresh: string): OtherSlot => ({ member: m, instances: [{ instanceId: old, lifecycleState: 'Terminating:Wait' }, { instanceId: fresh, lifecycleState: 'Pending:Wait' }] });
    expect(departureGate(members, all, ME, [beside('etcd-b', 'i-b', 'i-b2'), slot('etcd-c', 'i-c')], healthy)).toMatchObject({ go: true });
  });

  it('a learner, a member that is missing, or one that follows no leader is not whole', () => {
    expect(notWhole(slot('etcd-b', 'i-b'), [members[0]!, member('b', 'etcd-b', { isLearner: true }), members[2]!], all, null)).toMatch(/still a learner/);
    expect(notWhole(slot('etcd-b', 'i-b'), [members[0]!, members[2]!], all, null)).toMatch(/not an etcd member/);
    expect(notWhole(slot('etcd-b', 'i-b'), members, report(status('a', 'a'), status('b', null), status('c', 'a')), null)).toMatch(/not following the leader/);
  });

  it('no leader → wait (an election is not "safe")', () => {
    expect(departureGate(members, report(status('a', null), status('b', null), status('c', null)), ME, others, healthy)).toMatchObject({ go: false, kind: 'no-leader' });
  });

  it('a member that is not a healthy voter itself may go while the others keep quorum, even with another slot out', () => {
    const meLost = report(status('a', null), status('b', 'b'), status('c', 'b'));
    const d = departureGate(members, meLost, ME, [slot('etcd-b', 'i-b'), slot('etcd-c', 'i-c', 'Pending:Wait')], null);
    expect(d).toMatchObject({ go: true, detail: expect.stringMatching(/not a healthy voter/) as unknown });
  });
});
