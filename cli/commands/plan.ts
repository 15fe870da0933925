/** `quorum-keeper plan` (and `reconcile --dry-run`): what the reconciler would do now, read-only. */
import { DEFAULT_RECONCILE, type ReconcileSettings } from '../../lib/domain/reconcile';
import { planCluster } from '../../lib/flows/reconcile';
import { clusterArg, type CliIo, seconds, type Values } from '../args';
import { withContext } from '../context';
import { planJson, renderPlan } from '../render/reconcile';

/** The reconciler's grace periods, from --pending-grace-sec, --repair-grace-sec, --stray-grace-sec. */
export function reconcileSettings(v: Values): ReconcileSettings {
  return {
    ...DEFAULT_RECONCILE,
    pendingGraceSec: seconds(v['pending-grace-sec'], 'pending-grace-sec', DEFAULT_RECONCILE.pendingGraceSec),
    repairGraceSec: seconds(v['repair-grace-sec'], 'repair-grace-sec', DEFAULT_RECONCILE.repairGraceSec),
    strayGraceSec: seconds(v['stray-grace-sec'], 'stray-grace-sec', DEFAULT_RECONCILE.strayGraceSec),
  };
}

export async function plan(v: Values, io: CliIo): Promise<number> {
  const cluster = clusterArg(v);
  const settings = reconcileSettings(v);
  return withContext(v, io, { bucket: 'optional', reconciler: true }, async ({ deps, store }) => {
    const { plan: p } = await planCluster(deps.plan, cluster, settings, store ? { store } : {});
    io.out(v.json ? planJson(cluster, p) : renderPlan(cluster, p, deps.reconcile !== null));
    return 0;
  });
}
