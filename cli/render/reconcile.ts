/** `quorum-keeper plan` and `quorum-keeper reconcile`, as text and as JSON. */
import { describeAction, type ReconcilePlan } from '../../lib/domain/reconcile';
import type { ReconcileOutcome } from '../../lib/flows/reconcile';

export function planJson(cluster: string, plan: ReconcilePlan): string {
  return JSON.stringify({ cluster, drift: plan.drift, actions: plan.actions, notes: plan.notes });
}

/** `seesState`: whether the read saw the state table (flows in progress, remembered strays). */
export function renderPlan(cluster: string, plan: ReconcilePlan, seesState: boolean): string {
  return [
    `plan for ${cluster}: ${plan.actions.length ? `${plan.actions.length} action(s), drift ${plan.drift}` : 'nothing to do'} (read-only; nothing was changed)`,
    ...plan.actions.map((a, i) => `  ${i + 1}. ${describeAction(a)}`),
    ...plan.notes.map((n) => `  note: ${n}`),
    ...(seesState ? [] : ['  (no --state-table: flows in progress and remembered strays are not seen)']),
  ].join('\n');
}

export function failedSteps(out: ReconcileOutcome): number {
  return out.steps.filter((x) => x.result === 'failed').length;
}

export function reconcileJson(cluster: string, out: ReconcileOutcome): string {
  return JSON.stringify({
    cluster, drift: out.drift, failed: failedSteps(out),
    steps: out.steps.map((x) => ({ kind: x.action.kind, result: x.result, detail: x.detail, action: x.action })), notes: out.plan.notes,
  });
}

export function renderReconcile(cluster: string, out: ReconcileOutcome): string {
  const failed = failedSteps(out);
  const mark = { done: '✓', skipped: '-', failed: '✗' } as const;
  return [
    out.steps.length ? `reconciled ${cluster}: drift ${out.drift}, ${out.steps.length - failed} of ${out.steps.length} step(s) done or not needed${failed ? `, ${failed} FAILED` : ''}` : `reconciled ${cluster}: in shape, nothing to do`,
    ...out.steps.map((x) => `  ${mark[x.result]} ${describeAction(x.action)}\n      → ${x.detail}`),
    ...out.plan.notes.map((n) => `  note: ${n}`),
  ].join('\n');
}
