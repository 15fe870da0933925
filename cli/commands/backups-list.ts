/** `quorum-keeper backups list`: the cluster's backups, oldest first. */
import { clusterArg, type CliIo, type Values } from '../args';
import { withContext } from '../context';
import { backupListJson, renderBackupList } from '../render/backups';

export async function backupsList(v: Values, io: CliIo): Promise<number> {
  const cluster = clusterArg(v);
  return withContext(v, io, { bucket: 'required' }, async ({ deps, store }) => {
    const list = await deps.status.observe.backups.list(store, cluster);
    const now = Date.now();
    io.out(v.json ? backupListJson(list, now) : renderBackupList(cluster, store, list, now));
    return 0;
  });
}
