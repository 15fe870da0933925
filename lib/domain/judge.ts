/**
 * The two judgements every flow shares, each made by ONE rule over the one view of the cluster
 * (lib/domain/view.ts). Pure: no AWS, no I/O.
 *
 * - `judgeQuorum`: has the cluster a leader that a quorum of voters follows, is quorum proven
 *   lost, or can Quorum Keeper not tell? "Cannot see" is not "no quorum" (DESIGN.md): a member
 *   counts as down only on evidence — it answered without a leader, its etcd port refused the
 *   connection, or its slot has no instance left to run it. A member that is merely slow to
 *   answer (or that Quorum Keeper cannot authenticate to) makes the verdict `unknown`.
 * - `slotGaps`: what keeps a master slot from being whole. Status, the reconciler and the
 *   departure gate all ask it, so they agree (test/unit/judges.test.ts).
 */
import { hasNoLeader } from '../etcd/parsers';
import { clusterHealth, type ClusterHealth } from './membership';
import type { ClusterView, EtcdView, SlotView } from './view';

export interface QuorumJudgement extends ClusterHealth {
  /**
   * `quorate`: a leader that a quorum of voters follows answered; `lost`: members that answered
   * (or are known gone) prove no quorum can be formed; `unknown`: not enough answered to tell.
   */
  state: 'quorate' | 'lost' | 'unknown';
  /** Members (voters and learners) that answered and follow the leader. */
  healthyIds: string[];
  /** Voters known down: answered without a leader, refused the connection, or whose slot has no instance. */
  downIds: string[];
  /** One line: why this verdict. */
  why: string;
}

/**
 * The slot's instances that may run its member: all but those terminated or past their terminate
 * hook (a retiring master in Terminating:Wait still runs etcd). Whose hosts are asked whether
 * etcd is known stopped there (the restore, the replacement with no peer).
 */
export function liveInstanceIds(slot: Pick<SlotView, 'instances'>): string[] {
  return slot.instances.filter((i) => !/^(Terminated|Terminating:Proceed)$/.test(i.lifecycleState)).map((i) => i.instanceId);
}

/** A slot whose every instance is gone or going (or that has none) cannot be running its member. */
function slotEmpty(slot: SlotView): boolean {
  return slot.instances.every((i) => /^(Terminated|Terminating:Proceed|Terminating$)/.test(i.lifecycleState));
}

/**
 * What the fleet testifies about etcd: the slots and their claimed members, and (where the hosts
 * were asked: the view's `hosts` part) what each master says of its own etcd — a host is the
 * authority on its own process, so that is evidence, unlike a member that does not answer.
 */
export type FleetTestimony = Pick<ClusterView, 'slots' | 'claims'> & Partial<Pick<ClusterView, 'hosts'>>;

/**
 * The slots whose member is known not to run: every instance that may run it (liveInstanceIds)
 * was asked and says etcd is stopped there. One not asked, or not answering, testifies nothing.
 */
export function etcdStoppedOn(fleet: Pick<ClusterView, 'slots'> & Partial<Pick<ClusterView, 'hosts'>>): string[] {
  const hosts = fleet.hosts ?? {};
  return fleet.slots.filter((slot) => {
    const live = liveInstanceIds(slot);
    return live.length > 0 && live.every((i) => {
      const a = hosts[i];
      return a !== undefined && 'report' in a && a.report.stopped;
    });
  }).map((slot) => slot.member);
}

/**
 * The one quorum rule. `fleet` (optional) lets the fleet testify: a voter whose slot has no
 * instance left, or whose master says etcd is not running there, is down whatever etcd could
 * (not) say about it. With no member answering at all, quorum is lost only when every slot is
 * empty or says its etcd is stopped; otherwise it is `unknown` ("cannot see").
 */
