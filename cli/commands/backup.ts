/** `quorum-keeper backup`: a verified backup now. Exit 1 when it failed. */
import { backupCluster } from '../../lib/flows/backup';
import { clusterArg, type CliIo, type Values } from '../args';
import { withContext } from '../context';
import { renderBackup } from '../render/backups';

export async function backup(v: Values, io: CliIo): Promise<number> {
  const cluster = clusterArg(v);
  return withContext(v, io, { bucket: 'required' }, async ({ deps, store }) => {
    const out = await backupCluster(deps.backup, cluster, deps.backupSettings(store));
    io.out(v.json ? JSON.stringify(out) : renderBackup(cluster, store, out));
    return out.result === 'uploaded' ? 0 : 1;
  });
}
