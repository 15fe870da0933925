/** `quorum-keeper reconcile`: the scheduled reconciler, now, with the deployed functions' locks. Exit 1 when a step failed. */
import { reconcileCluster } from '../../lib/flows/reconcile';
import { clusterArg, type CliIo, UsageError, type Values } from '../args';
import { withContext } from '../context';
import { failedSteps, reconcileJson, renderReconcile } from '../render/reconcile';
import { plan, reconcileSettings } from './plan';

export async function reconcile(v: Values, io: CliIo): Promise<number> {
  if (v['dry-run']) return plan(v, io);
  const cluster = clusterArg(v);
  const settings = reconcileSettings(v);
  return withContext(v, io, { bucket: 'optional', reconciler: true }, async ({ deps }) => {
    if (!deps.reconcile) throw new UsageError('missing --state-table (or QK_STATE_TABLE): the reconciler takes the same locks as the deployed functions, so it never races them');
    const out = await reconcileCluster(deps.reconcile, cluster, settings);
    io.out(v.json ? reconcileJson(cluster, out) : renderReconcile(cluster, out));
    return failedSteps(out) ? 1 : 0;
  });
}
