/** `quorum-keeper status`: exit 0 when healthy, 5 when degraded. */
import { clusterStatus } from '../../lib/flows/status';
import { clusterArg, type CliIo, type Values } from '../args';
import { withContext } from '../context';
import { renderStatus } from '../render/status';

export async function status(v: Values, io: CliIo): Promise<number> {
  const cluster = clusterArg(v);
  return withContext(v, io, { bucket: 'optional' }, async ({ deps, store }) => {
    const s = await clusterStatus(deps.status, cluster, store ? { store } : {});
    io.out(v.json ? JSON.stringify(s) : renderStatus(s));
    return s.healthy ? 0 : 5;
  });
}
