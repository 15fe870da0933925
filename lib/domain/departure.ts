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
import { judgeQuorum, slotGaps, type SlotJudgeView } from './judge';
import { canStopMember, type StopSafety } from './membership';

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
 * The decision for the member of slot `me` serving `myEndpoint`, from one view of the cluster
 * (etcd read through that member; the slots as Auto Scaling shows them; target health; volumes).
 * Every OTHER slot is judged by the one "slot is whole" rule (`slotGaps`).
 */
export function departureGate(view: SlotJudgeView, me: string, myEndpoint: string): Departure {
  const members = view.etcd.members ?? [];
  const report = view.etcd.status;
  const safety = canStopMember(members, report, myEndpoint);
  if (safety.leader === null) return { go: false, kind: 'no-leader', detail: 'no etcd leader right now (an election?)', safety, inTransition: false };
  const q = judgeQuorum(view.etcd, view);
  const mine = report.statuses.find((s) => s.endpoint === myEndpoint);
  const meHealthy = mine !== undefined && mine.leader === safety.leader && !mine.isLearner;
  const out = meHealthy ? view.slots.filter((o) => o.member !== me).flatMap((o) => {
    const gaps = slotGaps(view, o, q);
    return gaps.length === 0 ? [] : [{ why: gaps.join(', '), moving: o.instances.some((i) => /^(Terminating|Pending)/.test(i.lifecycleState)) }];
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