export function judgeQuorum(etcd: Pick<EtcdView, 'members' | 'status'>, fleet?: FleetTestimony): QuorumJudgement {
  const stopped = new Set(fleet ? etcdStoppedOn(fleet) : []);
  if (!etcd.members) {
    const none = { voters: 0, quorum: 0, healthyVoters: 0, leader: null, margin: -1, healthyIds: [], downIds: [] };
    const slots = fleet?.slots ?? [];
    if (slots.length > 0 && slots.every((x) => slotEmpty(x) || stopped.has(x.member))) {
      return { ...none, state: 'lost', why: `no etcd member answered, and etcd runs on none of the ${slots.length} masters (${slots.map((x) => `${x.member}: ${slotEmpty(x) ? 'no instance' : 'etcd stopped'}`).join(', ')})` };
    }
    return { ...none, state: 'unknown', why: 'no etcd member answered' };
  }
  const h = clusterHealth(etcd.members, etcd.status);
  const healthyIds = h.leader ? etcd.status.statuses.filter((s) => !hasNoLeader(s) && s.leader === h.leader).map((s) => s.memberId) : [];
  const voters = etcd.members.filter((m) => !m.isLearner);
  const answered = new Map(etcd.status.statuses.map((s) => [s.memberId, s]));
  const refused = new Set(etcd.status.unreachable.filter((u) => /connection refused/i.test(u.error)).map((u) => u.endpoint));
  // Slots with no instance, or whose master says etcd is not running: their member is down — by its
  // claim only (identity read; etcd names need not be the slot tags).
  const emptySlots = new Set((fleet?.slots ?? []).filter((x) => slotEmpty(x) || stopped.has(x.member))
    .map((x) => fleet?.claims[x.member]?.id).filter((id): id is string => id !== undefined));
  const downIds = voters.filter((m) => {
    const s = answered.get(m.id);
    if (s) return hasNoLeader(s);
    return emptySlots.has(m.id) || (m.clientUrls.length > 0 && m.clientUrls.every((u) => refused.has(u)));
  }).map((m) => m.id);
  const counts = `${h.healthyVoters}/${h.voters} voters follow ${h.leader ?? 'no leader'}, quorum ${h.quorum}`;
  if (h.leader !== null && h.margin >= 0) return { ...h, state: 'quorate', healthyIds, downIds, why: counts };
  if (h.voters - downIds.length < h.quorum) {
    return { ...h, state: 'lost', healthyIds, downIds, why: `${counts}; ${downIds.length} known down: no quorum can form` };
  }
  const silent = h.voters - h.healthyVoters - downIds.length;
  const refusedUs = etcd.status.unreachable.filter((u) => /certificate|tls:|x509|handshake/i.test(u.error)).length;
  const how = refusedUs ? `${silent} gave no answer (${refusedUs} refused Quorum Keeper's TLS handshake: its client certificate?)` : `${silent} did not answer in time`;
  return { ...h, state: 'unknown', healthyIds, downIds, why: `${counts}; ${how}: quorum cannot be judged` };
}

/** The member ID a slot is: its claim, else (identity not read) the member named like its tag. */
export function slotMemberId(view: Pick<ClusterView, 'claims' | 'etcd'>, member: string): string | undefined {
  return view.claims[member]?.id ?? view.etcd.members?.find((x) => x.name === member)?.id;
}

/** The parts of the view the "slot is whole" rule reads. */
export type SlotJudgeView = Pick<ClusterView, 'slots' | 'etcd' | 'claims' | 'targets'> & Partial<Pick<ClusterView, 'volumes'>>;

/**
 * The one "slot is whole" rule: what keeps `slot` from being whole (empty: whole). Whole: it has
 * a master that has fully come in (InService), its etcd member (by identity) is a voter that
 * follows the leader, its volume is attached to that master (when volumes were read), and that
 * master is healthy in the target group — where the cluster has one: a cluster without a target
 * group is whole without it (`doctor` checks the load balancer set-up).
 *
 * A slot whose only master is retiring (Terminating:*) but whose member still follows the leader
 * has not left yet: whole for now. So is a replacement joining beside a master that is still
 * retiring (launch before terminate): the member has not left. etcd is judged only when the
 * member list was read; `q` is the quorum judgement of the same view.
 */
export function slotGaps(view: SlotJudgeView, slot: SlotView, q: QuorumJudgement): string[] {
  const states = slot.instances.map((i) => `${i.instanceId} ${i.lifecycleState}`).join(', ');
  if (slot.instances.length === 0) return [`${slot.member} has no master`];
  const live = slot.instances.filter((i) => !i.lifecycleState.startsWith('Terminating'));
  const retiring = slot.instances.find((i) => i.lifecycleState.startsWith('Terminating'));
  const inService = live.find((i) => i.lifecycleState === 'InService');
  const gaps: string[] = [];
  if (live.length > 0 && !inService && !retiring) gaps.push(`${slot.member} has no InService master (${states})`);
  const host = inService ?? retiring;
  if (view.etcd.members) {
    const id = slotMemberId(view, slot.member);
    const m = view.etcd.members.find((x) => x.id === id);
    if (!m) gaps.push(`${slot.member} is not an etcd member`);
    else if (m.isLearner) gaps.push(`${slot.member} is still a learner`);
    else if (!q.healthyIds.includes(m.id)) gaps.push(`${slot.member} (${m.id}) is not following the leader`);
  }
  if (view.volumes && host) {
    const v = view.volumes[slot.member];
    if (!v) gaps.push(`${slot.member} has no etcd volume tagged for it`);
    else if (v.attachedTo !== host.instanceId || v.attachmentState !== 'attached') {
      gaps.push(`${slot.member}'s volume ${v.volumeId} is ${v.attachedTo ? `${v.attachmentState ?? 'attached'} to ${v.attachedTo}` : v.volumeState}, not attached to ${host.instanceId}`);
    }
  }
  if (view.targets && inService) {
    const state = view.targets[inService.instanceId] ?? 'not registered';
    if (state !== 'healthy') gaps.push(`${slot.member}'s master ${inService.instanceId} is ${state} in the target group`);
  }
  return gaps;
}
