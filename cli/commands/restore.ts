/**
 * `quorum-keeper restore`: disaster recovery from a backup, after the plan is shown and the
 * cluster's name typed back (or --yes); `--rollback TOKEN` puts back the data a restore set aside.
 * Exit 4 when the operator declines; a refusal (RestoreRefused) is exit 3, in main.
 */
import { restoreCluster, rollbackRestore } from '../../lib/flows/restore';
import { clusterArg, type CliIo, confirm, flag, type Values } from '../args';
import { withContext } from '../context';
import { renderRestore, renderRestorePlan, renderRollback, restoreJson, rollbackJson } from '../render/restore';

export async function restore(v: Values, io: CliIo): Promise<number> {
  const cluster = clusterArg(v);
  const rollback = flag('rollback', v.rollback);
  const snapshot = flag('snapshot', v.snapshot) ?? 'latest';
  const token = flag('token', v.token);
  return withContext(v, io, { bucket: 'required' }, async ({ deps, store, workDir }) => {
    if (rollback) {
      if (!(await confirm(v, io, `Roll back ${cluster}: stop etcd everywhere and put back the data set aside by restore ${rollback}.`, cluster))) return 4;
      const members = await rollbackRestore(deps.restore, cluster, rollback);
      io.out(v.json ? rollbackJson(cluster, rollback, members) : renderRollback(cluster, members));
      return 0;
    }
    const summary = await restoreCluster(deps.restore, {
      cluster, snapshot, store, workDir, force: Boolean(v.force), ...(token ? { token } : {}),
      confirm: async (plan) => {
        if (!v.json) io.err(renderRestorePlan(plan));
        return confirm(v, io, 'This replaces the cluster\'s data with the snapshot.', cluster);
      },
    });
    io.out(v.json ? restoreJson(summary) : renderRestore(cluster, summary));
    return summary.result === 'aborted' ? 4 : 0;
  });
}
