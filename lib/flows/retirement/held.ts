/**
 * A retirement that ends with its terminate hook HELD (leaving is not safe yet): the hold is
 * recorded in the state table with its first-held time, and the operator is told as it ages
 * toward the hook's global limit (48 h or 100 × its heartbeat timeout, whichever is less), after
 * which AWS ends the lifecycle action whatever the heartbeats.
 */
import { hookGlobalTimeoutSec, type HookRef } from '../../aws/lifecycle';
import { wallNow } from '../../clock';
import type { Departure } from '../../domain/departure';
import type { FlowDeps } from '../deps';
import type { MasterSlot } from '../master-slot';

export interface HeldRetirement {
  slot: MasterSlot;
  instanceId: string;
  hook: HookRef | null;
  held?: Departure | undefined;
}

/** Records the hold; returns how long the hook has been held, in seconds. */
export async function recordHeld(deps: FlowDeps, s: HeldRetirement, heartbeatTimeoutSec: number, reason: string): Promise<number> {
  const { slot, instanceId } = s;
  if (!s.hook) return 0;
  const rec = await deps.held.hold({ cluster: slot.cluster, member: slot.member, instanceId, hook: s.hook.hook, heartbeatTimeoutSec, reason });
  const heldSec = Math.max(0, Math.round(((await wallNow(deps.clock)) - rec.since) / 1000));
  const limitSec = hookGlobalTimeoutSec(heartbeatTimeoutSec);
  const left = limitSec - heldSec;
  if (heldSec >= 0.75 * limitSec) {
    await deps.alerter.alert({
      severity: 'critical', cluster: slot.cluster, member: slot.member, instanceId, flow: 'retirement', step: 'held',
      summary: `the terminate hook of ${slot.member} (${instanceId}) has been held ${Math.round(heldSec / 60)} min; AWS ends it in about ${Math.max(0, Math.round(left / 60))} min whatever the heartbeats, and the instance then terminates: ${reason}`,
      action: 'Make the other masters whole before then (`quorum-keeper status`), or, if this master must stay, detach it from its ASG (aws autoscaling detach-instances) so it is not terminated.',
      dedupeKey: `${slot.cluster}/${slot.member}/held-limit/${instanceId}`,
    });
  } else if (heldSec >= 3600 && s.held?.go === false && s.held.kind !== 'would-lose-quorum') {
    await deps.alerter.alert({
      severity: 'warning', cluster: slot.cluster, member: slot.member, instanceId, flow: 'retirement', step: 'held',
      summary: `${slot.member} (${instanceId}) has waited ${Math.round(heldSec / 60)} min to leave: ${reason}`,
      action: 'A master out for this long is not normal: check `quorum-keeper status` and the replacement of the master named.',
      dedupeKey: `${slot.cluster}/${slot.member}/held-long/${instanceId}`,
    });
  }
  return heldSec;
}
