/**
 * May a retiring master stop its etcd member now? Pure: no AWS, no I/O.
 *
 * Masters leave one at a time (DESIGN.md, safety rules). Quorum alone is not the test: with
 * three masters refreshed at once, each one reads 3/3 healthy and each one would stop. A member
 * that is a healthy voter may leave only when every OTHER slot is whole — its member a voter
 * that follows the leader, its master InService and healthy in the target group where there is
 * one — so a second departure waits until the first slot's replacement has fully rejoined. (The
 * retirement then takes the cluster lock and decides again there, so of several masters that
 * all read "whole" at once only the first leaves; the others see its member gone.) A member that is not a healthy voter itself costs nothing by leaving, as long as
 * the others keep quorum under a leader.
 */
import type { Member } from '../etcd/parsers';
import type { EndpointStatusReport } from '../etcd/parsers';
import { canStopMember, clusterHealth, type StopSafety } from './membership';

export interface OtherSlot {
  member: string;
  instances: ReadonlyArray<{ instanceId: string; lifecycleState: string }>;
  /** The etcd member this slot is (lib/domain/identity.ts); absent: the member named like the slot. */
  memberId?: string | undefined;
}

export type Departure =
  | { go: true; detail: string; safety: StopSafety }
  /**
   * `no-leader`: an election, probably; `would-lose-quorum`: this stop would cost quorum;
   * `other-out`: another slot is not whole. `inTransition`: every slot that is out is being
   * worked on by its ASG (a master retiring or a replacement joining) — expected during a
   * rolling refresh; otherwise something failed and needs an operator.
   */
  | { go: false; kind: 'no-leader' | 'would-lose-quorum' | 'other-out'; detail: string; safety: StopSafety; inTransition: boolean; quorumLost?: boolean };

/**
 * Why `slot` is not whole, or null when it is. Whole: its etcd member is a voter that follows the
 * leader, and its master has fully come in — InService and, with a target group, healthy there.
 * A slot whose only master is itself retiring (Terminating:*) but whose member still follows the
 * leader has not left yet: it is whole for now (it waits for its own turn, under the same rule).
 */
export function notWhole(slot: OtherSlot, members: readonly Member[], report: EndpointStatusReport, targets: ReadonlyMap<string, string> | null): string | null {
  const live = slot.instances.filter((i) => !i.lifecycleState.startsWith('Terminating'));
  const states = slot.instances.map((i) => `${i.instanceId} ${i.lifecycleState}`).join(', ');
  if (slot.instances.length === 0) return `${slot.member} has no master`;
  const inService = live.find((i) => i.lifecycleState === 'InService');
  // A replacement joining beside a master that is still retiring (launch before terminate): the
  // member has not left yet, so the slot is judged by its member below, as a retiring one is.
  const retiring = slot.instances.some((i) => i.lifecycleState.startsWith('Terminating'));
  if (live.length > 0 && !inService && !retiring) return `${slot.member} has no InService master (${states})`;
  const m = slot.memberId !== undefined ? members.find((x) => x.id === slot.memberId) : members.find((x) => x.name === slot.member);
  if (!m) return `${slot.member} is not an etcd member`;
  if (m.isLearner) return `${slot.member} is still a learner`;
  const leader = clusterHealth(members, report).leader;
  const st = report.statuses.find((s) => s.memberId === m.id);
  if (!st || st.leader !== leader) return `${slot.member} (${m.id}) is not following the leader`;
  if (targets && inService) {
    const state = targets.get(inService.instanceId) ?? 'not registered';
    if (state !== 'healthy') return `${slot.member}'s master ${inService.instanceId} is ${state} in the target group`;
  }
  return null;
}

/**
 * The decision for the member serving `myEndpoint`, given the cluster's members and status (read
 * through it), the other slots as Auto Scaling shows them, and target health (null: no target group).
 */
export function departureGate(
  members: readonly Member[], report: EndpointStatusReport, myEndpoint: string, others: readonly OtherSlot[], targets: ReadonlyMap<string, string> | null,
): Departure {
  const safety = canStopMember(members, report, myEndpoint);
  if (safety.leader === null) return { go: false, kind: 'no-leader', detail: 'no etcd leader right now (an election?)', safety, inTransition: false };
  const me = report.statuses.find((s) => s.endpoint === myEndpoint);
  const meHealthy = me !== undefined && me.leader === safety.leader && !me.isLearner;
  const out = meHealthy ? others.flatMap((o) => {
    const why = notWhole(o, members, report, targets);
    return why === null ? [] : [{ why, moving: o.instances.some((i) => /^(Terminating|Pending)/.test(i.lifecycleState)) }];
  }) : [];
  const inTransition = out.length > 0 && out.every((o) => o.moving);
  const outDetail = out.map((o) => o.why).join('; ');
  if (!safety.safe) {
    // A leader whose followers are gone still calls itself leader until its election timeout:
    // then quorum is not at stake in this stop, it is already lost, and the words say so.
    const quorumLost = safety.othersHealthy + (meHealthy ? 1 : 0) < safety.quorum;
    return {
      go: false, kind: 'would-lose-quorum', safety, inTransition, quorumLost,
      detail: `${quorumLost ? 'etcd has already lost quorum' : 'stopping would lose quorum'} (${safety.othersHealthy} other healthy voter(s) of ${safety.voters}, quorum ${safety.quorum})${outDetail ? `: ${outDetail}` : ''}`,
    };
  }
  if (out.length) return { go: false, kind: 'other-out', detail: `another master is out: ${outDetail}`, safety, inTransition };
  return { go: true, detail: `${safety.othersHealthy} other healthy voter(s) of ${safety.voters} keep quorum ${safety.quorum}${meHealthy ? '; every other slot is whole' : '; this member is not a healthy voter'}`, safety };
}
